#!/usr/bin/env bash
# The GPU checks, in one call on a lent GPU machine (prepared here by scripts/gpu_bench_pack.sh; see README,
# "Going bigger"): the CUDA tests (tests/gpu) and `python -m bench --gpu`. Logs and versions land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
site=/tmp/cnl-site
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" bench/carry/whl/*.whl || exit 1
python3 -m zipfile -e bench/carry/bitsandbytes.zip "$site" || exit 1
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
  CNL_BENCH_TOKENIZER=bench/carry/tokenizer CNL_BENCH_SAMPLES=bench/carry/samples CNL_CACHE_DIR=/tmp/cnl-cache
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import sys, torch, transformers, bitsandbytes, accelerate, nnsight
print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda)
for m in (transformers, bitsandbytes, accelerate, nnsight): print(m.__name__, m.__version__)"
} 2>&1 | tee "$OUT/env.txt"
# Within one device call (600 s at most): the tests take about 90 s, the bench about 250 s on an H100.
timeout "${GPU_TESTS_S:-170}" python3 -m pytest -q -p no:cacheprovider tests/gpu ${GPU_TESTS_K:+-k "$GPU_TESTS_K"} 2>&1 | tee "$OUT/gpu_tests.log"
tests=$?
timeout "${GPU_BENCH_S:-390}" python3 -m bench --gpu ${GPU_BENCH_ONLY:+--only $GPU_BENCH_ONLY} 2>&1 | tee "$OUT/bench.log"
bench=$?
echo "tests exit $tests, bench exit $bench" | tee -a "$OUT/env.txt"
exit $(( tests || bench ))

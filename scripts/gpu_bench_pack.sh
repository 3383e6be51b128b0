#!/usr/bin/env bash
# Pack what `python -m bench --gpu` needs on a lent GPU machine that has PyTorch but none of our
# extras (see /work/.library/device): wheels for its Python 3.12, the built-in tokenizer, and the
# benchmark's samples. Everything lands in bench/carry/ (git-ignored, under the 64 MiB carry limit).
#   bash scripts/gpu_bench_pack.sh
#   then run, carrying bench/carry:
#   pip install -q --no-index --no-deps --target /tmp/site bench/carry/whl/*.whl && \
#   PYTHONPATH=/tmp/site:. CNL_BENCH_TOKENIZER=bench/carry/tokenizer CNL_BENCH_SAMPLES=bench/carry/samples \
#   python3 -m bench --gpu
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=bench/carry
rm -rf "$out" && mkdir -p "$out/whl" "$out/tokenizer" "$out/samples"
.venv/bin/python - "$out" <<'PY'
import json, shutil, sys
from dataclasses import asdict
from pathlib import Path
from cnl_core.data.samples import get_dataset
from cnl_core.model.loading import _builtin_folder

out = Path(sys.argv[1])
folder = _builtin_folder("smollm2-135m")
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(folder / name, out / "tokenizer" / name)
for name, n in (("gsm8k", 24), ("arithmetic", 1)):
    rows = get_dataset(name).rows()[:n]
    (out / "samples" / f"{name}.jsonl").write_text("".join(json.dumps(asdict(r)) + "\n" for r in rows))
PY
tf=$(.venv/bin/python -c "import transformers; print(transformers.__version__)")
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$out/whl" "transformers==$tf" bitsandbytes \
  -r <(grep -v '^zstandard' bench/requirements.txt)  # nnsight imports zstandard only for remote runs: 5 MB saved
du -sh "$out" "$out"/*
echo "With the repository itself this must stay under 64 MiB."

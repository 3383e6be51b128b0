#!/usr/bin/env bash
# Pack what the GPU checks need on a lent GPU machine that has PyTorch (CUDA 13) but none of our extras
# (see /work/.library/device): wheels for its Python 3.12, bitsandbytes cut to its CUDA 13 and CPU libraries
# (the wheel holds one library per CUDA version: 43 MB, of which these are 8), the built-in tokenizer and
# the benchmark's samples. Everything lands in bench/carry/ (git-ignored; the carry limit is 64 MiB with
# the repository). Then, on that machine, carrying bench/carry:
#   bash scripts/gpu_check.sh          # the GPU tests (tests/gpu) and `python -m bench --gpu`, logs in $OUT
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
for name, n in (("gsm8k", 64), ("arithmetic", 1)):
    rows = get_dataset(name).rows()[:n]
    (out / "samples" / f"{name}.jsonl").write_text("".join(json.dumps(asdict(r)) + "\n" for r in rows))
PY
version() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
# What the GPU image lacks or holds in another version: our transformers with the huggingface-hub it needs,
# bitsandbytes, and nnsight with the needs the image does not have (greenlet, pydantic and its needs; zstandard is
# only for nnsight's remote runs and is not imported).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$out/whl" "transformers==$(version transformers)" \
  "bitsandbytes==$(version bitsandbytes)" "$(grep '^nnsight' bench/requirements.txt)" \
  $(for p in pydantic pydantic-core annotated-types typing-inspection typing-extensions greenlet huggingface-hub \
      hf-xet httpx2 httpcore2 truststore h11; do
      echo "$p==$(version $p)"; done)  # the versions that work together here (pydantic pins pydantic-core; our
                                      # transformers needs a newer huggingface-hub than the image's, with its needs)
bnb=$(ls "$out"/whl/bitsandbytes-*.whl)
tmp=$(mktemp -d)
(cd "$tmp" && unzip -q "$OLDPWD/$bnb" && find bitsandbytes -name 'libbitsandbytes_*.so' \
  ! -name '*cuda13*' ! -name '*cpu*' -delete && python3 -m zipfile -c "$OLDPWD/$out/bitsandbytes.zip" bitsandbytes bitsandbytes-*.dist-info)
rm -rf "$tmp" "$bnb"
du -sh "$out" "$out"/*
echo "With the repository itself this must stay under 64 MiB."

"""Benchmarks: `python -m bench [--gpu]`. Each figure is a ratio measured side by side in one run.

Targets come from the performance issue; a missed target is printed as FAIL, never hidden.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import registry  # noqa: E402

HEADER = "\n| figure | measured | ratio | target | result |\n|---|---|---|---|---|"


def _line(row: tuple) -> str:
    return "| " + " | ".join(str(c) for c in row) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gpu", action="store_true", help="random-weight Llama-2-7B shape on CUDA (bf16 and 4-bit)")
    parser.add_argument("--only", nargs="*", help="run only these figures (names as printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CNL_CACHE_DIR_BENCH"] = tmp
        rows = []
        started = time.perf_counter()
        print(HEADER, flush=True)  # each figure's rows as soon as it is measured: a run cut short keeps them
        for name, fn in registry.ALL.items():
            if args.only and name not in args.only or args.gpu and name not in registry.ON_GPU:
                continue
            try:
                new = fn(gpu=args.gpu)
            except Exception as exc:  # a broken benchmark is a row, not a crash (its traceback on stderr)
                traceback.print_exc()
                text = " ".join(f"error: {type(exc).__name__}: {exc}".split()).replace("|", "/")  # one table cell
                new = [(name, text[:160], "", "", "ERROR")]
            rows.extend(new)
            print("\n".join(_line(row) for row in new), flush=True)
    print("\nAll figures:" + HEADER)
    for row in rows:
        print(_line(row))
    info = sum(r[-1] == "info" for r in rows)  # figures reported without a target
    print(
        f"\n{sum(r[-1] == 'pass' for r in rows)} passed, {sum(r[-1] not in ('pass', 'info') for r in rows)} failed"
        + (f", {info} reported" if info else "")
        + f" ({time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()

"""The evaluation as it was when the classroom issue was filed, run beside today's in the same bench run.

The issue measured its GSM8K Intervene setting (n = 8, 5-shot, 96 new tokens, 2 control draws) at 67 s
on the code of commit REFERENCE. That code is taken from this repository's history (`git archive`),
run in a subprocess on the same machine with the same neurons, and its time and numbers come back
as JSON: a ratio measured side by side, not against a figure from another day and another load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

REFERENCE = "787bf06"  # the last commit before the classroom issue's work began
ROOT = Path(__file__).resolve().parent.parent

# Runs inside the reference checkout (its own package layout and API).
_SCRIPT = """
import json, sys, time
from cnl_core.evaluate_run import run_evaluate
from cnl_core.evaluation import EvalConfig
from cnl_core.models import load_model
from cnl_core.neurons import NeuronSet
pairs, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
lm = load_model("smollm2-135m")
neurons = NeuronSet.from_pairs(lm.grid, pairs)
times = []
for _ in range(repeat):
    start = time.perf_counter()
    out = run_evaluate(lm, "gsm8k", 8, 0, neurons, mode="zero", control_draws=2,
                       cfg=EvalConfig(num_fewshot=5, max_new_tokens=96))
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": min(times), "result": out}, default=str))
"""


def run_reference(pairs: list[list[int]], repeat: int = 1) -> dict:
    """{"seconds": best wall time of the reference evaluation, "result": its result dict}."""
    with tempfile.TemporaryDirectory(prefix="cnl-reference-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", REFERENCE], check=True, capture_output=True).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        env = {**os.environ, "PYTHONPATH": tmp, "CNL_CACHE_DIR": str(Path(tmp) / "cache")}
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, json.dumps(pairs), str(repeat)],
            cwd=tmp,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])

"""Quantized built-in model on a CPU: scoring time and peak memory, float32 vs 8-bit vs nf4, and the
memory estimate against the measured peak. Each precision runs in a fresh process, so its peak (the
kernel's exact peak-RSS mark, reset after the imports) holds the model and its scoring only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.figures import ROOT, _verdict

_CHILD = """
import json, sys, time
from cnl_core.locate.batch_fit import scoring_workload
from cnl_core.locate.scorers import ScoreConfig, score_batch
from cnl_core.model.loading import ModelSpec, load_model
from bench.figures import _samples

def status(key):
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith(key + ":"))

samples = _samples(8)
cfg = ScoreConfig("grad_x_act", max_prompt_tokens=384, max_answer_tokens=128)
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:  # reset the peak-RSS mark: the peak below is model + scoring
    fh.write("5")
lm = load_model(ModelSpec("smollm2-135m", device="cpu", quantization=sys.argv[1]), scoring_workload(cfg, 8))
loaded, load_peak = status("VmRSS"), status("VmHWM")
score_batch(lm, samples, cfg)
peak = status("VmHWM")
times = []
for _ in range(3):
    t = time.perf_counter()
    score_batch(lm, samples, cfg)
    times.append(time.perf_counter() - t)
tokens = int(cfg.encode(lm, samples).attention_mask.sum(-1).max())
est = lm.plan.estimate
print(json.dumps({"time": min(times), "peak_mb": (peak - before) / 1024, "loaded_mb": (loaded - before) / 1024,
                  "load_peak_mb": (load_peak - before) / 1024,
                  "above_loaded_mb": (peak - loaded) / 1024, "weights_mb": lm.model.get_memory_footprint() / 2**20,
                  "est_weights_mb": est.weight_bytes / 2**20, "tokens": tokens}))
"""


def _measure(quant: str) -> dict:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, quant],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def quantized_cpu(gpu: bool) -> list:
    """float32 vs 8-bit vs nf4 on a CPU: grad_x_act on one batch of 8 GSM8K samples (best of 3 after one)."""
    m = {q: _measure(q) for q in ("none", "8bit", "4bit")}
    what = f"CPU built-in, grad_x_act, batch of 8 GSM8K, up to {m['none']['tokens']} tokens"
    rows = []
    for quant, name in (("8bit", "8-bit"), ("4bit", "nf4")):
        q, f = m[quant], m["none"]
        slower = q["time"] / f["time"]
        rows.append(
            (
                f"scoring time, {name} vs float32 ({what})",
                f"{q['time']:.1f} s vs {f['time']:.1f} s",
                f"{slower:.2f}x the time",
                "memory, not time: at most 3x slower",
                _verdict(slower <= 3),
            )
        )
        for key, label, target in (
            ("loaded_mb", "memory held after loading", "less than float32"),
            ("above_loaded_mb", "scoring peak above the loaded model", "reported (activations, not weights)"),
            ("peak_mb", "whole peak, load + scoring", "less than float32"),
        ):
            share = q[key] / f[key]
            rows.append(
                (
                    f"{label}, {name} vs float32 (exact RSS above the imports)",
                    f"{q[key]:.0f} MB vs {f[key]:.0f} MB",
                    f"{share:.2f}x",
                    target,
                    _verdict(share < 1) if key != "above_loaded_mb" else "pass",
                )
            )
    weights = " vs ".join(f"{m[q]['weights_mb']:.0f}" for q in ("none", "8bit", "4bit"))
    rows.append(
        (
            "weights in memory, float32 vs 8-bit vs nf4",
            f"{weights} MB",
            f"{m['4bit']['weights_mb'] / m['none']['weights_mb']:.2f}x (nf4)",
            "nf4 < 8-bit < float32",
            _verdict(m["4bit"]["weights_mb"] < m["8bit"]["weights_mb"] < m["none"]["weights_mb"]),
        )
    )
    off = max(abs(m[q]["est_weights_mb"] / m[q]["weights_mb"] - 1) for q in m)
    rows.append(
        (
            "memory estimate of the weights (from the config) vs loaded, worst of the three",
            f"{100 * off:.0f}% off",
            "",
            "within 15%",
            _verdict(off <= 0.15),
        )
    )
    return rows

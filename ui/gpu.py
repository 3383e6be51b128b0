"""Model work on Hugging Face ZeroGPU hardware: each heavy handler runs inside `@spaces.GPU`.

On a ZeroGPU Space (the `spaces` package is installed there and SPACES_ZERO_GPU is true) a GPU is
attached only while a function decorated with `spaces.GPU` runs, for at most the seconds it asked
for: too few and the run is cut off, too many and the visitor waits longer in the queue. So
`on_gpu` asks for what the handler's own inputs call for (samples x passes, tokens to generate),
capped. The per-sample costs below are rough guesses for a 7B model in bfloat16 on a ZeroGPU slice,
not measurements (no ZeroGPU hardware was at hand); the built-in model needs far less. Anywhere else (a laptop, a CPU
Space, the tests) it hands back the handler itself. `spaces` is not a dependency of this project.

The handler's inputs and outputs cross a process boundary there (pickled): the Session travels
without its cancel event (session.py), so Cancel stops the page's wait, not the GPU's run.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from collections.abc import Callable
from typing import TypeVar

from cnl_core.evaluate.harness import parse_tasks
from cnl_core.experiments.dose import DEFAULT_FACTORS
from cnl_core.options import IG_METHODS

F = TypeVar("F", bound=Callable)

START_S = 10.0  # attach the GPU and have the weights on it
PASS_S = 0.2  # one sample through the model, forward and backward (a few hundred tokens)
TOKEN_S = 0.01  # one generated token of one sample, in batched decoding
STEP_S = 0.05  # one generated token of a single prompt (steering: no batch to share the step)
NEW_TOKENS = 256  # tokens assumed when the dataset decides (the longest built-in answers)
MIN_S, MAX_S = 20, 300  # ZeroGPU's queue favours short requests; longer work belongs to the CLI
FALLBACK_S = 60  # inputs the estimate cannot read (the handler itself will say what is wrong)


def zero_gpu() -> bool:
    """True on ZeroGPU hardware: the `spaces` package is there and says so (SPACES_ZERO_GPU)."""
    flag = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")
    return flag and importlib.util.find_spec("spaces") is not None


def on_gpu(seconds: Callable[..., float]) -> Callable[[F], F]:
    """Decorator: run the handler inside `spaces.GPU(duration=...)` on ZeroGPU, with the duration that
    `seconds` estimates; elsewhere the handler is returned unchanged. Either way the estimate stays on the
    function as `gpu_seconds` (taking the handler's own arguments) and `seconds` as `gpu_estimate`.

    `seconds` takes the inputs it needs by the handler's parameter names (and **_ for the rest): the handler's
    signature is the one place their order is written (ui/wiring.py reads it for app.py too)."""

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)

        def duration(*args, **kwargs) -> int:
            try:
                estimate = float(seconds(**signature.bind_partial(*args, **kwargs).arguments))
            except Exception:  # noqa: BLE001  # a box the visitor left empty: the handler reports it
                estimate = FALLBACK_S
            return int(min(MAX_S, max(MIN_S, estimate)))

        out = importlib.import_module("spaces").GPU(fn, duration=duration) if zero_gpu() else fn
        if out is not fn:  # the handler's parameters stay readable through the wrapper (wiring.py, Gradio)
            out.__wrapped__ = fn
        out.gpu_seconds, out.gpu_estimate = duration, seconds
        return out

    return wrap


def _evaluations(count: float, new_tokens, fewshot=0) -> float:
    """count evaluated samples (per condition), each a gold pass plus up to new_tokens generated."""
    shots = max(0, int(fewshot or 0))
    return START_S + count * (PASS_S * (1 + shots) + (int(new_tokens or 0) or NEW_TOKENS) * TOKEN_S)


def _count(items) -> int:
    return len(items) if isinstance(items, (list, tuple, set, dict)) else 1


def _located(state) -> int:
    return max(1, len(getattr(state, "located", {}) or {}))


def locate_seconds(datasets, n, k, method, ig_steps, **_) -> float:
    passes = 2 * int(ig_steps) + 1 if method in IG_METHODS else 1  # IG: an upper bound of its work
    return START_S + _count(datasets) * int(n) * int(k) * passes * PASS_S


def demo_seconds(scored: str = "", **_) -> float:
    # the preset: 24 samples located, 40 held out x 4 conditions, 8 new tokens; twice that for the format control
    return 130.0 if str(scored).startswith("both") else 60.0


def inspect_seconds(datasets, n, **_) -> float:
    return START_S + _count(datasets) * int(n) * PASS_S


def intervene_seconds(targets, n, draws, fewshot, max_new, **_) -> float:
    return _evaluations(_count(targets) * int(n) * (2 + int(draws)), max_new, fewshot)


def dose_seconds(n, fewshot, max_new, **_) -> float:
    return _evaluations(int(n) * (1 + len(DEFAULT_FACTORS)), max_new, fewshot)


def matrix_seconds(targets, n, fewshot, max_new, state, **_) -> float:
    return _evaluations(_count(targets) * int(n) * (1 + 2 * _located(state)), max_new, fewshot)


def harness_seconds(tasks, n, draws, fewshot, max_new, **_) -> float:
    """Every task at n samples, unmodified, intervened and under each control (a task's own sizes are unknown
    until the harness builds it: n is its limit)."""
    return _evaluations(len(parse_tasks(tasks)) * int(n) * (2 + int(draws)), max_new, fewshot)


def steer_seconds(max_new, **_) -> float:
    return START_S + 3 * int(max_new) * STEP_S + 2 * PASS_S  # three answers, then two scoring passes


def decouple_seconds(dataset, n, fractions, repeats, method, ig_steps, **_) -> float:
    curves = 2 * len(str(fractions).replace(",", " ").split()) * int(repeats)  # "same" and "other" per fraction
    # most samples come from the cache
    return locate_seconds([dataset], n, 2, method, ig_steps) + curves * 0.1


def specificity_seconds(eval_n, fewshot, max_new, state, **_) -> float:
    sets = _located(state)
    return _evaluations(sets * sets * 2 * int(eval_n), max_new, fewshot)  # every dataset x (shared, specific)

"""Model work on Hugging Face ZeroGPU hardware: each heavy handler runs inside `@spaces.GPU`.

On a ZeroGPU Space (the `spaces` package is installed there and SPACES_ZERO_GPU is true) a GPU is
attached only while a function decorated with `spaces.GPU` runs, for at most the seconds it asked
for: too few and the run is cut off, too many and the visitor waits longer in the queue. So
`on_gpu` asks for what the handler's own inputs call for: `estimate(kind)` reads the job's expected seconds
from the cost model (costs.py: the inputs' work times the rate measured here for the kind, a first guess until
one has run), with a margin, capped (why: the estimates were once hand formulas of their own, beside the cost
model, and the two disagreed). Anywhere else (a laptop, a CPU Space, the tests) it hands back the handler
itself. `spaces` is not a dependency of this project.

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

from . import costs

F = TypeVar("F", bound=Callable)

START_S = 10.0  # attach the GPU and have the weights on it
MARGIN = 2.0  # times the expected seconds: ZeroGPU cuts a run off at the seconds it asked for
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


def estimate(kind: str) -> Callable[..., float]:
    """The seconds to ask for a job of `kind`, from the handler's inputs by their names: attaching the GPU, then
    MARGIN times the cost model's expectation (a run slower than expected still finishes)."""
    work = costs.WORK[kind]
    names = list(inspect.signature(work).parameters)

    def seconds(**inputs) -> float:
        cost = costs.expected(kind, **{name: inputs[name] for name in names})
        if cost is None:
            raise ValueError(f"the inputs of a {kind} job cannot be read")
        return START_S + MARGIN * cost.seconds

    seconds.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # the names it reads (test_zero_gpu)
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names]
        + [inspect.Parameter("_", inspect.Parameter.VAR_KEYWORD)]
    )
    return seconds

"""One decorator for every model handler: `@job(Kind.INTERVENE)`.

Why: twelve handlers repeated the same stack in a fixed order (`@gpu.on_gpu(estimate) @shows_errors
@one_job("name")`), named their job with a bare string (one for the visitor, another for the lane, a third for
the cost model), and took a `progress` bar and the session's cancel event as two things threaded through every
call. Here the job's kind is one `Kind`, and the decorator does, in this order:

- ZeroGPU (gpu.py): the duration asked for comes from the kind's cost model (costs.py), by the handler's names;
- errors (errors.py): a library error reaches the visitor as its sentence, a Cancel as a grey notice;
- one job per visitor (visitors.py): a second job of the same visitor is refused, Cancel and a closed tab stop it;
- the `Run` it hands the handler: progress and cancel as one object, with the kind, for the cost check
  (`run.expected(...)`), the lane (`run.lane(cost)`) and the library (a `Run` is the library's `Job`);
- the outputs: Gradio fills the components wired in app.py from the returned tuple by position, so the handler
  declares how many it returns (`outputs=`), a return of another length is a bug said at once (not a silently
  shifted page), and tests/unit/test_jobs.py checks each declared count against app.py's wiring.

The handler names a `run` parameter; Gradio sees `progress=gr.Progress()` in its place (the wrapper's
signature), and wiring.py reads the same signature for the inputs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import gradio as gr

from cnl_core import Job

from . import costs, gpu
from .errors import progress_reporter, shows_errors
from .lanes import LANES
from .visitors import one_job

F = TypeVar("F", bound=Callable[..., Any])


class Kind(StrEnum):
    """Every kind of model job: its lane and measured rate (lanes.py), its cost model (costs.py), its GPU time."""

    DEMO = "demo"
    LOCATE = "locate"
    INSPECT = "inspect"
    NULL = "null"
    INTERVENE = "intervene"
    DOSE = "dose"
    MATRIX = "matrix"
    STEER = "steer"
    LM_EVAL = "lm-eval"
    BASELINES = "baselines"
    DECOUPLE = "decouple"
    SPECIFICITY = "specificity"
    KNOWLEDGE = "knowledge"


# what a visitor reads ("Your Intervene job is still running", "Cancelled: Ask.")
TITLES = {
    Kind.DEMO: "Demo",
    Kind.LOCATE: "Locate",
    Kind.INSPECT: "Inspect",
    Kind.NULL: "Empirical null",
    Kind.INTERVENE: "Intervene",
    Kind.DOSE: "Dose",
    Kind.MATRIX: "Matrix",
    Kind.STEER: "Ask",
    Kind.LM_EVAL: "lm-eval",
    Kind.BASELINES: "Baselines",
    Kind.DECOUPLE: "Decouple",
    Kind.SPECIFICITY: "Specificity",
    Kind.KNOWLEDGE: "Knowledge study",
}


@dataclass(frozen=True)
class Run(Job):
    """One running job of a handler: the library's Job (progress and cancel) with the job's kind."""

    kind: str = ""

    def expected(self, **inputs: Any) -> costs.Expected | None:
        """The job's expected cost for these inputs (costs.py), refused in a shared lab over its limit."""
        return costs.check(self.kind, **inputs)

    def lane(self, cost: costs.Expected | None = None) -> AbstractContextManager[None]:
        """Wait for this job's turn in its line (by its expected cost where known; the visitor sees their
        place), then hold it for the block."""
        return LANES.slot(self.kind, self.progress, self.cancel, cost)


def checked(name: str, value: Any, outputs: int) -> Any:
    """A handler's return, refused (TypeError) where it is not `outputs` values (one output: any single value)."""
    if outputs > 1 and not (isinstance(value, tuple) and len(value) == outputs):
        given = len(value) if isinstance(value, tuple) else 1
        raise TypeError(f"{name} returned {given} value(s) for its {outputs} outputs")
    return value


def job(kind: Kind, *, outputs: int, on_gpu: bool = True) -> Callable[[F], F]:
    """Decorator for a model handler with parameters `state` and `run` that returns (or yields) `outputs` values
    (see the module's docstring); `on_gpu` off: the handler never runs on ZeroGPU hardware (its work is the
    model's load or the result cache's)."""

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)
        if "run" not in signature.parameters or "state" not in signature.parameters:
            raise TypeError(f"{fn.__name__}: a job handler takes `state` and `run` parameters")
        progress = inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress())
        outer = signature.replace(parameters=[p for p in signature.parameters.values() if p.name != "run"] + [progress])

        def started(args: tuple, kwargs: dict) -> tuple[dict, Run]:
            call = outer.bind(*args, **kwargs)
            call.apply_defaults()
            arguments = dict(call.arguments)
            bar = arguments.pop("progress")
            return arguments, Run(progress_reporter(bar), arguments["state"].cancel, str(kind))

        if inspect.isgeneratorfunction(fn):

            def streaming(*args: Any, **kwargs: Any) -> Iterator:
                arguments, run = started(args, kwargs)
                for value in fn(**arguments, run=run):
                    yield checked(fn.__name__, value, outputs)

            adapter: Callable = streaming
        else:

            def adapter(*args: Any, **kwargs: Any) -> Any:
                arguments, run = started(args, kwargs)
                return checked(fn.__name__, fn(**arguments, run=run), outputs)

        functools.update_wrapper(adapter, fn)
        adapter.__signature__ = outer  # type: ignore[attr-defined]  # Gradio, wiring.py and one_job read it
        handler = shows_errors(one_job(TITLES[kind])(adapter))
        out = gpu.on_gpu(gpu.estimate(kind))(handler) if on_gpu else handler
        out.kind, out.outputs = kind, outputs  # read by tests/unit/test_jobs.py against app.py's wiring
        return out

    return wrap

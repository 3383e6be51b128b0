"""How a dashboard handler gets its model work done: once for everyone, in its lane.

`served` is for work whose result depends only on its inputs (the demo, an evaluation, dose-response, an
inspector page): the result cache (cnl_core/experiments/result_cache.py) answers from disk at once, or lets the
visitor wait for the same run another visitor started, or computes it in the job's lane (lanes.py) and stores it.
`in_lane` is for work that is the visitor's own (a locate with its scores, a study over their located sets): it
only waits its turn in the lane. Every key names the model by its weights' fingerprint and precision, each
dataset by its content, and neurons by their ids, so visitors with the same model, data and settings share, and
nobody is served another model's or another upload's numbers.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from cnl_core.experiments.result_cache import RESULTS, Served, data_identity, model_identity  # noqa: F401
from cnl_core.model.loading import LoadedModel
from cnl_core.model.neurons import NeuronSet
from cnl_core.progress import Progress, report

from .costs import Expected, duration
from .lanes import LANES

T = TypeVar("T")


def neurons_identity(neurons: NeuronSet) -> str:
    text = json.dumps([neurons.grid.n_layers, neurons.grid.width, neurons.flat.tolist()])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@contextmanager
def in_lane(
    kind: str, progress: Progress | None, cancel: threading.Event | None, cost: Expected | None = None
) -> Iterator[None]:
    """Wait for this job's turn in its line (by its expected cost where known; the visitor sees their place), then
    run the block."""
    with LANES.slot(kind, progress, cancel, cost):
        yield


def served(
    kind: str,
    lm: LoadedModel,
    params: dict,
    result_type: type[T],
    compute: Callable[[], T],
    progress: Progress | None,
    cancel: threading.Event | None,
    cost: Expected | None = None,
) -> Served[T]:
    """The result of this work: stored, shared with a visitor already running it, or computed in its lane."""

    def run() -> T:
        with in_lane(kind, progress, cancel, cost):
            return compute()

    def waiting(elapsed: float) -> None:  # another visitor runs the same work: say so, with its expected time
        expect = f"; expected about {duration(cost.seconds)} in all" if cost is not None else ""
        report(
            progress,
            0,
            1,
            f"Another visitor started the same work: waiting for its result ({elapsed:.0f} s so far{expect}).",
        )

    out = RESULTS.serve(kind, {"model": model_identity(lm), **params}, result_type, run, cancel, on_wait=waiting)
    if out.source != "computed":
        report(
            progress,
            1,
            1,
            "The same work was "
            + (
                "done earlier: served from the stored result."
                if out.source == "stored"
                else "running for another visitor: its result is yours too."
            ),
        )
    return out


def source_note(out: Served) -> str:
    """A line for the page: where this result came from."""
    if out.source == "stored":
        return "Served at once from the stored result of the same work (same model, data and settings)."
    if out.source == "shared":
        return "Another visitor was running the same work: you got its result when it finished."
    return ""

"""How a dashboard handler gets its model work done: once for everyone, in its lane.

`served` is for work whose result depends only on its inputs (the demo, an evaluation, dose-response, an
inspector page): the result cache (cnl_core/experiments/result_cache.py) answers from disk at once, or lets the
visitor wait for the same run another visitor started, or computes it in the job's lane (lanes.py) and stores it.
Work that is the visitor's own (a locate with its scores, a study over their located sets) only waits its turn
in the lane (`run.lane(cost)`, jobs.py). The key is the request's own (requests.py: built from the fields the
run reads, so an input cannot be missing from it) with the model named by its weights' fingerprint and
precision; datasets are named by their content and neurons by their ids, so visitors with the same model, data
and settings share, and nobody is served another model's or another upload's numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cnl_core import RESULTS, LoadedModel, Request, Served, model_identity

from .costs import Expected, duration
from .jobs import Run


def served(
    request: Request, lm: LoadedModel, run: Run, cost: Expected | None = None, compute: Callable[[], Any] | None = None
) -> Served:
    """The result of this request: stored, shared with a visitor already running it, or computed in the job's
    lane (`compute`, where given, in place of `request.run`: a handler that adds to the run, such as a note)."""

    def computed() -> Any:
        with run.lane(cost):
            return compute() if compute is not None else request.run(lm, run)

    def waiting(elapsed: float) -> None:  # another visitor runs the same work: say so, with its expected time
        expect = f"; expected about {duration(cost.seconds)} in all" if cost is not None else ""
        run.report(
            0, 1, f"Another visitor started the same work: waiting for its result ({elapsed:.0f} s so far{expect})."
        )

    key = {"model": model_identity(lm), **request.key()}
    out = RESULTS.serve(request.kind, key, request.result_type, computed, run.cancel, on_wait=waiting)
    if out.source != "computed":
        run.report(
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

"""How long-running calls report progress and hear a cancel request: one type for the CLI and the UI.

Two ways to hear a cancel: loops check their own `cancel` event between steps (`check_cancel`), and
`cancel_scope` marks a thread's job so that every forward pass of a loaded model checks its event
first (`raise_if_cancelled`, a pre-hook loading.py puts on each model). The second reaches code that
has no loop of ours in it (the lm-evaluation-harness, one steering answer, the neuron inspector), so
Cancel or a closed browser tab stops a job at its next batch or decoding step, and the model's lock,
held in `with` blocks, is released on the way out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import Cancelled

Progress = Callable[[int, int, str], None]
"""progress(done, total, message): called from the first second of a run and after each step."""

_SCOPE = threading.local()


def report(progress: Progress | None, done: int, total: int, message: str) -> None:
    if progress is not None:
        progress(done, total, message)


def check_cancel(cancel: threading.Event | None, done: int, total: int, what: str = "samples") -> None:
    """Raise Cancelled, naming how far the run got, when the user asked to stop."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"Cancelled after {done} of {total} {what}.")


@contextmanager
def cancel_scope(cancel: threading.Event | None) -> Iterator[None]:
    """Within the block, every model forward pass on this thread raises Cancelled once `cancel` is set.

    Per thread: other visitors' jobs on the same model, in other threads, are not touched."""
    previous = getattr(_SCOPE, "cancel", None)
    _SCOPE.cancel = cancel
    try:
        yield
    finally:
        _SCOPE.cancel = previous


def raise_if_cancelled() -> None:
    """Raise Cancelled when this thread's job (cancel_scope) was asked to stop; else nothing (cheap)."""
    cancel = getattr(_SCOPE, "cancel", None)
    if cancel is not None and cancel.is_set():
        raise Cancelled(
            "Cancelled: the job stopped at its next model step (what it finished is kept: cached "
            "score batches, earlier results)."
        )

"""How long-running calls report progress and hear a cancel request: one type for the CLI and the UI."""

from __future__ import annotations

import threading
from typing import Callable

from .errors import Cancelled

Progress = Callable[[int, int, str], None]
"""progress(done, total, message): called from the first second of a run and after each step."""


def report(progress: Progress | None, done: int, total: int, message: str) -> None:
    if progress is not None:
        progress(done, total, message)


def check_cancel(cancel: threading.Event | None, done: int, total: int, what: str = "samples") -> None:
    """Raise Cancelled, naming how far the run got, when the user asked to stop."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"Cancelled after {done} of {total} {what}.")

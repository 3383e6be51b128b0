"""One decorator turns the library's errors into UI messages, for every handler.

A `CNLError` is the user's to fix: its sentence is shown as is and logged as one line. Anything
else is a bug: it is shown briefly and logged with its traceback. A job the visitor cancelled is no
error: a grey notice titled "Cancelled" says so, and the page keeps what it showed (gr.skip()); the
Cancel button beside it has already said which job stopped and what was kept.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time

import gradio as gr

from cnl_core import shared_mode
from cnl_core.errors import Cancelled, CNLError

from .lanes import current_cost, note_progress

log = logging.getLogger("cnl.dashboard")


def visible(text: str) -> str:
    """What a visitor may read of a message: on a shared dashboard, no server path (shared_mode.opaque)."""
    return shared_mode.opaque(text) if shared_mode.current().shared else text


def cancelled(exc: Cancelled) -> dict:
    """What the visitor asked for: a grey notice titled so (never a red "Error"), and the page left as it is."""
    log.info("cancelled: %s", exc)
    gr.Info(visible(str(exc)), title="Cancelled", duration=10)
    return gr.skip()


def _shown(fn, exc: Exception) -> gr.Error:
    if isinstance(exc, gr.Error):
        return (
            gr.Error(visible(exc.message), title=exc.title, duration=exc.duration, print_exception=False)
            if shared_mode.current().shared and isinstance(exc.message, str)
            else exc
        )
    if isinstance(exc, CNLError):
        log.info("refused: %s", exc)  # the one line a handled user error leaves in the log
        return gr.Error(visible(str(exc)), duration=None, print_exception=False)
    log.exception("unexpected error in %s", fn.__name__)  # a bug: shown briefly, logged in full
    if shared_mode.current().shared:  # its text may hold anything of the server's: the operator reads it in the log
        return gr.Error(f"Unexpected error ({type(exc).__name__}); the operator's log has the details.", duration=None)
    return gr.Error(f"Unexpected error: {type(exc).__name__}: {exc}", duration=None)


def shows_errors(fn):
    """Wrap a handler (plain or streaming) so errors reach the visitor as sentences."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Cancelled as exc:
                yield cancelled(exc)
            except Exception as exc:  # noqa: BLE001
                raise _shown(fn, exc) from exc

        return streaming

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Cancelled as exc:
            return cancelled(exc)
        except Exception as exc:  # noqa: BLE001
            raise _shown(fn, exc) from exc

    return wrapper


def progress_reporter(progress):
    """The library's Progress callback, drawn on a gr.Progress bar, with the time left from the first step: the
    job's expected cost (costs.py, told to its lane) until its own steps give a better figure. Its progress also
    tells those waiting behind it how long it has left (lanes.note_progress)."""
    start = time.monotonic()
    first: list[float] = []  # when the job's first step (after its wait in line) was reported

    def update(done: int, total: int, message: str) -> None:
        note_progress(done, total)
        now = time.monotonic()
        cost = current_cost()
        if cost is not None and not first:
            first.append(now)
        begun = first[0] if first else start
        elapsed, left = now - begun, ""
        if 0 < done < total and elapsed > 1:
            left = f" · about {_seconds(elapsed / done * (total - done))} left"
        elif cost is not None and done < total:
            rest = cost.seconds - elapsed
            left = (
                f" · about {_seconds(rest)} left (expected)"
                if rest > 5
                else f" · past its expected {_seconds(cost.seconds)}, still running"
            )
        progress((done, max(total, 1)), desc=message + left)

    return update


def _seconds(seconds: float) -> str:
    return f"{max(1.0, seconds):.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"

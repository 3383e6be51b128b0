"""One decorator turns the library's errors into UI messages, for every handler.

A `CNLError` is the user's to fix: its sentence is shown as is and logged as one line. Anything
else is a bug: it is shown briefly and logged with its traceback.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time

import gradio as gr

from cnl_core import shared_mode
from cnl_core.errors import Cancelled, CNLError

log = logging.getLogger("cnl.dashboard")


def visible(text: str) -> str:
    """What a visitor may read of a message: on a shared dashboard, no server path (shared_mode.opaque)."""
    return shared_mode.opaque(text) if shared_mode.current().shared else text


def _shown(fn, exc: Exception) -> gr.Error:
    if isinstance(exc, gr.Error):
        return gr.Error(visible(exc.message), title=exc.title, duration=exc.duration, print_exception=False) \
            if shared_mode.current().shared and isinstance(exc.message, str) else exc
    if isinstance(exc, Cancelled):  # what the visitor asked for: a notice titled so, not an "Error"
        log.info("cancelled: %s", exc)
        return gr.Error(visible(str(exc)), title="Cancelled", duration=10, print_exception=False)
    if isinstance(exc, CNLError):
        log.info("refused: %s", exc)  # the one line a handled user error leaves in the log
        return gr.Error(visible(str(exc)), duration=None, print_exception=False)
    log.exception("unexpected error in %s", fn.__name__)  # a bug: shown briefly, logged in full
    if shared_mode.current().shared:  # its text may hold anything of the server's: the operator reads it in the log
        return gr.Error(f"Unexpected error ({type(exc).__name__}); the operator's log has the details.",
                        duration=None)
    return gr.Error(f"Unexpected error: {type(exc).__name__}: {exc}", duration=None)


def shows_errors(fn):
    """Wrap a handler (plain or streaming) so errors reach the visitor as sentences."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                raise _shown(fn, exc) from exc

        return streaming

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _shown(fn, exc) from exc

    return wrapper


def progress_reporter(progress):
    """The library's Progress callback, drawn on a gr.Progress bar, with the time left once it can be told."""
    start = time.monotonic()

    def update(done: int, total: int, message: str) -> None:
        elapsed = time.monotonic() - start
        left = f" · about {elapsed / done * (total - done):.0f} s left" if 0 < done < total and elapsed > 1 else ""
        progress((done, max(total, 1)), desc=message + left)

    return update

"""One decorator turns the library's errors into UI messages, for every handler.

A `CNLError` is the user's to fix: its sentence is shown as is and logged as one line. Anything
else is a bug: it is shown briefly and logged with its traceback.
"""

from __future__ import annotations

import functools
import logging

import gradio as gr

from cnl_core.errors import CNLError

log = logging.getLogger("cnl.dashboard")


def shows_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except CNLError as exc:
            log.info("refused: %s", exc)  # the one line a handled user error leaves in the log
            raise gr.Error(str(exc), duration=None, print_exception=False) from exc
        except Exception as exc:  # noqa: BLE001 - a bug: shown briefly, logged in full
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Unexpected error: {type(exc).__name__}: {exc}", duration=None) from exc

    return wrapper


def progress_reporter(progress):
    """The library's Progress callback, drawn on a gr.Progress bar."""

    def update(done: int, total: int, message: str) -> None:
        progress((done, max(total, 1)), desc=message)

    return update

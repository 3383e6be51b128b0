"""Fair share of one machine: one running job per visitor, Cancel and a closed tab that really stop it.

Why: every model job holds the model's lock while it computes. Gradio's Cancel ends the page's wait
but not the handler's thread, and a closed browser tab ends nothing: the job ran on, and the next
visitor's job waited for it. Here a job runs inside `cancel_scope` (progress.py), so setting the
session's cancel event (Cancel, or `tab_closed` when the browser's heartbeat stops) stops it at its
next model step and the lock is released on the way out. A visitor whose job still runs cannot start
a second one (a job still stopping after Cancel is waited for, briefly), and the end of a session
frees what it held: its uploaded datasets, located sets and task files.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import gradio as gr

from cnl_core import cancel_scope
from cnl_core.errors import ParameterError

from .session import Session

log = logging.getLogger("cnl.dashboard")
STOP_WAIT_S = 120.0  # how long a new job waits for the visitor's cancelled one to stop (a slow CPU's batch)


@dataclass
class Job:
    name: str
    session: Session
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)


class Visitors:
    """The sessions of open browser tabs (by Gradio's session hash) and the job each one runs."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tabs: dict[str, Session] = {}
        self._jobs: dict[str, Job] = {}  # Session.id -> its running job

    def arrive(self, session_hash: str | None, state: Session) -> Session:
        if session_hash:
            with self._lock:
                self._tabs[session_hash] = state
        return state

    def leave(self, session_hash: str | None) -> Session | None:
        """A tab closed: its job is told to stop and its session's data is freed."""
        with self._lock:
            state = self._tabs.pop(session_hash, None) if session_hash else None
        if state is not None:
            state.end()
            log.info("session %s ended: its job (if any) stops, its data is freed", state.id)
        return state

    def running(self, state: Session) -> Job | None:
        with self._lock:
            return self._jobs.get(state.id)

    @contextmanager
    def job(self, state: Session, name: str, scope: bool = True) -> Iterator[Job]:
        """Run one job of this session: refused while another of its jobs runs (one being cancelled is waited
        for up to STOP_WAIT_S). With `scope`, the thread's model steps hear the session's cancel event."""
        deadline = time.monotonic() + STOP_WAIT_S
        while True:
            with self._lock:
                other = self._jobs.get(state.id)
                if other is None:
                    job = self._jobs[state.id] = Job(name, state)
                    break
            if not state.cancel.is_set() or time.monotonic() > deadline:
                raise ParameterError(
                    f"Your {other.name} job is still running (started "
                    f"{time.monotonic() - other.started:.0f} s ago): one job at a time per "
                    "visitor. Wait for it, or press Cancel."
                )
            other.done.wait(timeout=0.5)
        state.cancel.clear()
        try:
            if scope:
                with cancel_scope(state.cancel):
                    yield job
            else:
                yield job
        finally:
            with self._lock:
                self._jobs.pop(state.id, None)
            job.done.set()


VISITORS = Visitors()


def one_job(name: str):
    """Decorator for a model handler whose parameters include `state`: the call runs as one job of that session
    (see Visitors.job). A generator handler hears Cancel through its own `cancel` checks between steps (its
    steps may run on different threads, which a thread's cancel scope cannot follow)."""

    def wrap(fn):
        signature = inspect.signature(fn)

        def bound(args, kwargs):
            call = signature.bind(*args, **kwargs)
            state = call.arguments.get("state")
            if not isinstance(state, Session):
                call.arguments["state"] = state = Session()
            return call, state

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def streaming(*args, **kwargs):
                call, state = bound(args, kwargs)
                with VISITORS.job(state, name, scope=False):
                    yield from fn(*call.args, **call.kwargs)

            return streaming

        @functools.wraps(fn)
        def handler(*args, **kwargs):
            call, state = bound(args, kwargs)
            with VISITORS.job(state, name):
                return fn(*call.args, **call.kwargs)

        return handler

    return wrap


def cancel_job(state) -> None:
    """The Cancel buttons: the visitor's running job stops at its next batch or token, releasing the model."""
    if isinstance(state, Session):
        state.cancel.set()


def cancel_named(state) -> str:
    """A Cancel button beside a heavy button: the running job stops, and the page says which, in neutral words."""
    job = VISITORS.running(state) if isinstance(state, Session) else None
    cancel_job(state)
    if job is None:
        return "*Nothing of yours was running.*"
    return (
        f"**Cancelled: {job.name}.** It stops at its next step (its results so far are not shown); "
        "the model is free for the next job."
    )


def start_session(request: gr.Request = None) -> Session:
    """A new tab's session (demo.load), remembered by the tab's session hash so that its end can free it."""
    return VISITORS.arrive(getattr(request, "session_hash", None), Session())


def tab_closed(request: gr.Request = None) -> None:
    """demo.unload: Gradio saw the tab's heartbeat stop."""
    VISITORS.leave(getattr(request, "session_hash", None))


def state_deleted(value) -> None:
    """gr.State's delete_callback: Gradio dropped a session's state (an hour after its tab closed)."""
    if isinstance(value, Session):
        value.end()

"""Two lanes to the model, and the line each visitor sees.

Why: every model job used to share one queue slot, so a 2-second Intervene or an inspector page waited behind
another visitor's 10-minute locate, and a visitor saw no more than "queued". Now a job that must compute (a
stored result is served without any lane: experiments/result_cache.py) runs in one of two lanes: `short` (the demo, an
Intervene, dose-response, an inspector page, steering) or `long` (locate, matrices, studies, lm-eval tasks). Each
lane runs one job at a time, in the order they came; the two lanes' running jobs take turns on the model, batch by
batch (its lock is fair: model/fair_lock.py). So a short job waits at most for the short jobs ahead of it and
shares the model with one long job. Waiting visitors see their place and an estimate of the wait, from how long
each kind of job has taken on this server (its first run: a guess, said as such). One job per visitor is
visitors.py's rule, so no visitor fills a lane alone.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from cnl_core.errors import Cancelled
from cnl_core.progress import Progress, report

SHORT_KINDS = frozenset({"demo", "intervene", "dose", "inspect", "steer"})
FIRST_GUESS_S = {"demo": 15.0, "intervene": 10.0, "dose": 20.0, "inspect": 5.0, "steer": 10.0}  # before any is measured
DEFAULT_GUESS_S = 60.0
POLL_S = 1.0  # how often a waiting visitor's place and Cancel are checked


@dataclass(eq=False)  # each ticket is itself: two waiting jobs of one kind are two places in line
class _Ticket:
    kind: str
    started: float | None = None


@dataclass
class Lane:
    """One line to the model: jobs run one at a time, first come, first served."""

    name: str
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _line: deque = field(default_factory=deque, repr=False)  # waiting tickets, oldest first
    _running: _Ticket | None = field(default=None, repr=False)

    def snapshot(self) -> tuple[int, _Ticket | None, list[str]]:
        with self._cond:
            return len(self._line), self._running, [t.kind for t in self._line]


class Lanes:
    """The short and the long lane, with what each kind of job has taken here."""

    def __init__(self):
        self.lanes = {"short": Lane("short"), "long": Lane("long")}
        self._took: dict[str, float] = {}  # kind -> seconds, a running mean of the latest runs
        self._took_lock = threading.Lock()

    def lane_for(self, kind: str) -> Lane:
        return self.lanes["short" if kind in SHORT_KINDS else "long"]

    def expected_s(self, kind: str) -> tuple[float, bool]:
        """(seconds a job of this kind is expected to take, whether that was measured here)."""
        with self._took_lock:
            if kind in self._took:
                return self._took[kind], True
        return FIRST_GUESS_S.get(kind, DEFAULT_GUESS_S), False

    def _record(self, kind: str, seconds: float) -> None:
        with self._took_lock:
            old = self._took.get(kind)
            self._took[kind] = seconds if old is None else 0.7 * old + 0.3 * seconds

    def wait_s(self, lane: Lane, ahead: list[str], running: _Ticket | None) -> tuple[float, bool]:
        """Expected wait behind `ahead` (kinds) and the running job; whether every part was measured here."""
        total, measured = 0.0, True
        for kind in ahead:
            s, m = self.expected_s(kind)
            total, measured = total + s, measured and m
        if running is not None and running.started is not None:
            s, m = self.expected_s(running.kind)
            total, measured = total + max(0.0, s - (time.monotonic() - running.started)), measured and m
        return total, measured

    @contextmanager
    def slot(self, kind: str, progress: Progress | None = None,
             cancel: threading.Event | None = None) -> Iterator[None]:
        """Run the block as a job of `kind` in its lane: wait for the jobs ahead (saying where the visitor stands and
        about how long it will be), then hold the lane. Cancel while waiting leaves the line (Cancelled)."""
        lane, ticket = self.lane_for(kind), _Ticket(kind)
        with lane._cond:
            lane._line.append(ticket)
            try:
                while lane._running is not None or lane._line[0] is not ticket:
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("Cancelled while waiting for the model.")
                    place = lane._line.index(ticket)
                    ahead = [t.kind for t in list(lane._line)[:place]]
                    seconds, measured = self.wait_s(lane, ahead, lane._running)
                    jobs = place + (lane._running is not None)
                    report(progress, 0, 1, f"Waiting for the model: {jobs} job{'s' * (jobs != 1)} ahead in the "
                           f"{lane.name}-job line, about {_duration(seconds)}{'' if measured else ' (a first guess)'}")
                    lane._cond.wait(POLL_S)
                lane._line.popleft()
            except BaseException:
                if ticket in lane._line:
                    lane._line.remove(ticket)
                    lane._cond.notify_all()
                raise
            ticket.started = time.monotonic()
            lane._running = ticket
        try:
            yield
            self._record(kind, time.monotonic() - ticket.started)
        finally:
            with lane._cond:
                lane._running = None
                lane._cond.notify_all()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


LANES = Lanes()

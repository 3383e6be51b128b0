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

A job that knows its expected cost (costs.py: its inputs' work times this server's measured rate for its kind)
joins the line by that cost, not by its kind: a GSM8K Intervene of many samples goes to the long line, an add1
locate of a dozen samples to the short one. The wait told counts the time left of the job running ahead (from
its own progress once it has made any, else its expectation; never "0 s" while it runs on: a job past its
expected time is said to be so) and the expected time of each job waiting ahead.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cnl_core import Progress, report_progress
from cnl_core.errors import Cancelled
from cnl_core.options import JOBS

if TYPE_CHECKING:
    from .costs import Expected

SHORT_KINDS = frozenset({"demo", "intervene", "dose", "inspect", "steer"})
FIRST_GUESS_S = {"demo": 15.0, "intervene": 10.0, "dose": 20.0, "inspect": 5.0, "steer": 10.0}  # before any is measured
DEFAULT_GUESS_S = 60.0
POLL_S = 1.0  # how often a waiting visitor's place and Cancel are checked
OVERDUE_S = 10.0  # the least time left said for a running job past its expected time


@dataclass(eq=False)  # each ticket is itself: two waiting jobs of one kind are two places in line
class _Ticket:
    kind: str
    started: float | None = None
    cost: Expected | None = None
    done: float = 0.0  # share of its work done, from its progress reports

    def left_s(self, expected: float) -> tuple[float, bool]:
        """Seconds this running job has left, and whether it is past its expected time."""
        elapsed = time.monotonic() - (self.started or time.monotonic())
        if 0 < self.done < 1 and elapsed > 1:
            return elapsed / self.done * (1 - self.done), False
        left = expected - elapsed
        return (left, False) if left > OVERDUE_S else (max(OVERDUE_S, 0.25 * elapsed), True)


_CURRENT = threading.local()  # the ticket of the job this thread runs


def note_progress(done: int, total: int) -> None:
    """A running job's progress, for the wait told to those behind it (errors.progress_reporter calls this)."""
    ticket = getattr(_CURRENT, "ticket", None)
    if ticket is not None and total > 0:
        ticket.done = min(1.0, max(0.0, done / total))


def current_cost() -> Expected | None:
    """The expected cost of the job this thread runs, if it told one."""
    ticket = getattr(_CURRENT, "ticket", None)
    return None if ticket is None else ticket.cost


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
        self._rates: dict[str, float] = {}  # kind -> seconds here per second of costs.py's first-guess work
        self._took_lock = threading.Lock()

    def lane_for(self, kind: str, cost: Expected | None = None) -> Lane:
        """By the expected cost where the job told it, else by its kind."""
        if cost is not None:
            return self.lanes["long" if cost.seconds > JOBS.short_line_s else "short"]
        return self.lanes["short" if kind in SHORT_KINDS else "long"]

    def rate(self, kind: str) -> tuple[float, bool]:
        """(seconds here per second of first-guess work for this kind, whether that was measured here)."""
        with self._took_lock:
            return (self._rates[kind], True) if kind in self._rates else (1.0, False)

    def _expected_of(self, ticket: _Ticket) -> tuple[float, bool]:
        if ticket.cost is not None:
            return ticket.cost.seconds, ticket.cost.measured
        return self.expected_s(ticket.kind)

    def expected_s(self, kind: str) -> tuple[float, bool]:
        """(seconds a job of this kind is expected to take, whether that was measured here)."""
        with self._took_lock:
            if kind in self._took:
                return self._took[kind], True
        return FIRST_GUESS_S.get(kind, DEFAULT_GUESS_S), False

    def _record(self, ticket: _Ticket, seconds: float) -> None:
        with self._took_lock:
            old = self._took.get(ticket.kind)
            self._took[ticket.kind] = seconds if old is None else 0.7 * old + 0.3 * seconds
            if ticket.cost is not None and ticket.cost.work > 0:
                rate, old = seconds / ticket.cost.work, self._rates.get(ticket.kind)
                self._rates[ticket.kind] = rate if old is None else 0.7 * old + 0.3 * rate

    def wait_s(self, lane: Lane, ahead: list, running: _Ticket | None) -> tuple[float, bool, bool]:
        """Expected wait behind `ahead` (tickets, or kinds) and the running job: (seconds, whether every part was
        measured here, whether the running job is past its expected time)."""
        total, measured, overdue = 0.0, True, False
        for item in ahead:
            s, m = self._expected_of(item) if isinstance(item, _Ticket) else self.expected_s(item)
            total, measured = total + s, measured and m
        if running is not None and running.started is not None:
            s, m = self._expected_of(running)
            left, overdue = running.left_s(s)
            total, measured = total + left, measured and m
        return total, measured, overdue

    @contextmanager
    def slot(
        self,
        kind: str,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        cost: Expected | None = None,
    ) -> Iterator[None]:
        """Run the block as a job of `kind` in its lane (by its expected `cost` where given): wait for the jobs
        ahead (saying where the visitor stands and about how long it will be), then hold the lane. Cancel while
        waiting leaves the line (Cancelled)."""
        lane, ticket = self.lane_for(kind, cost), _Ticket(kind, cost=cost)
        with lane._cond:
            lane._line.append(ticket)
            try:
                while lane._running is not None or lane._line[0] is not ticket:
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("Cancelled while waiting for the model.")
                    place = lane._line.index(ticket)
                    ahead = list(lane._line)[:place]
                    seconds, measured, overdue = self.wait_s(lane, ahead, lane._running)
                    jobs = place + (lane._running is not None)
                    late = "; the job running ahead is past its expected time" if overdue else ""
                    report_progress(
                        progress,
                        0,
                        1,
                        f"Waiting for the model: {jobs} job{'s' * (jobs != 1)} ahead in the "
                        f"{lane.name}-job line (place {place + 1} among those waiting), about "
                        f"{_duration(seconds)}{'' if measured else ' (a first guess)'}{late}",
                    )
                    lane._cond.wait(POLL_S)
                lane._line.popleft()
            except BaseException:
                if ticket in lane._line:
                    lane._line.remove(ticket)
                    lane._cond.notify_all()
                raise
            ticket.started = time.monotonic()
            lane._running = ticket
        outer, _CURRENT.ticket = getattr(_CURRENT, "ticket", None), ticket
        try:
            yield
            self._record(ticket, time.monotonic() - ticket.started)
        finally:
            _CURRENT.ticket = outer
            with lane._cond:
                lane._running = None
                lane._cond.notify_all()


def _duration(seconds: float) -> str:
    return f"{max(1.0, seconds):.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


LANES = Lanes()

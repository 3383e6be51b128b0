"""The model's lock, handed to waiting threads in the order they asked for it.

Why: model work takes the model's lock per batch (a scoring batch, a group of conditions, a decoding run) and
gives it back in between, so that two visitors' jobs can take turns. With a plain re-entrant lock the job that
gives it back and asks again at once nearly always gets it back before a waiting thread wakes: a visitor's
2-second Intervene waited for the whole of another visitor's 10-minute locate. This lock goes to the thread
that has waited longest, so jobs alternate batch by batch. It is re-entrant, as the plain one was (an
intervention holds it around the passes that take it again), and says how many threads wait.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class FairLock:
    """A re-entrant lock granted first come, first served."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._queue: deque[int] = deque()  # waiting threads' tickets, oldest first

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None and not self._queue:
                self._owner, self._depth = me, 1
                return True
            if not blocking:
                return False
            ticket = id(object()) ^ me
            self._queue.append(ticket)
            deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
            while self._owner is not None or self._queue[0] != ticket:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self._queue.remove(ticket)
                    self._cond.notify_all()  # the next in line may be free to go now
                    return False
                self._cond.wait(left)
            self._queue.popleft()
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a lock this thread does not hold")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    def waiting(self) -> int:
        """Threads waiting for the lock now."""
        with self._cond:
            return len(self._queue)

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

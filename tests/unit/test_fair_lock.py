"""The model's lock (model/fair_lock.py): re-entrant, and handed to the thread that has waited longest, so two
visitors' jobs that each take it batch by batch take turns instead of one running to its end."""

import threading
import time

from cnl_core.model.fair_lock import FairLock


def test_jobs_that_take_it_batch_by_batch_take_turns():
    lock, order = FairLock(), []

    def job(name, batches):
        for _ in range(batches):
            with lock:
                order.append(name)
                time.sleep(0.01)

    long = threading.Thread(target=job, args=("long", 40))
    long.start()
    time.sleep(0.05)  # the long job is under way when the short one asks
    short = threading.Thread(target=job, args=("short", 3))
    short.start()
    short.join(5)
    long.join(5)
    last_short = max(i for i, name in enumerate(order) if name == "short")
    assert last_short < 20, order  # done within a few of the long job's batches, not after all 40
    assert lock.waiting() == 0


def test_reentrant_and_timeout():
    lock = FairLock()
    with lock:
        with lock:  # an intervention holds it around passes that take it again
            got = []
            t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.1)))
            t.start()
            t.join(2)
            assert got == [False] and lock.waiting() == 0
        assert lock.acquire(blocking=False)  # this thread holds it: taken again at once
        lock.release()
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=1) and (lock.release() or True)))
    t.start()
    t.join(2)
    assert got[-1] is True

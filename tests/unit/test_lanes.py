"""The dashboard's two lanes to the model (ui/lanes.py): a short job does not wait for a long one, jobs in one lane
run in the order they came, and a waiting visitor is told their place and the expected wait."""

import threading
import time

import pytest

from cnl_core.errors import Cancelled
from ui.lanes import Lanes


def run_in(lanes, kind, hold, log, name, progress=None, cancel=None):
    try:
        with lanes.slot(kind, progress, cancel):
            log.append(("start", name, time.monotonic()))
            hold.wait(5) if isinstance(hold, threading.Event) else time.sleep(hold)
            log.append(("end", name, time.monotonic()))
    except Cancelled:
        log.append(("cancelled", name, time.monotonic()))


def test_a_short_job_does_not_wait_for_a_long_one_and_a_line_keeps_its_order():
    lanes, log, locate_done = Lanes(), [], threading.Event()
    long = threading.Thread(target=run_in, args=(lanes, "locate", locate_done, log, "locate"))
    long.start()
    time.sleep(0.1)
    said = []
    shorts = [
        threading.Thread(
            target=run_in, args=(lanes, "intervene", 0.6, log, f"iv{i}", lambda d, t, text: said.append(text))
        )
        for i in range(3)
    ]
    for t in shorts:
        t.start()
        time.sleep(0.05)
    for t in shorts:
        t.join(10)
    runs = sorted((e[2], e[1]) for e in log if e[0] == "start" and e[1] != "locate")
    ends = {e[1]: e[2] for e in log if e[0] == "end"}
    assert len(ends) == 3 and "locate" not in ends  # all three done while locate still runs
    assert all(ends[a] <= start for (_, a), (start, _) in zip(runs, runs[1:]))  # one at a time, in turn
    locate_done.set()
    long.join(5)
    assert any("2 jobs ahead in the short-job line" in s and "a first guess" in s for s in said), said
    assert lanes.expected_s("intervene") == (pytest.approx(0.6, abs=0.3), True)  # measured now


def test_cancel_while_waiting_leaves_the_line():
    lanes, log, hold, stop = Lanes(), [], threading.Event(), threading.Event()
    first = threading.Thread(target=run_in, args=(lanes, "intervene", hold, log, "first"))
    first.start()
    time.sleep(0.1)
    second = threading.Thread(target=run_in, args=(lanes, "intervene", 0, log, "second", None, stop))
    second.start()
    time.sleep(0.1)
    stop.set()
    second.join(5)
    assert ("cancelled", "second") == log[-1][:2]
    assert lanes.lanes["short"].snapshot()[0] == 0  # nobody left waiting
    hold.set()
    first.join(5)

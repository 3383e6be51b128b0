"""Cancel on the real built-in model (issue #25): an lm-evaluation-harness run, which has no loop of ours in it,
stops at its next batch once Cancel is pressed, and the model's lock is free for the next visitor at once."""

import json
import threading
import time

import gradio as gr
import pytest

pytest.importorskip("lm_eval")

from cnl_core.experiments.locate_result import LocateResult  # noqa: E402
from cnl_core.model.neurons import NeuronSet  # noqa: E402
from tests.integration.test_lm_eval import TASK_YAML, offline  # noqa: E402,F401  # the harness stays offline

TASK = "cnl_local_sums"


@pytest.fixture()
def long_task(tmp_path):
    """The multiple-choice sums task of test_lm_eval.py with 400 rows: minutes for the harness on a CPU."""
    rows = [
        {"a": i, "b": 2 * i, "choices": [f" {3 * i}", f" {3 * i + 1}", f" {3 * i - 2}"], "label": 0} for i in range(400)
    ]
    data = tmp_path / "sums.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / f"{TASK}.yaml").write_text(TASK_YAML.format(data=data))
    return tmp_path


def test_cancel_stops_a_harness_run_mid_task_and_frees_the_model(long_task):
    from ui.session import Located, new_session
    from ui.tabs import harness_panel, locate_tab

    state = new_session()
    lm = state.model()  # the built-in model, as the dashboard holds it
    neurons = NeuronSet.from_pairs(lm.grid, [[0, 1]])
    state.located["hand"] = Located(LocateResult(model="smollm2-135m", dataset="hand", neurons=neurons))
    steps, outcome = [], {}
    counter = lm.model.register_forward_hook(lambda *a: steps.append(time.monotonic()))

    def run():
        try:
            outcome["returned"] = harness_panel.harness_ui(
                "hand",
                "zero",
                2.0,
                "all",
                TASK,
                str(long_task),
                400,
                0,
                0,
                -1,
                0,
                False,
                state,
                progress=lambda *a, **k: None,
            )
        except gr.Error as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    try:
        worker.start()
        deadline = time.monotonic() + 120
        while len(steps) < 3 and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(steps) >= 3, outcome  # the harness is scoring its first condition
        locate_tab.cancel_ui(state)  # what the Cancel button calls
        pressed = time.monotonic()
        worker.join(120)
    finally:
        counter.remove()
    # a cancelled job is no error (issue #33): a grey "Cancelled" notice, the page left as it was (gr.skip())
    assert not worker.is_alive() and "error" not in outcome
    assert outcome["returned"] == gr.skip() and not state.history
    assert len([t for t in steps if t > pressed]) <= 1  # at most the batch under way when Cancel came
    assert lm.lock.acquire(timeout=5)
    lm.lock.release()

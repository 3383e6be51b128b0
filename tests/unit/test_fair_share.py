"""Fair share of one machine (issue #25): length limits on every typed text, one running job per visitor, and
Cancel or a closed tab that stop a job at its next model step and free the model's lock. Plumbing, on the
tiny random model; the real model's harness run is cancelled in tests/integration/test_fair_share.py."""

import threading
import time
from types import SimpleNamespace

import gradio as gr
import pytest

from cnl_core import fields as F
from cnl_core.errors import Cancelled, CNLError, ParameterError
from cnl_core.model.loading import ModelSpec
from tests.ui_calls import locate_in
from ui.session import Located, new_session
from ui.visitors import VISITORS, start_session, tab_closed

LONG = "x" * 100_000


def _located_state():
    from tests.unit.test_results import result

    state = new_session()
    state.located["m:d"] = Located(result())
    return state


def test_a_100000_character_prompt_is_refused_before_the_model_is_asked_for():
    from ui.tabs import steer_panel

    state = _located_state()
    state.model = lambda: pytest.fail("the model was asked for")
    with pytest.raises(gr.Error, match="prompt: 100,000 characters is too long; the limit is 4,000"):
        next(steer_panel.steer_ui("m:d", "zero", 2.0, "all", LONG, 16, 0, state))


@pytest.mark.parametrize(
    "call,field",
    [
        (
            lambda: __import__("ui.tabs.data_tab", fromlist=["x"]).add_upload(
                LONG, "q", "a", "", "{prompt}", [], _pending()
            ),
            F.UPLOAD_NAME,
        ),
        (
            lambda: __import__("ui.tabs.data_tab", fromlist=["x"]).add_upload(
                "n", "q", "a", LONG, "{prompt}", [], _pending()
            ),
            F.LABELS,
        ),
        (
            lambda: __import__("ui.tabs.data_tab", fromlist=["x"]).add_upload(
                "n", "q", "a", "", "{prompt}" + LONG, [], _pending()
            ),
            F.TEMPLATE,
        ),
        (lambda: __import__("cnl_core.inspect.neuron", fromlist=["x"]).parse_neuron(LONG), F.NEURON),
        (lambda: __import__("ui.tabs.studies_tab", fromlist=["x"])._fractions(LONG), F.FRACTIONS),
        (lambda: __import__("cnl_core.evaluate.harness", fromlist=["x"]).parse_tasks(LONG), F.TASK_NAMES),
        (lambda: __import__("cnl_core.model.loading", fromlist=["x"]).memory_plan(ModelSpec(LONG)), F.MODEL_NAME),
    ],
)
def test_every_typed_text_is_refused_past_its_length_naming_the_field(call, field):
    with pytest.raises((CNLError, gr.Error), match=f"{field.label}: 100,0.. characters is too long"):
        call()


def _pending():
    from ui.session import PendingUpload

    state = new_session()
    state.pending_upload = PendingUpload("/nonexistent.csv", "x.csv", ["q", "a"], 1)
    return state


def test_every_text_box_of_the_dashboard_has_a_length_from_fields():
    from ui.app import build_app

    demo = build_app()
    limits = {f.max_chars for f in F.TEXTS}
    inputs = {id(b): b for fn in demo.fns.values() for b in fn.inputs if isinstance(b, gr.Textbox)}
    assert len(inputs) >= 8
    assert all(box.max_length in limits for box in inputs.values()), [
        box.label for box in inputs.values() if box.max_length not in limits
    ]


def test_the_app_frees_a_closed_tab_and_queues_the_memory_estimate():
    from ui.app import build_app

    demo = build_app()
    assert any(t[1] == "unload" for fn in demo.fns.values() for t in fn.targets)
    estimates = [fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", "") == "estimate_ui"]
    assert estimates and all(fn.queue is not False and fn.concurrency_id == "estimate" for fn in estimates)


def test_one_running_job_per_visitor_and_a_cancelled_one_is_waited_for():
    state, started, release = new_session(), threading.Event(), threading.Event()

    def first():
        with VISITORS.job(state, "Locate"):
            started.set()
            release.wait(10)

    worker = threading.Thread(target=first)
    worker.start()
    started.wait(5)
    with pytest.raises(ParameterError, match="Your Locate job is still running .* one job at a time per visitor"):
        with VISITORS.job(state, "Intervene"):
            pass
    with VISITORS.job(new_session(), "Intervene"):  # another visitor is not held up
        pass
    state.cancel.set()  # Cancel pressed: the next job waits for the first to stop instead of being refused
    threading.Timer(0.5, release.set).start()
    with VISITORS.job(state, "Intervene") as job:
        assert job.name == "Intervene" and not state.cancel.is_set()
    worker.join(5)


def test_a_closed_tab_stops_its_locate_at_the_next_batch_and_frees_its_session(tiny_model_folder, score_cache):

    request = SimpleNamespace(session_hash="tab-1")
    state = start_session(request)
    state.spec = ModelSpec(tiny_model_folder, device="cpu")
    lm = state.model()
    steps, outcome = [], {}
    lm.model.register_forward_hook(lambda *a: steps.append(1))

    def run():
        try:
            outcome["returned"] = locate_in(state, ["arithmetic"], 1000, batch_size=2, progress=lambda *a, **k: None)
        except gr.Error as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while len(steps) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    tab_closed(request)  # Gradio's demo.unload, when the tab's heartbeat stops
    worker.join(30)
    assert not worker.is_alive() and outcome == {"returned": gr.skip()}  # cancelled: the page keeps what it shows
    assert lm.lock.acquire(timeout=5)
    lm.lock.release()
    assert VISITORS.running(state) is None and state.located == {}


def test_steering_hears_cancel_between_tokens(tiny_model_folder):
    from cnl_core.evaluate.steer import steer_stream
    from cnl_core.model.loading import load_model

    lm = load_model(ModelSpec(tiny_model_folder, device="cpu"))
    cancel = threading.Event()
    stream = steer_stream(lm, "Question: 1+1?", {"baseline": None}, 50, cancel=cancel)
    next(stream)
    cancel.set()
    with pytest.raises(Cancelled, match="Cancelled after 1 of 50 new tokens"):
        next(stream)

"""ZeroGPU: heavy handlers run inside `spaces.GPU` with a duration from their inputs; elsewhere nothing changes."""

import importlib
import importlib.machinery
import inspect
import pickle
import sys
import threading
import types

import gradio as gr
import pytest

from ui import costs, gpu, wiring
from ui.session import Session
from ui.tabs import (
    demo_panel,
    harness_panel,
    inspector_panel,
    intervene_tab,
    knowledge_panel,
    locate_tab,
    null_panel,
    steer_panel,
    studies_tab,
)

HEAVY = [
    harness_panel.harness_ui,
    demo_panel.demo_ui,
    inspector_panel.inspect_ui,
    intervene_tab.intervene_ui,
    intervene_tab.dose_ui,
    intervene_tab.matrix_ui,
    locate_tab.locate_ui,
    steer_panel.steer_ui,
    studies_tab.decouple_ui,
    studies_tab.specificity_ui,
]


@pytest.fixture()
def fake_spaces(monkeypatch):
    """A stand-in for the `spaces` package: GPU(fn, duration) records the duration each call asks for."""
    module = types.ModuleType("spaces")
    module.__spec__ = importlib.machinery.ModuleSpec("spaces", None)
    module.asked = []

    def GPU(fn, duration):
        def on_the_gpu(*args, **kwargs):
            module.asked.append(duration(*args, **kwargs))
            return fn(*args, **kwargs)

        on_the_gpu.task = fn
        return on_the_gpu

    module.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", module)
    return module


def test_locally_the_decorator_hands_back_the_handler_itself(monkeypatch, fake_spaces):
    def handler(a, b=1):
        return a + b

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert gpu.on_gpu(lambda a, b=1: 100)(handler) is handler  # `spaces` importable, but no ZeroGPU here
    assert handler(2, b=3) == 5 and handler.gpu_seconds(2) == 100 and not fake_spaces.asked
    for fn in HEAVY:  # every heavy handler is the error-wrapped function, nothing else on top
        assert callable(fn.gpu_seconds) and fn.__code__.co_name in ("wrapper", "streaming")
    with pytest.raises(gr.Error, match="Pick at least one dataset"):
        locate_tab.locate_ui(
            [], 20, 2, 0, "grad_x_act", 20, "right", 0, 0, 8, "relative", 0.2, 0.5, 10, 2.0, "positive", None
        )


def test_on_zero_gpu_the_handler_runs_inside_spaces_gpu_with_its_duration(monkeypatch, fake_spaces):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert gpu.zero_gpu()
    wrapped = gpu.on_gpu(lambda a, b=1: a * 10)(lambda a, b=1: a + b)
    assert wrapped.task(2) == 3  # the fake's wrapper, around the handler
    assert wrapped(7, b=1) == 8 and wrapped(50) == 51 and wrapped(1) == 2
    assert fake_spaces.asked == [70, gpu.MAX_S, gpu.MIN_S]  # the estimate, capped at both ends
    try:  # the real tab, imported on ZeroGPU: its heavy handlers are wrapped
        tab = importlib.reload(locate_tab)
        assert tab.locate_ui.task.__wrapped__.__name__ == "locate_ui"
        assert tab.relocalize_ui.__name__ == "relocalize_ui" and not hasattr(tab.relocalize_ui, "task")
        with pytest.raises(gr.Error, match="Pick at least one dataset"):
            tab.locate_ui(
                [], 20, 2, 0, "grad_x_act", 20, "right", 0, 0, 8, "relative", 0.2, 0.5, 10, 2.0, "positive", None
            )
        assert fake_spaces.asked[-1] == gpu.MIN_S  # no dataset: the start-up time, at the floor
    finally:
        monkeypatch.delenv("SPACES_ZERO_GPU")
        importlib.reload(locate_tab)


def test_on_zero_gpu_the_wrapper_still_shows_the_handlers_parameters(monkeypatch, fake_spaces):
    """app.py reads each handler's inputs from its parameters: a wrapper that hid them would wire nothing."""

    def handler(located_on, n, state, progress=gr.Progress()):
        return n

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    wrapped = gpu.on_gpu(lambda n, **_: n)(handler)
    assert wrapped is not handler and wiring.parameters(wrapped) == ["located_on", "n", "state"]
    assert wrapped("a", 3, None) == 3 and fake_spaces.asked == [gpu.MIN_S]


def test_durations_follow_the_work_and_survive_bad_inputs():
    seconds = locate_tab.locate_ui.gpu_seconds
    small = seconds(["add1"], 20, 2, 0, "grad_x_act", 20)
    bigger = seconds(["add1", "gsm8k"], 60, 2, 0, "grad_x_act", 20)
    assert gpu.MIN_S <= small < bigger <= gpu.MAX_S
    assert seconds(["add1"], 20, 2, 0, "grad_x_act", 20, progress=object()) == small  # gradio's extra inputs
    assert seconds(["gsm8k"], 100, 2, 0, "integrated_gradients", 20) == gpu.MAX_S
    assert seconds(["add1"], None, 2, 0, "grad_x_act", 20) == gpu.FALLBACK_S  # the handler reports the empty box
    iv = intervene_tab.intervene_ui.gpu_seconds
    assert iv("a", "zero", 2, "all", ["add1"], 8, 0, 2, 0, 8, False, None) < iv(
        "a", "zero", 2, "all", ["add1"], 400, 0, 2, 0, 8, False, None
    )
    assert steer_panel.steer_ui.gpu_seconds(
        "a", "zero", 2, "all", "hi", 64, 0, None
    ) < steer_panel.steer_ui.gpu_seconds("a", "zero", 2, "all", "hi", 512, 0, None)
    lm_eval = harness_panel.harness_ui.gpu_seconds
    assert lm_eval("a", "zero", 2, "all", "arc_easy", None, 8, 0, 2, 0, 8, False, None) < lm_eval(
        "a", "zero", 2, "all", "arc_easy,hellaswag", None, 8, 0, 2, 0, 8, False, None
    )
    assert intervene_tab.dose_ui.gpu_seconds(
        "a", "all", ["add1"], 8, 0, 0, 8, None
    ) < intervene_tab.dose_ui.gpu_seconds("a", "all", ["add1"], 80, 0, 0, 8, None)


def test_the_gpu_time_asked_is_the_cost_models_expectation_with_a_margin():
    """One estimate per kind of job (costs.py): the GPU asks for what the button's line under it says, doubled."""
    inputs = {"targets": ["add1"], "n": 200, "draws": 2, "fewshot": -1, "max_new": 0}
    expected = costs.expected("intervene", **inputs)
    assert expected is not None
    asked = intervene_tab.intervene_ui.gpu_estimate(**inputs, located_on="a", state=None)
    assert asked == gpu.START_S + gpu.MARGIN * expected.seconds
    assert {fn.kind for fn in HEAVY} >= {"intervene", "dose", "matrix", "steer", "locate", "inspect", "demo"}


@pytest.mark.parametrize("handler", HEAVY + [knowledge_panel.knowledge_ui, null_panel.null_ui])
def test_each_estimate_reads_its_inputs_by_the_handlers_own_names(handler):
    """The handler's signature is the one place its inputs' order is written: an estimate names what it reads,
    and every name must be one of the handler's parameters (a renamed parameter fails here, not on a Space)."""
    read = [
        name for name, p in inspect.signature(handler.gpu_estimate).parameters.items() if p.kind is not p.VAR_KEYWORD
    ]
    assert read and set(read) <= set(wiring.parameters(handler)), (read, wiring.parameters(handler))


def test_a_session_crosses_a_process_boundary_without_its_cancel_event():
    state = Session(uploads=["x.csv"])
    state.cancel.set()
    copy = pickle.loads(pickle.dumps(state))
    assert copy.id == state.id and copy.uploads == ["x.csv"] and copy.spec == state.spec
    assert isinstance(copy.cancel, type(threading.Event())) and not copy.cancel.is_set()

"""The job decorator (ui/jobs.py): one kind per job, a Run for the handler, and outputs as many as app.py wires."""

import inspect

import gradio as gr
import pytest

from ui import wiring
from ui.app import build_app
from ui.jobs import Kind, Run, checked, job
from ui.session import Session


def test_every_job_handler_returns_as_many_values_as_app_py_wires_outputs():
    """Gradio fills the outputs by position: a handler's declared count must be its events' output count."""
    demo = build_app()
    wired: dict[str, set[int]] = {}
    for fn in demo.fns.values():
        kind = getattr(fn.fn, "kind", None)
        if kind is not None:
            wired.setdefault(fn.fn.__name__, set()).add(len(fn.outputs))
            assert len(fn.outputs) == fn.fn.outputs, (fn.fn.__name__, len(fn.outputs), fn.fn.outputs)
    assert len(wired) >= 12, sorted(wired)


def test_the_decorator_hands_the_handler_one_run_and_checks_its_return():
    seen = {}

    @job(Kind.DOSE, outputs=2, on_gpu=False)
    def handler(n, state, run):
        seen["run"] = run
        return (n, n) if n else (n,)

    assert wiring.parameters(handler) == ["n", "state"]  # Gradio and app.py see `progress`, never `run`
    assert isinstance(inspect.signature(handler).parameters["progress"].default, gr.Progress)
    state = Session()
    assert handler(3, state) == (3, 3)
    run = seen["run"]
    assert isinstance(run, Run) and run.kind == "dose" and run.cancel is state.cancel
    with pytest.raises(gr.Error, match="handler returned 1 value"):  # a bug, shown as one (errors.py)
        handler(0, state)


def test_a_streaming_handler_is_checked_at_every_step():
    @job(Kind.STEER, outputs=2, on_gpu=False)
    def handler(state, run):
        yield 1, 2
        yield (1,)

    frames = handler(None)
    assert next(frames) == (1, 2)
    with pytest.raises(gr.Error, match="returned 1 value"):
        next(frames)


def test_one_output_takes_any_value_and_many_take_a_tuple_of_that_length():
    assert checked("h", "text", 1) == "text"
    assert checked("h", (1, 2, 3), 3) == (1, 2, 3)
    with pytest.raises(TypeError, match="h returned 2 value"):
        checked("h", (1, 2), 3)

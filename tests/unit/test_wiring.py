"""A handler's inputs come from its own signature (ui/wiring.py): found by name, never guessed."""

from types import SimpleNamespace

import gradio as gr
import pytest

from ui import wiring
from ui.app import build_app
from ui.errors import shows_errors


@shows_errors
def handler(located_on, n, state, evt: gr.SelectData = None, progress=gr.Progress()):
    return located_on, n


def test_inputs_follow_the_signature_and_leave_out_what_gradio_fills():
    with gr.Blocks():
        tab = SimpleNamespace(n=gr.Number(), located_on=gr.Dropdown(), button=gr.Button())
        state = gr.State()
        assert wiring.parameters(handler) == ["located_on", "n", "state"]  # through the decorator
        assert wiring.inputs(handler, tab, state=state) == [tab.located_on, tab.n, state]


def test_a_name_found_nowhere_or_twice_is_refused_by_name():
    with gr.Blocks():
        one, two = SimpleNamespace(n=gr.Number(), located_on=gr.Dropdown()), SimpleNamespace(n=gr.Number())
        state = gr.State()
        with pytest.raises(LookupError, match="reads `n`, but 2 groups have it"):
            wiring.inputs(handler, one, two, state=state)
        with pytest.raises(LookupError, match="reads `state`, but none of the groups"):
            wiring.inputs(handler, one)
        assert wiring.inputs(handler, one, two, n=two.n, state=state)[1] is two.n  # named: the choice is explicit
        with pytest.raises(LookupError, match="handler has no parameter `max_new`"):  # a renamed parameter
            wiring.inputs(handler, one, n=two.n, max_new=two.n, state=state)


def test_every_handler_of_the_dashboard_is_wired_by_its_parameter_names():
    """Each event's inputs are as many as its handler reads (a stale list would shift every value by one)."""
    demo = build_app()
    checked = 0
    for fn in demo.fns.values():
        if fn.fn is None or fn.fn.__name__ == "<lambda>":
            continue
        names = wiring.parameters(fn.fn)
        assert len(names) == len(fn.inputs), (fn.fn.__name__, names, len(fn.inputs))
        checked += 1
    assert checked >= 30

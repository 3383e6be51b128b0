"""The dashboard's knowledge-study and empirical-null handlers, called directly on the built-in model."""

import gradio as gr
import pytest

from tests.ui_calls import locate_in, quiet
from ui.session import new_session
from ui.tabs import knowledge_panel, null_panel


def test_knowledge_panel_runs_fidelity_and_refuses_bad_input(lm, score_cache, tmp_path):
    state = new_session()
    text, fidelity, reliability, editing = knowledge_panel.knowledge_ui(
        ["capital"], None, 2, ["fidelity"], 0.2, state, progress=quiet
    )
    assert "same fact, other wording" in text and "capability split" in text
    assert fidelity is not None and reliability is None and editing is None
    with pytest.raises(gr.Error, match="at least one part"):
        knowledge_panel.knowledge_ui(["capital"], None, 2, [], 0.2, state, progress=quiet)
    with pytest.raises(gr.Error, match="facts per relation"):
        knowledge_panel.knowledge_ui(["capital"], None, 500, ["fidelity"], 0.2, state, progress=quiet)
    bad = tmp_path / "facts.csv"
    bad.write_bytes(b"subject,relation\nx,y\n")
    with pytest.raises(gr.Error, match="subject, relation, answer"):
        knowledge_panel.knowledge_ui([], str(bad), 2, ["fidelity"], 0.2, state, progress=quiet)


def test_null_panel_compares_the_picked_set_with_unrelated_data(lm, score_cache):
    state = new_session()
    _, state = locate_in(state, ["add1_content"], 3)
    text = null_panel.null_ui("smollm2-135m:add1_content", "unrelated", "successor", 1, state, progress=quiet)
    assert "empirical null (add1_content vs successor" in text and "split IoU" in text

"""Issue #33 with the real model: a baseline measured once and read by the Data tab, a cancelled multi-dataset
Intervene that keeps the dataset it finished, and a reading under the numbers."""

import gradio as gr
import pytest

from cnl_core.cli import main
from cnl_core.errors import Cancelled
from cnl_core.experiments import baselines
from tests.ui_calls import locate_in, quiet
from ui.session import new_session
from ui.tabs import baseline_panel, intervene_tab


def test_a_baseline_is_measured_once_and_marks_the_data_tab(lm, score_cache, monkeypatch, capsys):
    state = new_session()
    page_model = state.model()  # the page's model, as the Model tab loads it (its fingerprint names its folder)
    boxes, note = baseline_panel.panel_ui(["add1"], state)
    assert "not measured yet" in note and ("add1", "add1") in boxes["choices"]
    measured = baselines.baseline(page_model, "add1")
    stored = baselines.stored_baseline(page_model, "add1")
    assert stored is not None, sorted(p.name for p in (score_cache / "results").rglob("*"))
    assert stored == measured and stored.n == baselines.BASELINE.n and stored.verdict == "can do"

    def never(*args, **kwargs):
        raise AssertionError("a stored baseline was measured again")

    monkeypatch.setattr(baselines, "measure_baseline", never)
    assert baselines.baseline(page_model, "add1").accuracy == stored.accuracy  # served from the store
    boxes, note = baseline_panel.panel_ui(["add1"], state)
    label = dict((v, k) for k, v in boxes["choices"])["add1"]
    assert label == f"add1 · {stored.accuracy:.0%} ✓ can do" and f"**can do**: add1 {stored.accuracy:.0%}" in note
    assert boxes["value"] == ["add1"]
    with pytest.raises(SystemExit):  # the CLI's command checks its names before it loads a model
        main(["baselines", "--dataset", "add1", "no-such-task"])
    assert "Unknown dataset 'no-such-task'" in capsys.readouterr().err


def test_a_cancelled_intervene_keeps_the_datasets_it_finished(lm, score_cache, monkeypatch):
    state = new_session()
    locate_in(state, ["add1"], 4, batch_size=8)
    real, calls = intervene_tab.served, []

    def cancelled_second(*args, **kwargs):
        calls.append(args[0].dataset)  # the request: its dataset
        if len(calls) == 2:
            raise Cancelled("Cancelled after 0 of 4 samples of successor.")
        return real(*args, **kwargs)

    monkeypatch.setattr(intervene_tab, "served", cancelled_second)
    out = intervene_tab.intervene_ui(
        "smollm2-135m:add1", "zero", 2.0, "all", ["add1", "successor"], 4, 0, 1, 1, 4, False, state, progress=quiet
    )
    assert out == gr.skip()  # a grey "Cancelled" notice; the page keeps what it shows
    assert [[r.dataset for r in run] for run in state.history] == [["add1"]]  # the finished one is kept
    *outputs, reading = intervene_tab.cancelled_ui(state)
    assert "Nothing" not in reading and "add1 (4 samples, 1-shot, seed 0): zeroing the" in reading
    assert "add1" in outputs[2].to_string()  # the table shows it
    # a run cancelled before any dataset finished leaves no empty run behind
    calls.clear()
    calls.append("first")
    assert (
        intervene_tab.intervene_ui(
            "smollm2-135m:add1", "zero", 2.0, "all", ["successor"], 4, 0, 1, 1, 4, False, state, progress=quiet
        )
        == gr.skip()
    )
    assert len(state.history) == 1

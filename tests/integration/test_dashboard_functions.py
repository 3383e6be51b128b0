"""The dashboard's handlers called directly: export, re-load, relocalize, bad re-load files."""

import json

import gradio as gr
import pytest

import dashboard


def _quiet(*args, **kwargs):
    return None


@pytest.fixture()
def located_state(lm, score_cache):
    state = dashboard.new_session()
    out = dashboard.locate_ui(["arithmetic"], 2, 2, 0, "grad_x_act", 20, "relative", 0.1, 0.5, 100, 3.0, 4, state,
                              progress=_quiet)
    assert "arithmetic" in out[0]
    return out[1]


def test_relocalize_export_and_reload(located_state, tmp_path):
    state = located_state
    before = state["runs"]["smollm2-135m:arithmetic"]["result"]["n_located"]
    md, state, *_ = dashboard.relocalize_ui("relative", 0.05, 0.5, 100, 3.0, state)
    assert state["runs"]["smollm2-135m:arithmetic"]["result"]["n_located"] >= before
    files = dashboard.export_ui(state)
    names = {f.rsplit("/", 1)[-1] for f in files}
    assert {"located_smollm2-135m_arithmetic.json", "splits_smollm2-135m_arithmetic.csv",
            "heatmap_smollm2-135m_arithmetic.png", "heatmap_smollm2-135m_arithmetic.svg"} <= names
    assert all(str(dashboard.cache_root()) in f for f in files)
    located = next(f for f in files if f.endswith(".json"))
    fresh = dashboard.new_session()
    msg, fresh, *_ = dashboard.reload_ui(located, fresh)
    assert "Reloaded" in msg and len(fresh["runs"]) == 1
    reloaded = next(iter(fresh["runs"].values()))["result"]
    assert reloaded["neurons"] == json.loads(open(located).read())["neurons"]
    heat, bars, overlap, iou, chance, top = dashboard.compare_outputs(fresh, None)
    assert heat is not None and len(top) > 0


@pytest.mark.parametrize("content", ['{"neurons": [[99, 0]], "grid": {"n_layers": 30, "width": 1536}}', "not json",
                                     "[1, 2]", '{"grid": {"n_layers": 30, "width": 1536}, "neurons": [[0, 1]]}'])
def test_bad_reload_files_give_a_clear_error(tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(gr.Error):
        dashboard.reload_ui(str(bad), dashboard.new_session())

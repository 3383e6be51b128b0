"""The dashboard's handlers called directly: locate, relocalize, export, re-load, bad re-load files."""

import json

import gradio as gr
import pytest

from cnl_core.paths import cache_root
from cnl_core.serialize import to_data
from tests.ui_calls import locate_in, quiet
from ui.session import new_session
from ui.tabs import compare_tab, export_tab, inspector_panel, locate_tab, studies_tab


@pytest.fixture()
def located_state(lm, score_cache):
    state = new_session()
    md, state = locate_in(state, ["arithmetic"], 2)
    assert "arithmetic" in md
    return state


def test_relocalize_export_and_reload(located_state):
    state = located_state
    label = "smollm2-135m:arithmetic"
    before = state.located[label].result
    md, state = locate_tab.relocalize_ui("relative", 0.05, 0.5, 100, 3.0, "positive", state)
    after = state.located[label].result
    assert after.n_located >= before.n_located and after.params.tau == 0.05 and before.params.tau == 0.1
    files = export_tab.export_ui(state)
    names = {f.rsplit("/", 1)[-1] for f in files}
    assert {
        "located_smollm2-135m_arithmetic.json",
        "splits_smollm2-135m_arithmetic.csv",
        "heatmap_smollm2-135m_arithmetic.png",
        "heatmap_smollm2-135m_arithmetic.svg",
    } <= names
    assert all(str(cache_root()) in f for f in files)
    located = next(f for f in files if f.endswith(".json"))
    fresh = new_session()
    msg, fresh, *_ = export_tab.reload_ui(located, fresh)
    assert "Reloaded" in msg and len(fresh.located) == 1
    reloaded = next(iter(fresh.located.values())).result
    assert to_data(reloaded)["neurons"] == json.loads(open(located).read())["neurons"]
    assert to_data(reloaded) == to_data(after)  # the file reads back to the very same result
    heat, bars, overlap, iou, chance, top, click_map = compare_tab.outputs(fresh)
    assert heat is not None and len(top) > 0 and click_map.shape == (30 * 12, 48 * 16, 3)


@pytest.mark.parametrize(
    "content",
    [
        '{"neurons": [[99, 0]], "grid": {"n_layers": 30, "width": 1536}}',
        "not json",
        "[1, 2]",
        '{"grid": {"n_layers": 30, "width": 1536}, "neurons": [[0, 1]], "model": 5}',
    ],
)
def test_bad_reload_files_give_a_clear_error_and_leave_the_session_as_it_was(tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    state = new_session()
    with pytest.raises(gr.Error):
        export_tab.reload_ui(str(bad), state)
    assert state.located == {}


def test_a_hand_made_set_without_names_reloads(tmp_path):
    f = tmp_path / "mine.json"
    f.write_text('{"grid": {"n_layers": 30, "width": 1536}, "neurons": [[0, 1], [29, 1535]]}')
    msg, state, *_ = export_tab.reload_ui(str(f), new_session())
    (entry,) = state.located.values()
    assert "2 neurons" in msg and entry.result.dataset == "unnamed" and entry.prominence() is None


def test_a_set_of_another_models_grid_reloads_with_a_note(located_state, tmp_path):
    other, same = tmp_path / "other.json", tmp_path / "same.json"
    other.write_text('{"grid": {"n_layers": 3, "width": 10}, "neurons": [[0, 1]]}')
    same.write_text('{"grid": {"n_layers": 30, "width": 1536}, "neurons": [[0, 1]]}')
    msg, state, *_ = export_tab.reload_ui(str(other), located_state)
    assert "3 x 10" in msg and "30 x 1536" in msg and "load their model before Intervene" in msg
    msg, state, *_ = export_tab.reload_ui(str(same), state)
    assert "grid" not in msg


def test_sweep_negative_set_and_decoupling_from_the_dashboard(located_state):
    state = located_state
    sweep = locate_tab.sweep_ui(state).to_dict()
    assert len(sweep["hconcat"]) == 2 and len(sweep["datasets"][next(iter(sweep["datasets"]))]) == 9
    names = state.sets_on(state.model().grid)
    assert "smollm2-135m:arithmetic/negative" in names and "smollm2-135m:arithmetic/split1" in names
    md, state = locate_tab.relocalize_ui("relative", 0.1, 0.5, 100, 3.0, "negative", state)
    assert "sign negative" in md
    plot, table = studies_tab.decouple_ui(
        "arithmetic",
        "imdb",
        2,
        "0 1",
        1,
        "grad_x_act",
        20,
        "right",
        None,
        None,
        4,
        "relative",
        0.1,
        0.5,
        100,
        3.0,
        "positive",
        state,
        progress=quiet,
    )
    full = table[table["shared fraction f"] == 1.0]
    assert len(table) == 4 and (full["iou"] == 1.0).all()
    with pytest.raises(gr.Error, match="at least two datasets"):
        studies_tab.sharing_ui(state)


def test_the_click_map_opens_the_strongest_neuron_of_a_cell_and_the_inspector_describes_it(located_state):
    state = located_state
    entry = next(iter(state.located.values()))
    layer, index = entry.result.neurons.pairs()[0]
    values = entry.prominence()
    x = (index // 32) * 16 + 5  # bins of 32 neurons, 16 px wide
    y = (29 - layer) * 12 + 5  # last layer on top, 12 px high
    picked = inspector_panel.neuron_at(state, x, y)
    pl, pi = (int(v) for v in picked.split(":"))
    assert pl == layer and pi // 32 == index // 32
    assert values[pl, pi] == values[layer, (index // 32) * 32 : (index // 32 + 1) * 32].max()
    summary, promoted, suppressed, stats, highlighted = inspector_panel.inspect_ui(picked, ["arithmetic"], 2, state)
    assert f"Neuron {picked}" in summary and "rank" in summary
    assert len(promoted) >= 10 and list(stats["dataset"]) == ["arithmetic"] and highlighted


def test_the_steering_playground_streams_three_answers(located_state):
    from ui.tabs import steer_panel

    state = located_state
    label = next(iter(state.located))
    frames = list(steer_panel.steer_ui(label, "zero", 2.0, "all", "Question: What is 2 + 5?\nAnswer:", 3, 0, state))
    assert len(frames) >= 2 and frames[-1][3] is not None  # answers grow, then the per-token change comes
    base, changed, control, diff, note = frames[-1]
    assert base and 1 <= len(diff) <= 3 and len(frames) == len(diff) + 1  # one frame per token, then the change
    lost = sum(1 for _, d in diff if d > 0.05)  # a loss is drawn red (positive), the colour the note names
    assert f"{lost} lose probability (red)" in note
    with pytest.raises(gr.Error, match="Type a prompt"):
        list(steer_panel.steer_ui(label, "zero", 2.0, "all", "  ", 3, 0, state))
    with pytest.raises(gr.Error, match="Positions must be one of all, answer, not 'middle'"):
        list(steer_panel.steer_ui(label, "zero", 2.0, "middle", "Hi", 3, 0, state))


def test_the_matrix_honours_the_tabs_token_positions(located_state):
    """Issue #28: the matrix handler dropped `positions` (every matrix changed every position)."""
    from ui.tabs import intervene_tab

    state = located_state
    cells = {}
    for positions in ("answer", "all"):
        _, state = intervene_tab.matrix_ui(
            "zero", 2.0, positions, ["add1"], 2, 0, 0, 4, "gold_loglik", state, progress=quiet
        )
        assert state.matrix.positions == positions and to_data(state.matrix)["positions"] == positions
        cells[positions] = state.matrix.cell("arithmetic", "add1", "delta_gold_loglik")
    assert cells["answer"] != cells["all"]  # the prompt's positions left alone: a different change


def test_test_on_follows_the_chosen_set(located_state):
    """A set located on one dataset is first tested on that dataset, not on the box's default (gsm8k)."""
    from ui.tabs import intervene_tab

    assert intervene_tab.follow_set("smollm2-135m:arithmetic", located_state)["value"] == ["arithmetic"]
    assert "value" not in intervene_tab.follow_set("no such set", located_state)

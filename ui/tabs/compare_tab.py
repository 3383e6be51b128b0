"""Tab 4: the located sets side by side: heatmap, per-layer counts, overlap and IoU against chance."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pandas as pd

from cnl_core import comparison_matrix
from cnl_core.report import charts, exports

from ..errors import shows_errors
from ..session import Session, session
from . import inspector_panel, null_panel

HELP = (
    "The **heatmap** is the paper's Figure 4: layers (rows) by neurons (pooled bins); darker = selected by more "
    "samples. **Overlap** = |A∩B| / min(|A|,|B|), **IoU** = |A∩B| / |A∪B|. The chance level is what random sets "
    "of the same sizes would give: a large gap means the location is not luck.\n\n"
    "*Next: **5 · Intervene**, switch them off and see what the model loses.*"
)


def build(dataset_names: list[str]) -> SimpleNamespace:
    gr.Markdown(HELP)
    pick = gr.Dropdown([], label="Located set for the heatmap")
    heatmap = gr.Plot(label="Neuron heatmap", show_label=False, elem_id="heatmap")
    layer_bars = gr.Plot(label="Per layer", show_label=False)
    with gr.Row():
        overlap = gr.Plot(label="Overlap rate", show_label=False)
        iou = gr.Plot(label="IoU", show_label=False)
    chance = gr.Dataframe(label="IoU against chance", wrap=True, headers=["set A", "set B", "IoU", "chance IoU"])
    null = null_panel.build(dataset_names)
    top = gr.Dataframe(label="Top located neurons (mean score; click a row to inspect it)", elem_id="top-neurons")
    insp = inspector_panel.build(dataset_names)
    return SimpleNamespace(
        pick=pick,
        top=top,
        inspector=insp,
        null=null,
        outputs=[heatmap, layer_bars, overlap, iou, chance, top, insp.click_map],
    )


def outputs(state: Session, selected: str | None = None) -> tuple:
    """Heatmap, per-layer bars, overlap and IoU matrices, chance table and top neurons."""
    if not state.located:
        return None, None, None, None, pd.DataFrame(), pd.DataFrame(), None
    label = selected if selected in state.located else state.labels()[-1]
    entry = state.located[label]
    grid = entry.result.grid
    heat = charts.located_heatmap(label, entry.result, entry.prominence())
    bars = charts.per_layer_bars(
        {lbl: e.result.neurons.per_layer_counts() for lbl, e in state.located.items() if e.result.grid == grid}
    )
    mat = comparison_matrix(state.sets_on(grid))
    overlap = charts.matrix_heatmap(mat.names, mat.overlap_rate, "Overlap rate", domain=[0, 1])
    iou = charts.matrix_heatmap(mat.names, mat.iou, "IoU", domain=[0, 1], chance=mat.chance_iou)
    chance = pd.DataFrame(
        [
            {
                "set A": mat.names[i],
                "set B": mat.names[j],
                "IoU": round(mat.iou[i][j], 4),
                "chance IoU": round(mat.chance_iou[i][j], 6),
            }
            for i in range(len(mat.names))
            for j in range(i + 1, len(mat.names))
        ]
    )
    return (
        heat,
        bars,
        overlap,
        iou,
        chance,
        exports.neurons_table(entry.result).head(30).round(4),
        inspector_panel.click_map(state, label),
    )


@shows_errors
def compare_ui(selected, state):
    return outputs(session(state), selected)


@shows_errors
def refresh_ui(state):
    """The Compare tab after a locate, a threshold change or a re-load."""
    return outputs(session(state))

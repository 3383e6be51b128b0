"""The neuron inspector, inside the Compare tab: click the map or a top-neuron row, see what the neuron does."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pandas as pd
import torch

from cnl_core import DEFAULTS, InspectRequest, ParameterError, neuron_ranks, parse_neuron, resolve_dataset
from cnl_core import fields as F

from .. import widgets
from ..errors import shows_errors
from ..jobs import Kind, job
from ..session import Session, session
from ..shared_work import served

BINS, CELL_W, CELL_H = 48, 16, 12  # the click map: one cell per (layer, bin of neighbouring neurons)
HELP = (
    "**Inspect a neuron.** Click a cell of the map (its strongest neuron opens; rows are layers, top = last) or "
    "a row of the top-neurons table, or type LAYER:INDEX. You get where it fires on each dataset, the samples "
    "that excite it most (tokens shaded by activation) and the words its output pushes up and down."
)


def build(dataset_names: list[str]) -> SimpleNamespace:
    with gr.Accordion("Inspect a neuron", open=False, elem_id="inspector") as accordion:
        gr.Markdown(HELP)
        # the caption sits above the map, not on it: a label drawn over the image hid the last layers' rows
        gr.Markdown(
            f"**Click map**: a row per layer (the last on top), {BINS} cells "
            f"per row, each a bin of neighbouring neurons; darker = selected by more samples; ★ = in several sets."
        )
        click_map = gr.Image(
            show_label=False, interactive=False, elem_id="click-map", type="numpy", height=30 * CELL_H + 10
        )
        with gr.Row():
            neuron = gr.Textbox(label="neuron (LAYER:INDEX)", elem_id="neuron-box", max_length=F.NEURON.max_chars)
            datasets = gr.Dropdown(dataset_names, value=[DEFAULTS.dataset], multiselect=True, label="datasets")
            n = widgets.number(F.INSPECT_N, DEFAULTS.inspect_n)
            button = gr.Button("Inspect", variant="primary", elem_id="inspect-btn")
            cancel = gr.Button("Cancel", variant="secondary", size="sm", min_width=80, scale=0)
        estimate = gr.Markdown()
        summary = gr.Markdown(elem_id="inspector-summary")
        with gr.Row():
            promoted = gr.Dataframe(label="Words it promotes (logit)", max_height=300, headers=["token", "logit"])
            suppressed = gr.Dataframe(label="Words it suppresses (logit)", max_height=300, headers=["token", "logit"])
        stats = gr.Dataframe(
            label="Activation per dataset",
            wrap=True,
            headers=["dataset", "samples", "tokens", "fires on", "mean", "p99", "max"],
        )
        examples = gr.HighlightedText(
            label="Samples that excite it most (darker = stronger)",
            combine_adjacent=False,
            show_legend=False,
            elem_id="inspector-examples",
        )
    return SimpleNamespace(
        click_map=click_map,
        neuron=neuron,
        datasets=datasets,
        n=n,
        button=button,
        cancel=cancel,
        accordion=accordion,
        estimate=estimate,
        summary=summary,
        outputs=[summary, promoted, suppressed, stats, examples],
    )


def shared_neurons(state: Session) -> set[tuple[int, int]]:
    """Neurons located in more than one of the session's sets."""
    seen: dict[tuple[int, int], int] = {}
    for entry in state.located.values():
        for layer, index in entry.result.neurons.pairs():
            seen[(layer, index)] = seen.get((layer, index), 0) + 1
    return {k for k, v in seen.items() if v > 1}


def click_map(state: Session, label: str | None = None) -> np.ndarray | None:
    """[height, width, 3] image of the selected set's heatmap, one cell per (layer, bin), last layer on top."""
    if not state.located:
        return None
    entry = state.located[label if label in state.located else state.labels()[-1]]
    values = entry.prominence()
    values = entry.result.neurons.mask().float() if values is None else values
    grid = _pooled(values)[0].numpy()[::-1]  # last layer first (top row)
    shade = (255 - 200 * np.clip(grid, 0, 1)).astype(np.uint8)
    image = np.repeat(np.repeat(shade, CELL_H, 0), CELL_W, 1)
    rgb = np.stack([image, image, np.full_like(image, 255)], -1)
    n_layers = values.shape[0]
    for layer, index in shared_neurons(state):
        row, col = n_layers - 1 - layer, index // _bin_size(values.shape[1])
        rgb[row * CELL_H + 3 : row * CELL_H + CELL_H - 3, col * CELL_W + 4 : col * CELL_W + CELL_W - 4] = (230, 120, 0)
    return rgb


def _bin_size(width: int) -> int:
    return max(1, -(-width // BINS))


def _pooled(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(max per bin, index of the strongest neuron per bin)."""
    n_layers, width = values.shape
    size = _bin_size(width)
    padded = torch.nn.functional.pad(values.float(), (0, size * BINS - width), value=-1.0)
    best, where = padded.view(n_layers, BINS, size).max(-1)
    return best.clamp(min=0), where + torch.arange(BINS).view(1, -1) * size


def neuron_at(state: Session, x: int, y: int, label: str | None = None) -> str:
    """The strongest neuron of the clicked cell, as LAYER:INDEX."""
    if not state.located:
        raise ParameterError("Locate neurons first: the map shows the located set.")
    entry = state.located[label if label in state.located else state.labels()[-1]]
    values = entry.prominence()
    values = entry.result.neurons.mask().float() if values is None else values
    n_layers = values.shape[0]
    layer = n_layers - 1 - min(n_layers - 1, max(0, y // CELL_H))
    column = min(BINS - 1, max(0, x // CELL_W))
    index = int(_pooled(values)[1][layer, column])
    return f"{layer}:{min(index, values.shape[1] - 1)}"


@shows_errors
def pick_from_map(label, state, evt: gr.SelectData):
    x, y = evt.index
    return neuron_at(session(state), int(x), int(y), label)


@shows_errors
def pick_from_table(table, evt: gr.SelectData):
    row = evt.index[0]
    return f"{int(table.iloc[row]['layer'])}:{int(table.iloc[row]['index'])}"


@job(Kind.INSPECT, outputs=5)
def inspect_ui(neuron, datasets, n, state, run):
    state = session(state)
    layer, index = parse_neuron(neuron)
    if not datasets:
        raise ParameterError("Pick at least one dataset to look at the neuron's activations.")
    n = F.INSPECT_N.check(n)
    cost = run.expected(datasets=datasets, n=n)
    lm = state.model()  # every input is checked before the model is loaded
    sets = {
        label: (e.result.neurons, [(t.layer, t.index) for t in e.result.top_neurons])
        for label, e in state.located.items()
        if e.result.grid == lm.grid
    }
    request = InspectRequest(layer, index, tuple(resolve_dataset(d) for d in datasets), n)
    page = served(request, lm, run, cost).value
    rep = replace(page, ranks=neuron_ranks(sets, layer, index))  # where it ranks in this visitor's own sets
    where = ", ".join(f"rank {r['rank'] or '>' + str(r['listed'])} of {r['of']} in {k}" for k, r in rep.ranks.items())
    shared = " **Shared by several located sets.**" if (layer, index) in shared_neurons(state) else ""
    summary = (
        f"### Neuron {layer}:{index}\n{where or 'Not in any located set of this session.'}{shared}\n\n"
        f"*Vocabulary projection: {rep.method}.*"
    )
    words = lambda items: pd.DataFrame([{"token": repr(t.token), "logit": round(t.logit, 3)} for t in items])  # noqa: E731
    stats = pd.DataFrame(
        [
            {
                "dataset": k,
                "samples": v.samples,
                "tokens": v.tokens,
                "fires on": f"{100 * v.firing_rate:.1f}%",
                "mean": f"{v.mean:+.3g}",
                "p99": f"{v.quantiles['p99']:+.3g}",
                "max": f"{v.max:+.3g}",
            }
            for k, v in rep.stats.items()
        ]
    )
    top = max((e.max_activation for e in rep.top_examples), default=1.0) or 1.0
    highlighted = []
    for ex in rep.top_examples:
        highlighted.append((f"[{ex.sample_id}, max {ex.max_activation:+.2f}] ", None))
        highlighted += [(tok, max(0.0, act) / top) for tok, act in zip(ex.tokens, ex.activations)]
        highlighted.append(("\n\n", None))
    return summary, words(rep.vocab_top), words(rep.vocab_bottom), stats, highlighted

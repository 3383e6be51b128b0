"""Charts of located sets: where the neurons sit (the paper's Figure 4), how the threshold moves them, how sets
share them and what decoupling leaves."""

from __future__ import annotations

import altair as alt
import pandas as pd
import torch

from ..experiments.decouple import DecoupleResult
from ..experiments.locate import SweepRow
from ..experiments.locate_result import LocateResult


def neuron_heatmap(
    prominence: torch.Tensor, bins: int = 48, title: str = "Located neurons", legend: str = "share of samples"
) -> alt.Chart:
    """The paper's Figure 4: layers x neurons, neighbouring neurons pooled (max), darker = more prominent."""
    n_layers, width = prominence.shape
    bin_size = max(1, -(-width // bins))
    pad = bin_size * bins - width
    padded = torch.nn.functional.pad(prominence.float(), (0, pad))
    pooled = padded.view(n_layers, bins, bin_size).amax(-1)
    rows = [
        {
            "layer": layer,
            "neurons": f"{b * bin_size}-{min(width, (b + 1) * bin_size) - 1}",
            "bin": b,
            "first": b * bin_size,
            "prominence": float(pooled[layer, b]),
        }
        for layer in range(n_layers)
        for b in range(bins)
    ]
    ticks = list(range(0, bins, max(1, bins // 8)))
    label = "{" + ",".join(f'"{b}": "{b * bin_size}"' for b in ticks) + "}"
    return (
        alt.Chart(pd.DataFrame(rows), title=title)
        .mark_rect()
        .encode(
            x=alt.X(
                "bin:O",
                title=f"neuron index (each cell: {bin_size} neighbouring neurons, the strongest shown)",
                axis=alt.Axis(values=ticks, labelExpr=f"{label}[datum.value]", labelAngle=0),
            ),
            y=alt.Y("layer:O", title="layer", sort="descending"),
            color=alt.Color("prominence:Q", title=legend, scale=alt.Scale(range=["#f7fbff", "#08306b"], domain=[0, 1])),
            tooltip=["layer", "neurons", alt.Tooltip("prominence:Q", format=".2f", title=legend)],
        )
        .properties(width=880, height=360)
    )


def per_layer_bars(per_layer: dict[str, list[int]]) -> alt.Chart:
    rows = [
        {"set": name, "layer": layer, "neurons": c}
        for name, counts in per_layer.items()
        for layer, c in enumerate(counts)
    ]
    return (
        alt.Chart(pd.DataFrame(rows), title="Located neurons per layer")
        .mark_bar()
        .encode(
            x=alt.X("layer:O"),
            y=alt.Y("neurons:Q", title="located neurons"),
            color=alt.Color("set:N"),
            xOffset="set:N",
            tooltip=["set", "layer", "neurons"],
        )
        .properties(width=880, height=240)
    )


def located_heatmap(label: str, result: LocateResult, prominence: torch.Tensor | None) -> alt.Chart:
    """The heatmap of a located set: the share of samples selecting each neuron, or a re-loaded set's mask."""
    if prominence is None:
        return neuron_heatmap(
            result.neurons.mask().float(),
            title=f"{label}: located neurons (re-loaded set)",
            legend="located (1) or not (0)",
        )
    return neuron_heatmap(prominence, title=f"{label}: share of samples selecting each neuron")


def sweep_chart(rows: list[SweepRow]) -> alt.HConcatChart:
    """Threshold choice with eyes open: located count and split IoU against tau, one line per p."""
    df = pd.DataFrame([vars(r) for r in rows])
    df["p"] = df["p"].map(lambda v: f"p = {v:g}")
    # ticks at the swept values and at 1-3-10 steps: a symlog axis otherwise labels no readable numbers
    base = alt.Chart(df).encode(
        x=alt.X(
            "tau:Q",
            title="tau (share of the sample's top score)",
            axis=alt.Axis(values=sorted(df["tau"].unique().tolist()), format="g"),
        ),
        color=alt.Color("p:N", title=None),
    )
    top = max(1, int(df["n_located"].max()))
    steps = [0] + [v for v in (1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000) if v <= 3 * top]
    count = (
        base.mark_line(point=True)
        .encode(
            y=alt.Y(
                "n_located:Q",
                title="neurons located",
                scale=alt.Scale(type="symlog"),
                axis=alt.Axis(values=steps, format="~s"),
            ),
            tooltip=["tau", "p", "n_located"],
        )
        .properties(width=380, height=200, title="Located set size")
    )
    iou = (
        base.mark_line(point=True)
        .encode(
            y=alt.Y("iou:Q", title="split IoU", scale=alt.Scale(domain=[0, 1])),
            tooltip=["tau", "p", alt.Tooltip("iou:Q", format=".3f"), alt.Tooltip("chance_iou:Q", format=".2e")],
        )
        .properties(width=380, height=200, title="Agreement between splits")
    )
    return alt.hconcat(count, iou)


def decouple_chart(result: DecoupleResult) -> alt.LayerChart:
    """The paper's Figure 3: IoU against the shared fraction, one line per source of the replaceable part."""
    df = pd.DataFrame(result.mean_curve())
    df["replaceable part from"] = df["replaceable"].map({"same": result.dataset, "other": result.other})
    x = alt.X("fraction:Q", title="shared fraction of the two subsamples", scale=alt.Scale(domain=[0, 1]))
    color = alt.Color("replaceable part from:N")
    band = alt.Chart(df).mark_area(opacity=0.2).encode(x=x, y="iou_min:Q", y2="iou_max:Q", color=color)
    line = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y("iou:Q", title="IoU of the located sets", scale=alt.Scale(domain=[0, 1])),
            color=color,
            tooltip=[
                "fraction",
                "replaceable part from",
                alt.Tooltip("iou:Q", format=".3f"),
                alt.Tooltip("chance_iou:Q", format=".2e"),
            ],
        )
    )
    chance = alt.Chart(df).mark_line(strokeDash=[4, 4], color="#6b7280").encode(x=x, y="chance_iou:Q")
    layers = band + line + chance
    null = result.empirical_null()
    if null["iou"] is not None:  # the measured null: a set of the dataset vs a set of the other dataset alone
        rule = pd.DataFrame([{"empirical null": null["iou"], "lo": null["iou_min"], "hi": null["iou_max"]}])
        layers += (
            alt.Chart(rule)
            .mark_rule(strokeDash=[1, 3], color="#b45309")
            .encode(y="empirical null:Q", tooltip=[alt.Tooltip("empirical null:Q", format=".3f"), "lo", "hi"])
        )
    return layers.properties(
        width=520,
        height=260,
        title=f"Decoupling: {result.dataset} (n = {result.n}); dashed = hypergeometric chance, dotted = empirical null",
    )


def sharing_bars(counts: dict[str, int]) -> alt.Chart:
    """UpSet-style bars: neurons held by exactly each combination of located sets."""
    df = pd.DataFrame([{"held by exactly": k, "neurons": v, "sets": k.count("&") + 1} for k, v in counts.items()])
    return (
        alt.Chart(df, title="Located neurons by the sets that hold them")
        .mark_bar()
        .encode(
            x=alt.X("neurons:Q"),
            y=alt.Y("held by exactly:N", sort="-x", title=None),
            color=alt.Color("sets:O", title="sets", scale=alt.Scale(scheme="blues")),
            tooltip=["held by exactly", "neurons"],
        )
        .properties(width=480, height=max(120, 26 * len(df)))
    )

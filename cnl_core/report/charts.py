"""Altair charts of results (the dashboard shows them; exports save them as PNG/SVG)."""

from __future__ import annotations

import altair as alt
import pandas as pd
import torch

from ..experiments.decouple import DecoupleResult
from ..experiments.eval_results import EvalResult, MatrixResult
from ..experiments.locate import SweepRow
from ..experiments.locate_result import LocateResult


def neuron_heatmap(prominence: torch.Tensor, bins: int = 48, title: str = "Located neurons") -> alt.Chart:
    """The paper's Figure 4: layers x neurons, neighbouring neurons pooled (max), darker = more prominent."""
    n_layers, width = prominence.shape
    bin_size = max(1, -(-width // bins))
    pad = bin_size * bins - width
    padded = torch.nn.functional.pad(prominence.float(), (0, pad))
    pooled = padded.view(n_layers, bins, bin_size).amax(-1)
    rows = [{"layer": l, "neurons": f"{b * bin_size}-{min(width, (b + 1) * bin_size) - 1}", "bin": b,
             "prominence": float(pooled[l, b])} for l in range(n_layers) for b in range(bins)]
    return alt.Chart(pd.DataFrame(rows), title=title).mark_rect().encode(
        x=alt.X("bin:O", title=f"neuron index (bins of {bin_size})", axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("layer:O", title="layer", sort="descending"),
        color=alt.Color("prominence:Q", title="share of samples",
                        scale=alt.Scale(range=["#f7fbff", "#08306b"], domain=[0, 1])),
        tooltip=["layer", "neurons", alt.Tooltip("prominence:Q", format=".2f")],
    ).properties(width=880, height=360)


def per_layer_bars(per_layer: dict[str, list[int]]) -> alt.Chart:
    rows = [{"set": name, "layer": l, "neurons": c} for name, counts in per_layer.items() for l, c in enumerate(counts)]
    return alt.Chart(pd.DataFrame(rows), title="Located neurons per layer").mark_bar().encode(
        x=alt.X("layer:O"), y=alt.Y("neurons:Q"), color=alt.Color("set:N"), xOffset="set:N",
        tooltip=["set", "layer", "neurons"],
    ).properties(width=880, height=240)


def matrix_heatmap(names: list[str], values: list[list[float]], title: str, fmt: str = ".3f",
                   scheme: str = "greens", domain: list[float] | None = None) -> alt.Chart:
    rows = [{"row": a, "column": b, "value": values[i][j]} for i, a in enumerate(names) for j, b in enumerate(names)]
    return _matrix(pd.DataFrame(rows), names, names, title, fmt, scheme, domain)


def _matrix(df: pd.DataFrame, rows: list[str], cols: list[str], title: str, fmt: str, scheme: str,
            domain: list[float] | None) -> alt.Chart:
    scale = alt.Scale(scheme=scheme, domain=domain) if domain else alt.Scale(scheme=scheme)
    base = alt.Chart(df, title=title).encode(x=alt.X("column:N", sort=cols, title=None),
                                             y=alt.Y("row:N", sort=rows, title=None))
    rect = base.mark_rect().encode(color=alt.Color("value:Q", scale=scale, title=None),
                                   tooltip=["row", "column", alt.Tooltip("value:Q", format=fmt)])
    text = base.mark_text(fontSize=12).encode(text=alt.Text("value:Q", format=fmt))
    return (rect + text).properties(width=max(200, 70 * len(cols)), height=max(160, 40 * len(rows)))


def cross_matrix_heatmap(result: MatrixResult, metric: str = "delta_gold_loglik") -> alt.Chart:
    """The paper's Figure 5: rows = neurons changed, columns = dataset tested, cell = change vs unmodified."""
    rows = [{"row": s, "column": t, "value": result.cell(s, t, metric)}
            for s in result.sources for t in result.targets if result.cell(s, t, metric) is not None]
    df = pd.DataFrame(rows)
    extent = max(1e-9, df["value"].abs().max()) if len(df) else 1.0
    return _matrix(df, result.sources, result.targets, f"{metric} ({result.mode})", "+.3f", "redblue",
                   [-extent, extent])


def evaluation_bars(result: EvalResult, metric: str) -> alt.Chart:
    """Baseline / intervened / random control with 95% bootstrap intervals."""
    rows = []
    for part, summary in result.conditions().items():
        value = getattr(summary, metric)
        if value is None:
            continue
        ci = getattr(summary, f"{metric}_ci") or [value, value]
        rows.append({"dataset": result.dataset, "condition": part, "value": value, "lo": ci[0], "hi": ci[1]})
    df = pd.DataFrame(rows)
    order = ["baseline", "intervened", "control"]
    # Accuracy on its whole 0-1 range, so that all-zero bars still read as "0 of 1"; one axis title for the
    # bars and their interval (layered charts otherwise join the two field names).
    title = {"accuracy": "accuracy", "gold_loglik": "gold log-likelihood / token"}.get(metric, metric)
    scale = alt.Scale(domain=[0, 1]) if metric == "accuracy" else alt.Scale()
    bars = alt.Chart(df).mark_bar().encode(
        x=alt.X("condition:N", sort=order, title=None), y=alt.Y("value:Q", title=title, scale=scale),
        color=alt.Color("condition:N", sort=order, scale=alt.Scale(range=["#9ca3af", "#dc2626", "#2563eb"])),
        tooltip=["condition", alt.Tooltip("value:Q", format=".4f"), alt.Tooltip("lo:Q", format=".4f"),
                 alt.Tooltip("hi:Q", format=".4f")])
    errors = alt.Chart(df).mark_errorbar().encode(x=alt.X("condition:N", sort=order),
                                                  y=alt.Y("lo:Q", title=title, scale=scale), y2="hi:Q")
    return (bars + errors).properties(width=220, height=240, title=f"{result.dataset}: {metric}")


def save_chart(chart: alt.Chart, path: str, fmt: str) -> str:
    """Write a chart as PNG or SVG (vl-convert renders offline) or as a Vega-Lite JSON spec."""
    import vl_convert as vlc

    spec = chart.to_json()
    if fmt == "svg":
        data = vlc.vegalite_to_svg(spec).encode()
    elif fmt == "png":
        data = vlc.vegalite_to_png(spec, scale=2)
    else:
        data = spec.encode()
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def evaluation_charts(results: list[EvalResult]) -> tuple[alt.HConcatChart | None, alt.HConcatChart | None]:
    """(accuracy bars, gold log-likelihood bars) side by side for each tested dataset; None when empty."""
    acc = [evaluation_bars(r, "accuracy") for r in results if r.baseline.accuracy is not None]
    ll = [evaluation_bars(r, "gold_loglik") for r in results]
    return (alt.hconcat(*acc) if acc else None), (alt.hconcat(*ll) if ll else None)


def located_heatmap(label: str, result: LocateResult, prominence: torch.Tensor | None) -> alt.Chart:
    """The heatmap of a located set: the share of samples selecting each neuron, or a re-loaded set's mask."""
    if prominence is None:
        return neuron_heatmap(result.neurons.mask().float(), title=f"{label}: located neurons (re-loaded mask)")
    return neuron_heatmap(prominence, title=f"{label}: share of samples selecting each neuron")


def sweep_chart(rows: list[SweepRow]) -> alt.VConcatChart:
    """Threshold choice with eyes open: located count and split IoU against tau, one line per p."""
    df = pd.DataFrame([vars(r) for r in rows])
    df["p"] = df["p"].map(lambda v: f"p = {v:g}")
    base = alt.Chart(df).encode(x=alt.X("tau:Q", title="tau (share of the sample's top score)"),
                                color=alt.Color("p:N", title=None))
    count = base.mark_line(point=True).encode(
        y=alt.Y("n_located:Q", title="neurons located", scale=alt.Scale(type="symlog")),
        tooltip=["tau", "p", "n_located"]).properties(width=380, height=200, title="Located set size")
    iou = base.mark_line(point=True).encode(
        y=alt.Y("iou:Q", title="split IoU", scale=alt.Scale(domain=[0, 1])),
        tooltip=["tau", "p", alt.Tooltip("iou:Q", format=".3f"), alt.Tooltip("chance_iou:Q", format=".2e")],
    ).properties(width=380, height=200, title="Agreement between splits")
    return alt.hconcat(count, iou)


def decouple_chart(result: DecoupleResult) -> alt.LayerChart:
    """The paper's Figure 3: IoU against the shared fraction, one line per source of the replaceable part."""
    df = pd.DataFrame(result.mean_curve())
    df["replaceable part from"] = df["replaceable"].map({"same": result.dataset, "other": result.other})
    x = alt.X("fraction:Q", title="shared fraction of the two subsamples", scale=alt.Scale(domain=[0, 1]))
    color = alt.Color("replaceable part from:N")
    band = alt.Chart(df).mark_area(opacity=0.2).encode(x=x, y="iou_min:Q", y2="iou_max:Q", color=color)
    line = alt.Chart(df).mark_line(point=True).encode(
        x=x, y=alt.Y("iou:Q", title="IoU of the located sets", scale=alt.Scale(domain=[0, 1])), color=color,
        tooltip=["fraction", "replaceable part from", alt.Tooltip("iou:Q", format=".3f"),
                 alt.Tooltip("chance_iou:Q", format=".2e")])
    chance = alt.Chart(df).mark_line(strokeDash=[4, 4], color="#6b7280").encode(x=x, y="chance_iou:Q")
    return (band + line + chance).properties(
        width=520, height=260, title=f"Decoupling: {result.dataset} (n = {result.n}); dashed = chance")


def sharing_bars(counts: dict[str, int]) -> alt.Chart:
    """UpSet-style bars: neurons held by exactly each combination of located sets."""
    df = pd.DataFrame([{"held by exactly": k, "neurons": v, "sets": k.count("&") + 1} for k, v in counts.items()])
    return alt.Chart(df, title="Located neurons by the sets that hold them").mark_bar().encode(
        x=alt.X("neurons:Q"), y=alt.Y("held by exactly:N", sort="-x", title=None),
        color=alt.Color("sets:O", title="sets", scale=alt.Scale(scheme="blues")),
        tooltip=["held by exactly", "neurons"]).properties(width=480, height=max(120, 26 * len(df)))


def specificity_bars(index: dict[str, dict], metric: str) -> alt.LayerChart:
    """Specificity index per dataset with its 95% interval: own effect minus the mean effect on the others."""
    df = pd.DataFrame([{"dataset": k, "index": v["value"], "lo": v["ci"][0], "hi": v["ci"][1]}
                       for k, v in index.items() if v["value"] is not None])
    y = alt.Y("dataset:N", title=None)
    bars = alt.Chart(df).mark_bar().encode(x=alt.X("index:Q", title=f"specificity index (change of {metric})"), y=y,
                                           tooltip=["dataset", alt.Tooltip("index:Q", format="+.3g")])
    err = alt.Chart(df).mark_errorbar().encode(x="lo:Q", x2="hi:Q", y=y)
    return (bars + err).properties(width=420, height=max(100, 34 * len(df)), title="Specificity index")

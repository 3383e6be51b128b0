"""Altair charts of results (the dashboard shows them; exports save them as PNG/SVG)."""

from __future__ import annotations

import math
import os

import altair as alt
import pandas as pd
import torch

from ..errors import ParameterError
from ..experiments.decouple import DecoupleResult
from ..experiments.demo import DemoResult
from ..experiments.dose import DosePoint
from ..experiments.eval_results import EvalResult, MatrixResult
from ..experiments.locate import SweepRow
from ..experiments.locate_result import LocateResult
from ..options import METRIC_TITLES, METRICS, POSITIONS
from ..output_files import atomic_write


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
            "layer": l,
            "neurons": f"{b * bin_size}-{min(width, (b + 1) * bin_size) - 1}",
            "bin": b,
            "first": b * bin_size,
            "prominence": float(pooled[l, b]),
        }
        for l in range(n_layers)
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
    rows = [{"set": name, "layer": l, "neurons": c} for name, counts in per_layer.items() for l, c in enumerate(counts)]
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


def short_labels(names: list[str], limit: int = 22) -> dict[str, str]:
    """Axis labels for several names, each one distinct: the part every name shares up to a ':' (the model) is
    left out, and a long rest keeps its start and its end (a split's name is at the end). Names that would still
    collide keep their full text."""
    cut = 0
    if len(names) > 1:
        common = os.path.commonprefix(list(names))
        cut = common.rfind(":") + 1
    labels = {}
    for name in names:
        rest = name[cut:] or name
        labels[name] = rest if len(rest) <= limit else rest[: limit // 2 - 1] + "…" + rest[-(limit - limit // 2) :]
    if len(set(labels.values())) < len(labels):
        return {name: name for name in names}
    return labels


def matrix_heatmap(
    names: list[str],
    values: list[list[float]],
    title: str,
    fmt: str = ".3f",
    scheme: str = "greens",
    domain: list[float] | None = None,
    chance: list[list[float]] | None = None,
) -> alt.Chart:
    """A square matrix of named sets; short axis labels, full names and the chance level on hover."""
    rows = [
        {"row": a, "column": b, "value": values[i][j], **({"chance": chance[i][j]} if chance is not None else {})}
        for i, a in enumerate(names)
        for j, b in enumerate(names)
    ]
    if chance is not None:
        off = [chance[i][j] for i in range(len(names)) for j in range(len(names)) if i != j]
        title = f"{title} (chance at most {max(off, default=0):.1e})"
    return _matrix(pd.DataFrame(rows), names, names, title, fmt, scheme, domain)


def _matrix(
    df: pd.DataFrame,
    rows: list[str],
    cols: list[str],
    title: str,
    fmt: str,
    scheme: str,
    domain: list[float] | None,
    x_title: str | None = None,
    y_title: str | None = None,
) -> alt.Chart:
    scale = alt.Scale(scheme=scheme, domain=domain) if domain else alt.Scale(scheme=scheme)
    row_labels, col_labels = short_labels(rows), short_labels(cols)
    df = df.assign(row_label=df["row"].map(row_labels), column_label=df["column"].map(col_labels))
    base = alt.Chart(df, title=title).encode(
        x=alt.X("column_label:N", sort=[col_labels[c] for c in cols], title=x_title, axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("row_label:N", sort=[row_labels[r] for r in rows], title=y_title),
    )
    tips = ["row", "column", alt.Tooltip("value:Q", format=fmt)] + (
        [alt.Tooltip("chance:Q", format=".2e")] if "chance" in df else []
    )
    rect = base.mark_rect().encode(color=alt.Color("value:Q", scale=scale, title=None), tooltip=tips)
    text = base.mark_text(fontSize=11 if len(cols) < 8 else 8).encode(text=alt.Text("value:Q", format=fmt))
    size = max(26, min(70, 700 // max(1, len(cols))))
    return (rect + text).properties(width=max(200, size * len(cols)), height=max(160, size * len(rows) * 0.6))


def cross_matrix_heatmap(result: MatrixResult, metric: str = METRICS[0]) -> alt.Chart:
    """The paper's Figure 5: rows = neurons changed, columns = dataset tested, cell = change of `metric` (one of
    options.METRICS) vs unmodified.

    The colour scale is symmetric around 0 and covers every value: red = worse than the unmodified model.
    """
    if metric not in METRICS:
        raise ParameterError(f"Metric must be one of {', '.join(METRICS)}, not {metric!r}.")
    cell = f"delta_{metric}"
    rows = [
        {"row": s, "column": t, "value": result.cell(s, t, cell)}
        for s in result.sources
        for t in result.targets
        if result.cell(s, t, cell) is not None
    ]
    df = pd.DataFrame(rows)
    extent = max(1e-9, df["value"].abs().max()) if len(df) else 1.0
    how = "zeroed" if result.mode == "zero" else f"amplified x{result.factor:g}"
    title = f"Change of {METRIC_TITLES[metric]} with each set's neurons {how}"
    return _matrix(
        df,
        result.sources,
        result.targets,
        title,
        "+.3f",
        "redblue",
        [-extent, extent],
        x_title="dataset tested",
        y_title="neurons located on",
    )


# One colour per condition in every view (the demo, Intervene's bars, the log-likelihood change): unmodified grey,
# the located neurons zeroed red and amplified green, as many random neurons the pale shade of the same.
CONDITION_COLORS = {
    "baseline": "#9ca3af",
    "zeroed": "#dc2626",
    "amplified": "#16a34a",
    "control_zeroed": "#fca5a5",
    "control_amplified": "#86efac",
}


def condition_colors(result: EvalResult) -> list[str]:
    """[unmodified, intervened, control] colours for an evaluation, by its intervention's mode."""
    mode = "amplified" if (result.intervention or {}).get("mode") == "amplify" else "zeroed"
    return [CONDITION_COLORS["baseline"], CONDITION_COLORS[mode], CONDITION_COLORS[f"control_{mode}"]]


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
    title = METRIC_TITLES.get(metric, metric)
    scale = alt.Scale(domain=[0, 1]) if metric == "accuracy" else alt.Scale()
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("condition:N", sort=order, title=None),
            y=alt.Y("value:Q", title=title, scale=scale),
            color=alt.Color("condition:N", sort=order, scale=alt.Scale(domain=order, range=condition_colors(result))),
            tooltip=[
                "condition",
                alt.Tooltip("value:Q", format=".4f"),
                alt.Tooltip("lo:Q", format=".4f"),
                alt.Tooltip("hi:Q", format=".4f"),
            ],
        )
    )
    errors = (
        alt.Chart(df)
        .mark_errorbar()
        .encode(x=alt.X("condition:N", sort=order), y=alt.Y("lo:Q", title=title, scale=scale), y2="hi:Q")
    )
    return (bars + errors).properties(width=220, height=240, title=f"{result.dataset}: {metric}")


def save_chart(chart: alt.TopLevelMixin, path: str, fmt: str) -> str:
    """Write a chart as PNG or SVG (vl-convert renders offline) or as a Vega-Lite JSON spec."""
    import vl_convert as vlc

    spec = chart.to_json()
    if fmt == "svg":
        data = vlc.vegalite_to_svg(spec).encode()
    elif fmt == "png":
        data = vlc.vegalite_to_png(spec, scale=2)
    else:
        data = spec.encode()
    atomic_write(path, data)
    return path


def loglik_change_bars(result: EvalResult) -> alt.LayerChart:
    """The change of gold log-likelihood from the unmodified model per condition (higher = better), with CIs."""
    rows = [{"condition": "baseline", "value": 0.0, "lo": 0.0, "hi": 0.0}]
    for part, summary in result.conditions().items():
        d = summary.deltas
        if part != "baseline" and d is not None and d.delta_gold_loglik is not None:
            ci = d.delta_gold_loglik_ci or [d.delta_gold_loglik] * 2
            rows.append({"condition": part, "value": d.delta_gold_loglik, "lo": ci[0], "hi": ci[1]})
    df = pd.DataFrame(rows)
    order = ["baseline", "intervened", "control"]
    title = "change of gold log-likelihood / token"
    iv = result.intervention or {}
    how = "" if not iv else (" (zeroed)" if iv.get("mode") == "zero" else f" (amplified x{iv.get('factor', 0):g})")
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("condition:N", sort=order, title=None),
            y=alt.Y("value:Q", title=title),
            color=alt.Color(
                "condition:N", sort=order, legend=None, scale=alt.Scale(domain=order, range=condition_colors(result))
            ),
            tooltip=[
                "condition",
                alt.Tooltip("value:Q", format="+.3f"),
                alt.Tooltip("lo:Q", format="+.3f"),
                alt.Tooltip("hi:Q", format="+.3f"),
            ],
        )
    )
    errors = (
        alt.Chart(df)
        .mark_errorbar()
        .encode(x=alt.X("condition:N", sort=order), y=alt.Y("lo:Q", title=title), y2="hi:Q")
    )
    return (bars + errors).properties(
        width=220, height=240, title=f"{result.dataset}{how}: vs unmodified (higher = better)"
    )


def evaluation_charts(results: list[EvalResult]) -> tuple[alt.HConcatChart | None, alt.HConcatChart | None]:
    """(accuracy bars, change of gold log-likelihood) side by side for each tested dataset; None when empty."""
    acc = [evaluation_bars(r, "accuracy") for r in results if r.baseline.accuracy is not None]
    ll = [loglik_change_bars(r) for r in results if math.isfinite(r.baseline.gold_loglik)]  # harness tasks: NaN
    return (alt.hconcat(*acc) if acc else None), (alt.hconcat(*ll) if ll else None)


def located_heatmap(label: str, result: LocateResult, prominence: torch.Tensor | None) -> alt.Chart:
    """The heatmap of a located set: the share of samples selecting each neuron, or a re-loaded set's mask."""
    if prominence is None:
        return neuron_heatmap(
            result.neurons.mask().float(),
            title=f"{label}: located neurons (re-loaded set)",
            legend="located (1) or not (0)",
        )
    return neuron_heatmap(prominence, title=f"{label}: share of samples selecting each neuron")


def sweep_chart(rows: list[SweepRow]) -> alt.VConcatChart:
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


def specificity_bars(index: dict[str, dict], metric: str) -> alt.LayerChart:
    """Specificity index per dataset with its 95% interval: own effect minus the mean effect on the others."""
    df = pd.DataFrame(
        [
            {"dataset": k, "index": v["value"], "lo": v["ci"][0], "hi": v["ci"][1]}
            for k, v in index.items()
            if v["value"] is not None
        ]
    )
    y = alt.Y("dataset:N", title=None)
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("index:Q", title=f"specificity index (change of {METRIC_TITLES.get(metric, metric)})"),
            y=y,
            tooltip=["dataset", alt.Tooltip("index:Q", format="+.3g")],
        )
    )
    err = alt.Chart(df).mark_errorbar().encode(x="lo:Q", x2="hi:Q", y=y)
    return (bars + err).properties(width=420, height=max(100, 34 * len(df)), title="Specificity index")


_DEMO_COLORS = CONDITION_COLORS
_DEMO_LABELS = {
    "baseline": "unmodified",
    "zeroed": "located zeroed",
    "amplified": "located amplified",
    "control_zeroed": "random zeroed",
    "control_amplified": "random amplified",
}


def demo_chart(result: DemoResult) -> alt.HConcatChart:
    """The demo at a glance: accuracy per condition, and the change of gold log-likelihood (higher = better)."""
    rows = []
    for key, s in result.conditions.items():
        d = s.deltas
        ci = s.accuracy_ci or [s.accuracy, s.accuracy]
        dci = d.delta_gold_loglik_ci if d and d.delta_gold_loglik_ci else [0.0, 0.0]
        rows.append(
            {
                "condition": _DEMO_LABELS[key],
                "key": key,
                "accuracy": s.accuracy,
                "lo": ci[0],
                "hi": ci[1],
                "change": d.delta_gold_loglik if d and d.delta_gold_loglik is not None else 0.0,
                "clo": dci[0],
                "chi": dci[1],
            }
        )
    df = pd.DataFrame(rows)
    order = [_DEMO_LABELS[k] for k in _DEMO_COLORS]
    color = alt.Color(
        "condition:N", sort=order, legend=None, scale=alt.Scale(domain=order, range=list(_DEMO_COLORS.values()))
    )
    x = alt.X("condition:N", sort=order, title=None, axis=alt.Axis(labelAngle=-20))
    acc = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title="accuracy"),
            color=color,
            tooltip=["condition", alt.Tooltip("accuracy:Q", format=".0%")],
        )
        + alt.Chart(df).mark_errorbar().encode(x=x, y=alt.Y("lo:Q", title="accuracy"), y2="hi:Q")
    ).properties(width=330, height=260, title=f"{result.preset.dataset}: accuracy on held-out problems")
    change = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y("change:Q", title="change of gold log-likelihood"),
            color=color,
            tooltip=["condition", alt.Tooltip("change:Q", format="+.3f")],
        )
        + alt.Chart(df).mark_errorbar().encode(x=x, y=alt.Y("clo:Q", title="change of gold log-likelihood"), y2="chi:Q")
    ).properties(width=330, height=260, title="vs the unmodified model (higher = better)")
    return alt.hconcat(acc, change)


def dose_chart(points: list[DosePoint], dataset: str, positions: str = POSITIONS[0]) -> alt.HConcatChart:
    """Accuracy and the change of gold log-likelihood against the factor (0 = zeroed, 1 = unmodified); the axis
    names the token positions changed when they are only the answer's."""
    df = pd.DataFrame([vars(p) for p in points])
    where = "" if positions == POSITIONS[0] else ", at the answer positions"
    x = alt.X("factor:Q", title=f"factor on the located neurons (0 = zeroed, 1 = unmodified){where}")
    panels = [
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y("delta_gold_loglik:Q", title=f"change of {METRIC_TITLES['gold_loglik']} (higher = better)"),
            tooltip=["factor", alt.Tooltip("delta_gold_loglik:Q", format="+.3f")],
        )
        .properties(width=330, height=240, title=f"{dataset}: log-likelihood by dose")
    ]
    if df["accuracy"].notna().any():
        panels.insert(
            0,
            alt.Chart(df)
            .mark_line(point=True)
            .encode(
                x=x,
                y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
                tooltip=["factor", alt.Tooltip("accuracy:Q", format=".0%")],
            )
            .properties(width=330, height=240, title=f"{dataset}: accuracy by dose"),
        )
    return alt.hconcat(*panels)

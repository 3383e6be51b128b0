"""Charts of evaluations: accuracy and gold log-likelihood per condition (unmodified, intervened, random control),
the demo at a glance, the dose-response and the specificity index, one colour per condition in every view."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

from ..experiments.demo import DemoResult
from ..experiments.dose import DosePoint
from ..experiments.eval_results import EvalResult
from ..options import METRIC_TITLES, POSITIONS

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
    iv = result.intervention
    mode = "amplified" if iv is not None and iv.get("mode") == "amplify" else "zeroed"
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
    iv = result.intervention
    how = "" if iv is None else (" (zeroed)" if iv.get("mode") == "zero" else f" (amplified x{iv.get('factor', 0):g})")
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
        lo, hi = s.accuracy_ci or (s.accuracy, s.accuracy)
        dci = d.delta_gold_loglik_ci if d and d.delta_gold_loglik_ci else [0.0, 0.0]
        rows.append(
            {
                "condition": _DEMO_LABELS[key],
                "key": key,
                "accuracy": s.accuracy,
                "lo": lo,
                "hi": hi,
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

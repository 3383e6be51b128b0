"""Charts of the knowledge study: knowledge IoU vs capability IoU with both nulls, reliability, per-layer edits."""

from __future__ import annotations

import altair as alt
import pandas as pd

from ..knowledge.editing import EditingResult
from ..knowledge.fidelity import PAIR_GROUPS, FidelityResult
from ..knowledge.reliability import NEURONS, ReliabilityResult

_FAMILY = {
    **{g: "one prompt each (KN rule)" for g in PAIR_GROUPS},
    "fact split": "a fact's paraphrases, two halves",
    "relation split": "facts of a relation, two groups",
    "capability split": "CNL: capability samples, two groups",
    "capability vs unrelated": "empirical null",
}
_NULLS = ("other relation", "capability vs unrelated")


def fidelity_chart(result: FidelityResult) -> alt.LayerChart:
    """Mean IoU [95% CI] of each group of set pairs; grey ticks = hypergeometric chance; nulls hatched pale."""
    rows, order = [], []  # order: the groups' names, top to bottom
    for g in [*result.pairs, *result.splits]:
        if g.iou is None:
            continue
        lo, hi = g.ci or [g.iou, g.iou]
        order.append(g.name)
        rows.append(
            {
                "sets compared": g.name,
                "IoU": g.iou,
                "lo": lo,
                "hi": hi,
                "chance IoU": g.chance_iou,
                "what": "empirical null" if g.name in _NULLS else _FAMILY[g.name],
                "pairs": g.pairs,
                "mean set size": round(g.mean_size, 1),
            }
        )
    df = pd.DataFrame(rows)
    y = alt.Y("sets compared:N", sort=order, title=None)
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("IoU:Q", title="IoU of the located sets (mean, 95% interval)", scale=alt.Scale(domain=[0, 1])),
            y=y,
            color=alt.Color("what:N", title=None, legend=alt.Legend(orient="bottom", columns=2)),
            tooltip=[
                "sets compared",
                alt.Tooltip("IoU:Q", format=".3f"),
                alt.Tooltip("chance IoU:Q", format=".2e"),
                "pairs",
                "mean set size",
            ],
        )
    )
    whiskers = alt.Chart(df).mark_rule(color="#111827").encode(x="lo:Q", x2="hi:Q", y=y)
    chance = alt.Chart(df).mark_tick(color="#6b7280", thickness=2, size=18).encode(x="chance IoU:Q", y=y)
    return (bars + whiskers + chance).properties(
        width=480,
        height=26 * len(df),
        title=f"Does a fact localize? Knowledge vs capability ({result.model}; grey tick = hypergeometric chance)",
    )


def reliability_chart(result: ReliabilityResult) -> alt.Chart:
    """Change of log p(answer) [95% CI] when a fact's located neurons (or random ones) are zeroed or amplified."""
    df = pd.DataFrame(
        [
            {
                **r,
                "lo": (r["ci"] or [r["delta_logp"]] * 2)[0],
                "hi": (r["ci"] or [r["delta_logp"]] * 2)[1],
                "condition": f"{r['mode']} {r['neurons']}",
            }
            for r in result.summary
            if r["delta_logp"] is not None
        ]
    )
    y = alt.Y("condition:N", title=None)
    base = alt.Chart(df)
    bars = base.mark_bar().encode(
        x=alt.X("delta_logp:Q", title="change of log p(answer)"),
        y=y,
        color=alt.Color(
            "neurons:N", scale=alt.Scale(domain=list(NEURONS), range=["#dc2626", "#9ca3af", "#2563eb", "#cbd5e1"])
        ),
        tooltip=["mode", "neurons", "target", alt.Tooltip("delta_logp:Q", format=".3f"), "facts"],
    )
    rules = base.mark_rule().encode(x="lo:Q", x2="hi:Q", y=y)
    return (
        (bars + rules)
        .properties(width=220, height=90)
        .facet(column=alt.Column("target:N", title=None))
        .properties(title="Reliability: does switching a fact's neurons move that fact only?")
    )


def editing_chart(result: EditingResult) -> alt.LayerChart:
    """By layer: p(new answer) on the edit prompt and on paraphrases, and the traced effect of the edit prompt."""
    rows = []
    for r in result.summary:
        for key, name in (
            ("p_new_edit", "p(new) on the edit prompt"),
            ("p_new_paraphrases", "p(new) on paraphrases"),
            ("traced_hidden", "traced effect: hidden state"),
            ("traced_mlp", "traced effect: MLP window"),
        ):
            rows.append(
                {
                    "layer": r["layer"],
                    "value": r[key],
                    "curve": name,
                    "kind": "editing" if key.startswith("p_") else "causal tracing",
                }
            )
    df = pd.DataFrame(rows)
    return (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:Q", title="layer edited / restored"),
            y=alt.Y("value:Q", title="probability / share restored", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("curve:N", title=None, legend=alt.Legend(orient="bottom", columns=2)),
            strokeDash=alt.StrokeDash("kind:N", title=None),
            tooltip=["layer", "curve", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(width=480, height=240, title=f"Editing by layer vs causal tracing ({len(result.per_fact)} facts)")
    )

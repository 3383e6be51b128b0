"""Matrices of named sets and datasets: overlap and IoU between located sets, and the cross-capability matrix
(the paper's Figure 5), with short axis labels and the full names on hover."""

from __future__ import annotations

import os
from typing import Literal

import altair as alt
import pandas as pd

from ..errors import ParameterError
from ..experiments.eval_results import MatrixResult
from ..options import METRIC_TITLES, METRICS

Scheme = Literal["greens", "blues", "redblue"]  # the Vega colour schemes these charts use (Altair types each name)


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
    scheme: Scheme = "greens",
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
    scheme: Scheme,
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

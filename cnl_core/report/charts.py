"""Altair charts of results, by one import path (the dashboard shows them; exports save them as PNG/SVG).

The charts live by what they show: locate_charts.py (located sets), matrix_charts.py (set-by-set and
set-by-dataset matrices), evaluation_charts.py (conditions, the demo, dose-response, specificity);
knowledge_charts.py has the knowledge study's. This module names them all and saves any of them.
"""

from __future__ import annotations

import altair as alt

from ..output_files import atomic_write
from .evaluation_charts import (
    CONDITION_COLORS,
    condition_colors,
    demo_chart,
    dose_chart,
    evaluation_bars,
    evaluation_charts,
    loglik_change_bars,
    specificity_bars,
)
from .locate_charts import decouple_chart, located_heatmap, neuron_heatmap, per_layer_bars, sharing_bars, sweep_chart
from .matrix_charts import Scheme, cross_matrix_heatmap, matrix_heatmap, short_labels

__all__ = [
    "CONDITION_COLORS",
    "Scheme",
    "condition_colors",
    "cross_matrix_heatmap",
    "decouple_chart",
    "demo_chart",
    "dose_chart",
    "evaluation_bars",
    "evaluation_charts",
    "loglik_change_bars",
    "located_heatmap",
    "matrix_heatmap",
    "neuron_heatmap",
    "per_layer_bars",
    "save_chart",
    "sharing_bars",
    "short_labels",
    "specificity_bars",
    "sweep_chart",
]


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

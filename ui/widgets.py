"""The dashboard's number boxes and sliders, built from the library's fields (cnl_core/fields.py).

Why: a box that restated its field's label, range or default by hand could disagree with the CLI's flag and
with the check that reads it (the amplify slider once stopped at 10 where the field allows 100; the IG-steps
slider at 50 where it allows 200). Here a box takes its label and its "unset" value from the field, a slider
its bounds, so the dashboard shows what the library checks. A slider may span less than its field (a batch-size
slider to 4096 could not be moved), never more: `slider` refuses that when the page is built.
`tests/unit/test_widgets.py` checks that ui/ builds no number box or slider another way.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from cnl_core.fields import NumberField


def number(field: NumberField, value: float | None = None, context: str = "", **kwargs: Any) -> gr.Number:
    """A number box labelled as its field (and `context`, where two boxes of one field would read alike: "n per
    split (each subsample)"); `value` defaults to the field's "unset" value (0 or -1: the default).

    No minimum or maximum is given to Gradio: its own refusal ("Value -5 is less than minimum value 1") would
    replace the field's sentence, which names the box and its range."""
    if value is None:
        if field.unset is None:
            raise ValueError(f"{field.label}: give the box a value (the field has no 'unset' value)")
        value = field.unset
    return gr.Number(value, label=f"{field.label} {context}".strip(), **kwargs)


def slider(
    field: NumberField, value: float, step: float, low: float | None = None, high: float | None = None, **kwargs: Any
) -> gr.Slider:
    """A slider labelled as its field, over the field's range (an open lower bound starts one step above it), or
    over a narrower one given as `low`/`high`."""
    lowest = field.low + step if field.open_low else field.low
    low = lowest if low is None else low
    high = field.high if high is None else high
    if low < lowest or high > field.high or not low <= value <= high:
        raise ValueError(f"{field.label}: a slider from {low:g} to {high:g} at {value:g} leaves the field's range")
    return gr.Slider(low, high, value, step=step, label=field.label, **kwargs)

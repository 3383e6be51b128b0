"""The Data tab's "can the loaded model do this?": each dataset's measured baseline, and the marks on its boxes.

Why: students followed the preselected GSM8K, on which the 135M model scores 0, and located noise. A baseline
is measured once per model and dataset and stored (cnl_core/experiments/baselines.py); this panel reads the stored
ones without the model's time, marks every dataset box ("add1 · 75% can do", "gsm8k · 0% cannot do"), and
measures the missing ones on request in the long-job line (or at start-up in a shared lab: `warm_baselines`).
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from cnl_core import (
    MODELS,
    Baseline,
    BaselineRequest,
    LoadedModel,
    baseline,
    list_datasets,
    shared_mode,
    stored_baseline,
)
from cnl_core.options import BASELINE

from .. import costs
from ..jobs import Kind, Run, job
from ..session import Session, session

MARKS = {"can do": "✓ can do", "weak": "~ weak", "cannot do": "✗ cannot do", "no accuracy": "log-likelihood only"}


def measurable() -> list[str]:
    """Built-in datasets whose rows are here (a Hub dataset out of reach is left unmeasured, with its reason)."""
    return [d.name for d in list_datasets() if d.source != "upload" and not d.hub and d.available()[0]]


def build() -> SimpleNamespace:
    note = gr.Markdown(elem_id="baseline-note")
    with gr.Row():
        button = gr.Button("Measure the baselines not yet measured", size="sm", elem_id="baseline-btn")
        cancel = gr.Button("Cancel", variant="secondary", size="sm", min_width=80, scale=0)
        estimate = gr.Markdown()
    return SimpleNamespace(note=note, button=button, cancel=cancel, estimate=estimate)


def stored(lm: LoadedModel | None) -> dict[str, Baseline | None]:
    """Every measurable dataset's stored baseline for this model (None: not measured yet); no model call."""
    return {name: stored_baseline(lm, BaselineRequest(name)) if lm is not None else None for name in measurable()}


def choice_label(name: str, b: Baseline | None) -> str:
    if b is None:
        return name
    if b.accuracy is None:
        return f"{name} · {MARKS[b.verdict]}"
    return f"{name} · {b.accuracy:.0%} {MARKS[b.verdict]}"


def _model(state: Session) -> LoadedModel | None:
    return MODELS.peek(state.spec)


def panel_ui(datasets, state) -> tuple:
    """The dataset boxes marked with each stored baseline, and the note that reads them (no model work)."""
    state = session(state)
    lm = _model(state)
    found = stored(lm)
    names = [d.name for d in list_datasets() if d.source != "upload"] + state.uploads
    choices = [(choice_label(n, found.get(n)), n) for n in names]
    kept = [d for d in datasets or [] if d in names]
    return gr.update(choices=choices, value=kept), note_text(lm, found)


def note_text(lm: LoadedModel | None, found: dict[str, Baseline | None]) -> str:
    if lm is None:
        return "*Baselines show once the model is loaded (1 · Model).*"
    groups: dict[str, list[str]] = {}
    for name, b in found.items():
        if b is None:
            groups.setdefault("not measured yet", []).append(name)
        else:
            acc = "" if b.accuracy is None else f" {b.accuracy:.0%}"
            groups.setdefault(b.verdict, []).append(f"{name}{acc}")
    order = ("can do", "weak", "cannot do", "no accuracy", "not measured yet")
    parts = [f"**{k}**: {', '.join(groups[k])}" for k in order if k in groups]
    return (
        f"**What {lm.spec.name} can do** (unmodified accuracy on {BASELINE.n} held-out samples, each task's own "
        f"few-shot; above chance by {BASELINE.can_do_margin:.0%}: can do): "
        + " · ".join(parts)
        + ". Locate and intervene on a task it can do: zeroing neurons cannot lower an accuracy of 0."
    )


def to_measure(state) -> list[str]:
    """The missing baselines a press measures, cheapest first: in a shared lab only those that fit its limit."""
    lm = _model(session(state))
    missing = sorted(
        (n for n, b in stored(lm).items() if b is None) if lm is not None else measurable(), key=costs.sample_s
    )
    limit, rate = shared_mode.job_limit_s(), costs.LANES.rate("baselines")[0]
    if limit is None:
        return missing
    fit, total = [], costs.START_S
    for name in missing:
        total += BASELINE.n * costs.sample_s(name) * rate
        if total > limit:
            break
        fit.append(name)
    return fit or missing[:1]  # none fits: the cheapest, which the limit then refuses with its sentence


def baselines_work(state) -> float:
    """Seconds of first-guess work for the baselines a press measures (the button's estimate)."""
    return costs.START_S + sum(BASELINE.n * costs.sample_s(n) for n in to_measure(state))


costs.WORK["baselines"] = baselines_work


@job(Kind.BASELINES, outputs=2, on_gpu=False)
def measure_ui(datasets, state, run) -> tuple:
    """Measure and store every missing baseline, cheapest first; a cancel keeps the ones finished (each is stored)."""
    state = session(state)
    lm = state.model()
    missing = to_measure(state)  # in a shared lab: those that fit its limit (a later press measures more)
    cost = run.expected(state=state)
    with run.lane(cost):
        for name in missing:
            baseline(lm, BaselineRequest(name), progress=run.report, cancel=run.cancel)
    return panel_ui(datasets, state)


def warm_baselines() -> None:
    """A shared lab's start-up (after the demo): the built-in model's baselines, cheapest first, in the long line."""
    from cnl_core import ModelSpec

    lm = MODELS.get(ModelSpec())
    missing = sorted((n for n, b in stored(lm).items() if b is None), key=costs.sample_s)
    with Run(kind=Kind.BASELINES).lane():
        for name in missing:
            baseline(lm, BaselineRequest(name))

"""Compare tab: the empirical null next to the hypergeometric chance, for the picked located set.

Uniformly random sets of the same sizes almost never overlap, so "N times chance" is easy to reach; sets
located on unrelated data (or on the same prompts with shuffled answers) are the harder bar. This panel
locates those with the picked set's own settings (dataset, n, seed, method, thresholds) and shows their
IoU and spread beside the set's split agreement.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from cnl_core import NULL_KINDS, NullRequest, ScoreConfig
from cnl_core import fields as F
from cnl_core.options import DEFAULTS
from cnl_core.report.readings import iou_reading

from .. import widgets
from ..jobs import Kind, job
from ..session import session

HELP = (
    "**Empirical null.** The chance IoU above assumes uniformly random sets. Sets located on **unrelated** data "
    "(or on the same prompts with **shuffled** answers) share far more than that, because some layers and neurons "
    "are busy on every prompt. This locates such sets with the picked set's settings and shows their IoU."
)


def build(dataset_names: list[str]) -> SimpleNamespace:
    with gr.Accordion("Empirical null (sets on unrelated data)", open=False):
        gr.Markdown(HELP)
        with gr.Row():
            kind = gr.Radio(list(NULL_KINDS), value=NULL_KINDS[0], label="null")
            other = gr.Dropdown(
                dataset_names,
                value=DEFAULTS.null_other if DEFAULTS.null_other in dataset_names else None,
                label="unrelated dataset",
            )
            draws = widgets.number(F.NULL_DRAWS, DEFAULTS.null_draws)
        with gr.Row():
            button = gr.Button("Measure the empirical null", elem_id="null-btn")
            cancel = gr.Button("Cancel", variant="secondary", size="sm", min_width=80, scale=0)
            estimate = gr.Markdown()
        text = gr.Markdown(elem_id="null-summary")
    return SimpleNamespace(
        kind=kind, other=other, draws=draws, button=button, output=text, cancel=cancel, estimate=estimate
    )


@job(Kind.NULL, outputs=1)
def null_ui(label, kind, other, draws, state, run):
    state = session(state)
    res = state.located_set(label)
    draws = F.REPEATS.check(draws)
    score = ScoreConfig(method=res.score.method, ig_steps=res.score.ig_steps, ig_rule=res.score.ig_rule)
    cost = run.expected(draws=draws)
    request = NullRequest(res.dataset, kind, other, res.n, min(draws, 10), res.seed, score, res.params)
    lm = state.model()
    with run.lane(cost):
        null = request.run(lm, run)
    agree = res.agreement()
    times_null = f"{agree.iou / null.mean:.1f} times the empirical null" if null.mean > 0 else "the null is 0"
    times_chance = f"{agree.iou / agree.chance_iou:.0f} times" if agree.chance_iou > 0 else "against"
    return (
        f"{null.describe()}.\n\nThis set's split IoU: **{agree.iou:.3f}** ({times_null}; {times_chance} the "
        f"hypergeometric chance {agree.chance_iou:.5f}).\n\n**Reading:** "
        f"{iou_reading(agree.iou, agree.chance_iou, null.mean)}."
    )

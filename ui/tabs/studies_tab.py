"""Tab 6: the paper's decoupling experiment, and specificity across capabilities (what critics ask)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pandas as pd

from cnl_core import (
    DEFAULT_FRACTIONS,
    DEFAULTS,
    DecoupleRequest,
    EvalConfig,
    LocateParams,
    ParameterError,
    ScoreConfig,
    SpecificityRequest,
    split_by_sharing,
)
from cnl_core import fields as F
from cnl_core.options import INTERVENTION_MODES, METRIC_TITLES, METRICS
from cnl_core.report import charts

from .. import widgets
from ..errors import shows_errors
from ..jobs import Kind, job
from ..session import session
from ..shared_work import served
from . import knowledge_panel

HELP_DECOUPLE = (
    "**Decoupling (paper Figure 3).** Two subsamples of n samples share a fraction f of their samples; the rest "
    "differs. Subsample A's rest comes from the dataset, B's from the **same** dataset or from **another** one. If "
    "the located sets agree because of the capability, the IoU stays high as f shrinks when B's rest comes from "
    "the same dataset, and falls when it comes from another. At f = 1 the subsamples are identical (IoU = 1). "
    "Uses the scoring and threshold settings of the Locate tab."
)
HELP_SPECIFIC = (
    "**Specificity.** A located set may mix neurons every task uses (a backbone) with neurons specific to the "
    "capability. The bars count neurons held by exactly each combination of located sets. The interventions "
    "change each dataset's **specific** neurons and the **shared-by-all** ones; the specificity index is the "
    "effect on the dataset's own test samples minus the mean effect on the others (95% interval)."
)


def build(dataset_names: list[str]) -> SimpleNamespace:
    gr.Markdown(HELP_DECOUPLE)
    with gr.Row():
        dataset = gr.Dropdown(dataset_names, value=DEFAULTS.dataset, label="dataset")
        other = gr.Dropdown(dataset_names, value="imdb" if "imdb" in dataset_names else None, label="other dataset")
        n = widgets.number(F.N_SPLIT, DEFAULTS.n, context="(each subsample)")
        fractions = gr.Textbox(
            " ".join(f"{f:g}" for f in DEFAULT_FRACTIONS), label="shared fractions f", max_length=F.FRACTIONS.max_chars
        )
        repeats = widgets.number(F.REPEATS, DEFAULTS.decouple_repeats)
    with gr.Row():
        decouple_btn = gr.Button("Run decoupling", variant="primary", elem_id="decouple-btn")
        decouple_cancel = gr.Button("Cancel", variant="secondary", size="sm", min_width=80, scale=0)
        decouple_estimate = gr.Markdown()
    decouple_plot = gr.Plot(show_label=False, elem_id="decouple-plot")
    decouple_table = gr.Dataframe(
        label="Decoupling curve (mean over repeats)",
        wrap=True,
        headers=["shared fraction f", "replaceable", "iou", "iou_min", "iou_max", "chance_iou", "empirical null iou"],
    )
    gr.Markdown(HELP_SPECIFIC)
    sharing_btn = gr.Button("Count shared and specific neurons of the located sets")
    sharing_plot = gr.Plot(show_label=False, elem_id="sharing-plot")
    with gr.Row():
        mode = gr.Radio(list(INTERVENTION_MODES), value=INTERVENTION_MODES[0], label="intervention")
        metric = gr.Radio([(METRIC_TITLES[m], m) for m in METRICS], value=METRICS[0], label="effect measured on")
        eval_n = widgets.number(F.EVAL_N, DEFAULTS.eval_n, context="per dataset")
    with gr.Row():
        specific_btn = gr.Button("Run specificity interventions", elem_id="specificity-btn")
        specific_cancel = gr.Button("Cancel", variant="secondary", size="sm", min_width=80, scale=0)
        specific_estimate = gr.Markdown()
    status = gr.Markdown(elem_id="studies-status")
    specific_plot = gr.Plot(show_label=False)
    specific_table = gr.Dataframe(
        label="Specificity index",
        wrap=True,
        headers=["dataset", "specific neurons", "index", "95% interval", "own effect", "mean effect on others"],
    )
    knowledge = knowledge_panel.build()
    return SimpleNamespace(
        knowledge=knowledge,
        decouple_btn=decouple_btn,
        decouple_cancel=decouple_cancel,
        decouple_estimate=decouple_estimate,
        specific_cancel=specific_cancel,
        specific_estimate=specific_estimate,
        status=status,
        decouple=SimpleNamespace(dataset=dataset, other=other, n=n, fractions=fractions, repeats=repeats),
        decouple_outputs=[decouple_plot, decouple_table],
        sharing_btn=sharing_btn,
        sharing_plot=sharing_plot,
        specific=SimpleNamespace(mode=mode, metric=metric, eval_n=eval_n),
        specific_btn=specific_btn,
        specific_outputs=[specific_plot, specific_table],
    )


def _fractions(text: str) -> list[float]:
    values = [F.FRACTION.check(x) for x in F.FRACTIONS.check(text).replace(",", " ").split()]
    if not values:
        raise ParameterError("Shared fractions: give at least one number between 0 and 1.")
    return values


@job(Kind.DECOUPLE, outputs=2)
def decouple_ui(
    dataset,
    other,
    n,
    fractions,
    repeats,
    method,
    ig_steps,
    ig_rule,
    max_prompt,
    max_answer,
    batch_size,
    rule,
    tau,
    p,
    top_k,
    sigma,
    sign,
    state,
    run,
):
    state = session(state)
    request = DecoupleRequest(
        dataset,
        other,
        F.N_SPLIT.check(n),
        tuple(_fractions(fractions)),
        F.REPEATS.check(repeats),
        DEFAULTS.seed,
        ScoreConfig.from_inputs(method, ig_steps, ig_rule, max_prompt, max_answer),
        LocateParams.from_inputs(rule, tau, p, top_k, sigma, sign),
        batch_size=F.BATCH.check(batch_size),
    )
    cost = run.expected(
        dataset=dataset,
        other=other,
        n=request.n,
        fractions=fractions,
        repeats=request.repeats,
        method=request.score.method,
        ig_steps=request.score.ig_steps,
    )
    res = served(request, state.model(), run, cost).value
    for warning in res.warnings():  # two empty sets: IoU undefined
        gr.Warning(warning)
    table = pd.DataFrame(res.mean_curve()).rename(columns={"fraction": "shared fraction f"})
    # the measured null next to the hypergeometric chance: A's set vs a set of the other dataset alone (mean of repeats)
    table["empirical null iou"] = res.empirical_null()["iou"]
    return charts.decouple_chart(res), table.round(4)


@shows_errors
def sharing_ui(state):
    state = session(state)
    located = {e.result.dataset: e.result.neurons for e in state.located.values()}
    if len(located) < 2:
        raise ParameterError("Locate neurons on at least two datasets first (Data and Locate tabs).")
    return charts.sharing_bars(split_by_sharing(located).counts)


@job(Kind.SPECIFICITY, outputs=2)
def specificity_ui(mode, metric, eval_n, fewshot, max_new, state, run):
    state = session(state)
    located = {e.result.dataset: e.result for e in state.located.values()}
    eval_n, cfg = F.EVAL_N.check(eval_n), EvalConfig.from_inputs(fewshot, max_new)
    cost = run.expected(eval_n=eval_n, fewshot=fewshot, max_new=max_new, state=state)
    request = SpecificityRequest(located, eval_n, DEFAULTS.seed, mode, metric=metric, eval=cfg)
    lm = state.model()
    with run.lane(cost):
        res = request.run(lm, run)
    table = pd.DataFrame(
        [
            {
                "dataset": k,
                "specific neurons": len(res.split.specific[k]),
                "index": v["value"],
                "95% interval": v["ci"],
                "own effect": v["own"],
                "mean effect on others": v["others"],
            }
            for k, v in res.index.items()
        ]
    )
    return charts.specificity_bars(res.index, metric), table

"""Tab 3: score the chosen datasets' splits (cached) and locate neurons; thresholds re-localize at once."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from cnl_core import (
    DEFAULTS,
    DEMO,
    LocateParams,
    LocateRequest,
    ParameterError,
    ScoreConfig,
    scorer_names,
    threshold_sweep,
)
from cnl_core import fields as F
from cnl_core.options import IG_METHODS, IG_RULES, RULES, SIGNS
from cnl_core.report import charts
from cnl_core.report.readings import iou_reading, settings_line

from .. import widgets
from ..errors import shows_errors
from ..jobs import Kind, job
from ..session import Located, Session, session
from ..visitors import VISITORS, cancel_job

HELP = (
    "For every sample, each neuron gets a **score** for how much it supports the gold answer (teacher-forced). "
    "A sample **selects** the neurons scoring at least tau x its maximum; a neuron is **located** when at least "
    "a fraction p of the samples select it. Scores are cached on disk, so moving a slider re-localizes at once. "
    "**Sign**: *positive* (the default, the knowledge-neurons convention) selects neurons that raise the gold "
    "answer's probability; *negative* those that lower it (about half of all scores); *absolute* either. "
    "Token limits left at 0 cover 99% of the dataset's prompts and gold answers.\n\n"
    "*Next: **4 · Compare**, see where they are and whether the splits agree.*"
)
_SCORE, _PARAMS = ScoreConfig(), LocateParams()
EMPTY = "No located neurons yet: press **Locate neurons**."


def build() -> SimpleNamespace:
    gr.Markdown(HELP)
    with gr.Row():
        method = gr.Radio(
            list(scorer_names()),
            value=_SCORE.method,
            label="score method (integrated gradients: the paper's, slow on CPU)",
        )
        ig_steps = widgets.slider(F.IG_STEPS, _SCORE.ig_steps, step=1, visible=False)
        ig_rule = gr.Radio(
            list(IG_RULES),
            value=_SCORE.ig_rule,
            visible=False,
            label="IG step rule (right: alpha = k/m as Dai et al.; midpoint: (k - 1/2)/m)",
        )
        batch_size = widgets.slider(
            F.BATCH,
            DEFAULTS.batch_size,
            step=1,
            high=32,
            info=f"at {DEFAULTS.batch_size}, fewer rows where the memory estimate says they would not fit",
        )
    with gr.Row():
        max_prompt = widgets.number(F.MAX_PROMPT)
        max_answer = widgets.number(F.MAX_ANSWER)
    with gr.Row():
        rule = gr.Radio(list(RULES), value=_PARAMS.rule, label="per-sample selection")
        sign = gr.Radio(list(SIGNS), value=_PARAMS.sign, label="sign (positive: KN's convention)")
        tau = widgets.slider(F.TAU, _PARAMS.tau, step=0.01)
        p = widgets.slider(F.P, _PARAMS.p, step=0.05)
        top_k = widgets.number(F.TOP_K, _PARAMS.top_k, visible=False)
        sigma = widgets.number(F.SIGMA, _PARAMS.sigma, visible=False)
    with gr.Row():
        locate_btn = gr.Button("Locate neurons", variant="primary", elem_id="locate-btn")
        cancel_btn = gr.Button("Cancel", variant="secondary", elem_id="locate-cancel")
        demo_btn = gr.Button("Use the demo's settings", elem_id="demo-settings")
        estimate = gr.Markdown(elem_id="locate-estimate")
    summary = gr.Markdown(EMPTY, elem_id="locate-summary")
    with gr.Accordion("Threshold sweep: located-set size and split agreement for several tau and p", open=False):
        sweep_btn = gr.Button("Sweep thresholds (from the cached scores of the last located set)")
        sweep_plot = gr.Plot(show_label=False, elem_id="sweep-plot")
    method.change(lambda m: [gr.update(visible=m in IG_METHODS)] * 2, method, [ig_steps, ig_rule])
    rule.change(
        lambda r: (
            gr.update(visible=r == "relative"),
            gr.update(visible=r == "topk"),
            gr.update(visible=r == "zscore"),
        ),
        rule,
        [tau, top_k, sigma],
    )
    return SimpleNamespace(
        scoring=SimpleNamespace(
            method=method,
            ig_steps=ig_steps,
            ig_rule=ig_rule,
            max_prompt=max_prompt,
            max_answer=max_answer,
            batch_size=batch_size,
        ),
        thresholds=SimpleNamespace(rule=rule, tau=tau, p=p, top_k=top_k, sigma=sigma, sign=sign),
        locate_btn=locate_btn,
        demo_btn=demo_btn,
        estimate=estimate,
        cancel_btn=cancel_btn,
        summary=summary,
        sweep_btn=sweep_btn,
        sweep_plot=sweep_plot,
    )


def split_numbers(n, k, seed) -> tuple[int, int, int]:
    """The Data tab's numbers, checked: samples per split, splits, seed."""
    return F.N_SPLIT.check(n), F.SPLITS.check(k), F.SEED.check(seed)


def locate_requests(
    datasets,
    n,
    k,
    seed,
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
) -> list[LocateRequest]:
    """The Locate tab's boxes as one request per chosen dataset, every number checked (before the model loads)."""
    params = LocateParams.from_inputs(rule, tau, p, top_k, sigma, sign)
    cfg = ScoreConfig.from_inputs(method, ig_steps, ig_rule, max_prompt, max_answer)
    numbers, batch = split_numbers(n, k, seed), F.BATCH.check(batch_size)
    if batch == DEFAULTS.batch_size:  # the default: the library fits it to free memory (with a note)
        batch = None
    return [LocateRequest(name, *numbers, cfg, params, batch) for name in datasets]


@job(Kind.LOCATE, outputs=2)
def locate_ui(
    datasets,
    n,
    k,
    seed,
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
    """Locate on every chosen dataset; returns (summary, session)."""
    state = session(state)
    if not datasets:
        raise ParameterError("Pick at least one dataset on the Data tab.")
    boxes = (
        n,
        k,
        seed,
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
    )
    requests = locate_requests(datasets, *boxes)
    first = requests[0]
    cost = run.expected(
        datasets=datasets, n=first.n, k=first.k, method=first.score.method, ig_steps=first.score.ig_steps
    )
    lm = state.model()  # every number is checked before the model is loaded
    with run.lane(cost):
        for request in requests:
            scored = request.run(lm, run)
            name = request.dataset
            state.located[f"{lm.spec.name}:{name}"] = Located(scored.result(), scored)
    return summary(state), state


@shows_errors
def relocalize_ui(rule, tau, p, top_k, sigma, sign, state):
    """Threshold change: every located set anew from the in-memory scores (no model call)."""
    state = session(state)
    params = LocateParams.from_inputs(rule, tau, p, top_k, sigma, sign)
    for entry in state.located.values():
        if entry.run is not None:
            entry.result = entry.run.result(params)
    return summary(state), state


def cancel_ui(state) -> str:
    """Cancel the visitor's running job, named; the Locate summary says what happens to its work."""
    job = VISITORS.running(state) if isinstance(state, Session) else None
    cancel_job(state)
    if job is None:
        return "Nothing of yours was running. " + summary(session(state))
    kept = (
        " The batches it scored stay cached: pressing Locate again picks up from them." if job.name == "Locate" else ""
    )
    return f"**Cancelled: {job.name}.** It stops at its next step.{kept}\n\n" + summary(session(state))


def demo_settings() -> tuple:
    """'Use the demo's settings': the Data, Locate and Intervene boxes set to the demo's preset, so a student's
    own run reproduces the demo's located set and its numbers (the demo scores with the default method)."""
    d = DEMO
    return (
        gr.update(value=[d.dataset]),
        d.n,
        2,
        d.seed,
        _SCORE.method,
        "relative",
        "positive",
        d.tau,
        d.p,
        [d.dataset],
        d.eval_n,
        d.seed,
        d.control_draws,
        d.fewshot,
        0,
        d.factor,
    )


def summary_ui(state) -> str:
    """The summary of the session's located sets (after a restore)."""
    return summary(session(state))


def summary(state: Session) -> str:
    if not state.located:
        return EMPTY
    lines = [
        "| model : dataset | located | % of neurons | split overlap | split IoU | chance IoU | p-value | cache | "
        "settings |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, entry in state.located.items():
        r = entry.result
        agree = r.agreement()
        lines.append(
            f"| {label} | **{r.n_located}** | {100 * r.fraction_located:.3f}% | "
            f"**{agree.overlap_rate:.3f}** | **{agree.iou:.3f}** | {agree.chance_iou:.5f} | "
            f"{agree.worst_p_value:.2g} | {r.cache.reused} cached / {r.cache.computed} computed | "
            f"{_settings(r)} |"
        )
    notes = [n for e in state.located.values() for n in [*e.result.cache.notes, *e.result.warnings()]]
    limits = [
        f"{label}: prompts up to {e.result.score.max_prompt_tokens} tokens, answers up to "
        f"{e.result.score.max_answer_tokens} ({e.result.truncated_answers} cut), sign {e.result.params.sign}"
        for label, e in state.located.items()
    ]
    readings = [
        f"{label}: {iou_reading(e.result.agreement().iou, e.result.agreement().chance_iou)}"
        for label, e in state.located.items()
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {x}" for x in [*readings, *limits, *(f"note: {n}" for n in notes)])


def _settings(r) -> str:
    """The thresholds and sizes a located set was computed with (a relative rule shows tau; the others their own)."""
    p = r.params
    line = settings_line(p.tau, p.p, r.n, r.k, r.seed, r.score.method)
    return line if p.rule == "relative" else line.replace(f"tau {p.tau:g}", f"{p.rule} rule")


@shows_errors
def sweep_ui(state):
    state = session(state)
    runs = [e.run for e in state.located.values() if e.run is not None]
    if not runs:
        raise ParameterError("Locate neurons first: the sweep re-uses the scores of the last located set.")
    return charts.sweep_chart(threshold_sweep(runs[-1], DEFAULTS.sweep_taus, DEFAULTS.sweep_ps))

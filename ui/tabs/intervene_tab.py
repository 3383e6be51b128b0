"""Tab 5: the proof: zero or amplify the located neurons, against same-size random controls."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import gradio as gr

from cnl_core import DEFAULTS, DoseRequest, EvalConfig, EvaluateRequest, Intervention, MatrixRequest, ParameterError
from cnl_core import fields as F
from cnl_core.options import INTERVENTION_MODES, METRIC_TITLES, METRICS, POSITIONS
from cnl_core.report import charts, exports
from cnl_core.report.readings import dose_reading, evaluation_readings

from .. import widgets
from ..jobs import Kind, job
from ..session import Session, session
from ..session_store import link_line
from ..shared_work import served
from ..visitors import VISITORS, cancel_job
from . import harness_panel, steer_panel
from .data_tab import dataset_choices

HELP = (
    "The proof: **zero** the located neurons (accuracy should drop) or **amplify** them (the paper reports gains "
    "on 7B models; on a 135M model it often falls: its answer path saturates, see the dose-response), and "
    "compare with a **random control** of the same size per layer. Bars show 95% bootstrap intervals. The "
    "gold-answer log-likelihood moves even where a small model's accuracy is near 0.\n\n"
    "*Next: **6 · Studies** (is it the capability, and only it?) or **7 · Export**.*"
)
_EVAL = EvalConfig()


def build(dataset_names: list[str]) -> SimpleNamespace:
    gr.Markdown(HELP)
    with gr.Row():
        located_on = gr.Dropdown([], label="Neurons located on")
        mode = gr.Radio(list(INTERVENTION_MODES), value=INTERVENTION_MODES[0], label="intervention")
        factor = widgets.slider(F.FACTOR, DEFAULTS.amplify_factor, step=0.5)
        positions = gr.Radio(list(POSITIONS), value=POSITIONS[0], label="token positions")
    targets = gr.CheckboxGroup(dataset_names, value=[DEFAULTS.dataset], label="Test on", elem_id="intervene-targets")
    harness = harness_panel.build()
    with gr.Row():
        n = widgets.number(F.EVAL_N, DEFAULTS.eval_n)
        seed = widgets.number(F.SEED, DEFAULTS.seed)
        draws = widgets.number(F.CONTROL_DRAWS, DEFAULTS.control_draws)
        fewshot = widgets.number(F.FEWSHOT)
        max_new = widgets.number(F.MAX_NEW)
        overlap = gr.Checkbox(False, label="controls may include located neurons (default: they avoid them)")
    with gr.Row():
        run_btn = gr.Button("Run intervention", variant="primary", elem_id="intervene-btn")
        cancel_btn = gr.Button("Cancel", variant="secondary", elem_id="intervene-cancel")
        estimate = gr.Markdown(elem_id="intervene-estimate")
    reading = gr.Markdown(elem_id="intervene-reading")
    with gr.Row():
        acc_plot = gr.Plot(label="Accuracy", show_label=False)
        ll_plot = gr.Plot(label="Gold-answer log-likelihood per token", show_label=False)
    table = gr.Dataframe(
        label="Every intervention of this session (newest first)",
        wrap=True,
        elem_id="eval-table",
        headers=exports.EVAL_COLUMNS,
    )
    examples = gr.Dataframe(
        label="Example outputs of the last run, before and after", wrap=True, headers=exports.EXAMPLE_COLUMNS
    )
    steering = steer_panel.build()
    with gr.Accordion("Dose-response: the located neurons scaled by 0, 0.5, 1, 2 and 4", open=False):
        with gr.Row():
            dose_btn = gr.Button("Run dose-response on the first dataset to test")
            dose_estimate = gr.Markdown()
        dose_reading_md = gr.Markdown(elem_id="dose-reading")
        dose_plot = gr.Plot(show_label=False, elem_id="dose-plot")
    with gr.Accordion("Cross-dataset matrix (paper Figure 5)", open=False):
        metric = gr.Radio([(METRIC_TITLES[m], m) for m in METRICS], value=METRICS[0], label="cell: the change of")
        with gr.Row():
            matrix_btn = gr.Button("Compute matrix: every located set x every test dataset")
            matrix_estimate = gr.Markdown()
        matrix_plot = gr.Plot(label="Change against the unmodified model", show_label=False)
    return SimpleNamespace(
        located_on=located_on,
        mode=mode,
        factor=factor,
        positions=positions,
        targets=targets,
        n=n,
        seed=seed,
        draws=draws,
        fewshot=fewshot,
        max_new=max_new,
        overlap=overlap,
        run_btn=run_btn,
        harness=harness,
        cancel_btn=cancel_btn,
        outputs=[acc_plot, ll_plot, table, examples],
        metric=metric,
        estimate=estimate,
        dose_estimate=dose_estimate,
        matrix_estimate=matrix_estimate,
        dose_reading=dose_reading_md,
        reading=reading,
        dose_btn=dose_btn,
        dose_plot=dose_plot,
        steering=steering,
        matrix_btn=matrix_btn,
        matrix_plot=matrix_plot,
    )


def follow_set(located_on, state):
    """'Test on' follows the chosen set: its own dataset, when the box offers it (a set located on imdb was tested
    on the default gsm8k before anyone noticed). Other datasets are a tick away."""
    state = session(state)
    entry = state.located.get(located_on) if located_on else None
    if entry is None or entry.result.dataset not in dataset_choices(state):
        return gr.update()
    return gr.update(value=[entry.result.dataset])


def eval_numbers(n, seed) -> tuple[int, int]:
    return F.EVAL_N.check(n), F.SEED.check(seed)


@job(Kind.INTERVENE, outputs=6)
def intervene_ui(located_on, mode, factor, positions, targets, n, seed, draws, fewshot, max_new, overlap, state, run):
    state = session(state)
    located = state.located_set(located_on)
    if not targets:
        raise ParameterError("Pick at least one dataset to test.")
    iv = Intervention.from_inputs(located.neurons, mode, factor, positions)
    cfg, (n, seed), control_draws = (
        EvalConfig.from_inputs(fewshot, max_new),
        eval_numbers(n, seed),
        F.CONTROL_DRAWS.check(draws),
    )
    cost = run.expected(targets=targets, n=n, draws=control_draws, fewshot=fewshot, max_new=max_new)
    lm = state.model_for(located.grid)  # every number is checked before the model is loaded
    results, links = [], []
    state.history.append(results)  # filled dataset by dataset: a cancelled run keeps the datasets it finished
    try:
        for target in targets:
            ids = located.located_sample_ids() if target == located.dataset else []
            request = EvaluateRequest(target, iv, n, seed, control_draws, bool(overlap), tuple(ids), cfg)
            out = served(request, lm, run, cost)
            results.append(replace(out.value, located_on=located_on))  # a copy: the stored result is everyone's
            links.append(f"- {target}: {link_line(request.kind, out.key)}")
    finally:
        if not results:
            state.history.remove(results)
    return (*evaluation_outputs(state), run_reading(state) + "\n" + "\n".join(links), state)


def restored_outputs(state) -> tuple:
    """Charts, table and readings of the session's last run (after a restore)."""
    state = session(state)
    return (*evaluation_outputs(state), run_reading(state))


def run_reading(state: Session, note: str = "") -> str:
    """The lines under the charts: what the last run's numbers mean (readings.py), after an optional note."""
    last = state.history[-1] if state.history else []
    lines = [f"- {x}" for x in evaluation_readings(last)]
    return "\n".join([note, *lines] if note else lines)


def running_note(state) -> str:
    """Shown at the press: the charts below stay the previous run's until this one finishes."""
    state = session(state)
    return (
        "*Running... the charts and readings below are from your previous run until this one finishes.*"
        if state.history
        else "*Running...*"
    )


def dose_running() -> str:
    """Shown at the press: the chart stays the previous run's until this one finishes."""
    return "*Running... the chart below, if any, is from your previous dose-response until this one finishes.*"


def cancelled_ui(state) -> tuple:
    """Cancel: the job stops at its next step; the datasets it finished stay in the table and the charts."""
    state = session(state)
    job = VISITORS.running(state)
    cancel_job(state)
    name = job.name if job else "Intervene"
    last = state.history[-1] if state.history else []
    kept = (
        f" The datasets it finished are kept and shown: {', '.join(r.dataset for r in last)}." if last and job else ""
    )
    note = f"**Cancelled: {name}.** It stops at its next step.{kept}"
    return (*evaluation_outputs(state), run_reading(state, note))


def evaluation_outputs(state: Session) -> tuple:
    """Charts and examples of the last run; the table of every run."""
    last = state.history[-1] if state.history else []
    acc, ll = charts.evaluation_charts(last)
    return acc, ll, exports.readable_evaluation_table(state.history), exports.examples_table(last)


@job(Kind.DOSE, outputs=2)
def dose_ui(located_on, positions, targets, n, seed, fewshot, max_new, state, run):
    state = session(state)
    if located_on not in state.located or not targets:
        raise ParameterError("Pick a located set and a dataset to test.")
    located = state.located[located_on].result
    target = list(targets)[0]
    (n, seed), cfg = eval_numbers(n, seed), EvalConfig.from_inputs(fewshot, max_new)
    ids = located.located_sample_ids() if target == located.dataset else []
    request = DoseRequest(target, located.neurons, positions, n=n, seed=seed, located_ids=tuple(ids), eval=cfg)
    cost = run.expected(targets=[target], n=n, fewshot=fewshot, max_new=max_new)
    out = served(request, state.model_for(located.grid), run, cost)
    return charts.dose_chart(out.value, target, request.positions), dose_reading(out.value)


@job(Kind.MATRIX, outputs=2)
def matrix_ui(mode, factor, positions, targets, n, seed, fewshot, max_new, metric, state, run):
    state = session(state)
    if not state.located or not targets:
        raise ParameterError("Locate neurons on at least one dataset and pick datasets to test.")
    (n, seed), cfg = eval_numbers(n, seed), EvalConfig.from_inputs(fewshot, max_new)
    rows = {
        e.result.dataset: (
            Intervention.from_inputs(e.result.neurons, mode, factor, positions),
            e.result.located_sample_ids(),
        )
        for e in state.located.values()
    }
    cost = run.expected(targets=targets, n=n, fewshot=fewshot, max_new=max_new, state=state)
    lm = state.model()
    elsewhere = [k for k, (iv, _) in rows.items() if iv.neurons.grid != lm.grid]
    if elsewhere:  # sets re-loaded from another model stay in the session; the matrix says which it left out
        gr.Warning(f"Left out of the matrix (located on another model's grid): {', '.join(elsewhere)}.")
    rows = {k: v for k, v in rows.items() if k not in elsewhere}
    if len(rows) == 1:
        gr.Info(
            "One located set: the matrix shows it and its random control. Locate a second dataset to see "
            "whose neurons carry which capability (the paper's Figure 5)."
        )
    out = served(MatrixRequest(rows, tuple(targets), n, seed, with_controls=True, eval=cfg), lm, run, cost)
    state.matrix = out.value
    return charts.cross_matrix_heatmap(out.value, metric), state

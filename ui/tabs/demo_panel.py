"""The one-click demo, above the tabs: locate a capability the model has, then switch it off and up."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from cnl_core import DEMO, DemoRequest
from cnl_core.report import charts
from cnl_core.report.readings import demo_reading

from ..jobs import Kind, Run, job
from ..session import session
from ..session_store import link_line
from ..shared_work import served, source_note

INTRO = (
    f"**New here? Run the demo** (about a minute on a laptop): it locates the neurons the built-in model uses "
    f"for one-digit addition (`{DEMO.dataset}`), then zeroes and amplifies them on {DEMO.eval_n} held-out "
    "problems, next to as many random neurons. Then walk through the tabs: **1 Model → 2 Data → 3 Locate → "
    "4 Compare → 5 Intervene → 6 Studies → 7 Export**."
)


SCORED = ("whole answer", "digits only", "both (format control)")
SCORED_INFO = (
    "the answer ' 7' is a space token, then the digit: 'digits only' puts the space in the prompt, so "
    "neither locating nor accuracy rests on the answer's format"
)


def build() -> SimpleNamespace:
    # above the tabs, and folded away in one click: on a projector the tabs then start at the top
    with gr.Accordion("The one-click demo", open=True, elem_id="demo"):
        with gr.Row():  # on a phone the text (at least 300 px) and the buttons stack instead of squeezing
            with gr.Column(scale=1, min_width=300):
                gr.Markdown(INTRO, elem_id="demo-intro")
            with gr.Column(scale=0, min_width=180):
                button = gr.Button("▶ Run the demo", variant="primary", elem_id="demo-btn")
                cancel = gr.Button("Cancel", variant="secondary", elem_id="demo-cancel", size="sm")
                estimate = gr.Markdown(elem_id="demo-estimate")
        scored = gr.Radio(list(SCORED), value=SCORED[0], label="answer scored", info=SCORED_INFO, elem_id="demo-scored")
        # room from the start: the progress bar and its time left are drawn over this box while the demo runs
        summary = gr.Markdown("*The demo's result and its progress show here.*", elem_id="demo-summary", min_height=90)
        plot = gr.Plot(show_label=False, elem_id="demo-plot", visible=False)
        content_plot = gr.Plot(show_label=False, elem_id="demo-content-plot", visible=False)
    return SimpleNamespace(
        button=button,
        cancel=cancel,
        estimate=estimate,
        scored=scored,
        summary=summary,
        outputs=[summary, plot, content_plot],
    )


def demo_request(scored: str) -> DemoRequest:
    """The request the radio's choice names (the CLI's --answer whole, content or both)."""
    return DemoRequest(("whole", "content", "both")[SCORED.index(scored)] if scored in SCORED else "whole")


def warm_demo() -> None:
    """Compute (or find) the default demo before the first visitor asks: `dashboard.py --warm-demo`."""
    from cnl_core import MODELS, ModelSpec

    served(demo_request(SCORED[0]), MODELS.get(ModelSpec()), Run(kind=Kind.DEMO))


@job(Kind.DEMO, outputs=3)
def demo_ui(scored, state, run):
    """The demo, computed once per model and way of scoring (result_cache.py): the first press computes it, every
    press meanwhile gets that run, every press after gets the stored result at once."""
    state = session(state)
    cost = run.expected(scored=scored)
    out = served(demo_request(scored), state.model(), run, cost)
    if scored == SCORED[2]:
        both, fmt = out.value, out.value.format_token
        text = (
            f"### Demo, both ways\n**Whole answer:** {both.with_format.headline()}\n\n**Digits only:** "
            f"{both.content_only.headline()}\n\nThe first answer token is a bare space: p(' ') after the prompt is "
            f"{fmt['unmodified']['p']:.2f} unmodified, **{fmt['located zeroed']['p']:.2f}** with the whole-answer "
            f"set zeroed, {fmt['random zeroed']['p']:.2f} with as many random neurons zeroed. The two located sets "
            f"share {both.shared_neurons} neurons. Charts: whole answer, then digits only. {source_note(out)}"
        )
        return (
            text,
            gr.update(value=charts.demo_chart(both.with_format), visible=True),
            gr.update(value=charts.demo_chart(both.content_only), visible=True),
        )
    res = out.value
    text = (
        f"### Demo result\n{res.headline()}\n\n{demo_reading(res)}\n\n"
        "Red bars: the located neurons zeroed; green: amplified; pale red and pale green: as many random neurons "
        "(none of them located) changed the same way. Intervals: 95% bootstrap. "
        f"{source_note(out) or f'Took {res.seconds:.0f} s.'} {link_line('demo', out.key)}"
    )
    return text, gr.update(value=charts.demo_chart(res), visible=True), gr.update(visible=False)

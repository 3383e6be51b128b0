"""The one-click demo, above the tabs: locate a capability the model has, then switch it off and up."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from cnl_core.experiments.demo import DEMO, run_demo
from cnl_core.report import charts

from .. import gpu
from ..errors import progress_reporter, shows_errors
from ..session import session
from ..visitors import one_job

INTRO = (f"**New here? Run the demo** (about a minute on a laptop): it locates the neurons the built-in model uses "
         f"for one-digit addition (`{DEMO.dataset}`), then zeroes and amplifies them on {DEMO.eval_n} held-out "
         "problems, next to as many random neurons. Then walk through the tabs: **1 Model → 2 Data → 3 Locate → "
         "4 Compare → 5 Intervene → 6 Studies → 7 Export**.")


def build() -> SimpleNamespace:
    with gr.Row():
        gr.Markdown(INTRO, elem_id="demo-intro")
        button = gr.Button("▶ Run the demo", variant="primary", elem_id="demo-btn", scale=0, min_width=180)
    summary = gr.Markdown(elem_id="demo-summary")
    plot = gr.Plot(show_label=False, elem_id="demo-plot", visible=False)
    return SimpleNamespace(button=button, outputs=[summary, plot])


@gpu.on_gpu(gpu.demo_seconds)
@shows_errors
@one_job("Demo")
def demo_ui(state, progress=gr.Progress()):
    state = session(state)
    res = run_demo(state.model(), DEMO, progress=progress_reporter(progress), cancel=state.cancel)
    text = (f"### Demo result\n{res.headline()}\n\nRed bars: the located neurons changed; pale bars: as many random "
            f"neurons (none of them located) changed the same way. Intervals: 95% bootstrap. Took {res.seconds:.0f} s.")
    return text, gr.update(value=charts.demo_chart(res), visible=True)

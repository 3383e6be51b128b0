"""The steering playground, inside the Intervene tab: one prompt, answered with the located set on, off or up."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from cnl_core import DEFAULTS, Intervention, ParameterError, SteerRequest, token_logprobs
from cnl_core import fields as F

from .. import widgets
from ..jobs import Kind, job
from ..session import session

HELP = (
    "**Ask the model yourself.** The same prompt answered by the unmodified model, with the located neurons "
    "changed (the intervention and factor above), and with as many random neurons changed the same way; the "
    "answers grow token by token. Below: how much each of the unmodified answer's tokens loses (red) or gains "
    "(purple) in log-probability when the located neurons are changed."
)


def build() -> SimpleNamespace:
    with gr.Accordion("Steering playground: ask with the neurons on and off", open=False):
        gr.Markdown(HELP)
        with gr.Row():
            prompt = gr.Textbox(
                "Question: What is 4 + 3?\nAnswer:",
                lines=3,
                label="prompt",
                scale=3,
                max_length=F.STEER_PROMPT.max_chars,
            )
            max_new = widgets.number(F.STEER_TOKENS, DEFAULTS.steer_tokens)
            with gr.Column(scale=0, min_width=120):
                button = gr.Button("Ask", variant="primary", elem_id="steer-btn")
                cancel = gr.Button("Cancel", variant="secondary", size="sm")
        estimate = gr.Markdown()
        note = gr.Markdown(elem_id="steer-note")
        with gr.Row():
            base = gr.Textbox(label="unmodified model", lines=4, elem_id="steer-baseline")
            changed = gr.Textbox(label="located neurons changed", lines=4, elem_id="steer-intervened")
            control = gr.Textbox(label="as many random neurons changed", lines=4)
        diff = gr.HighlightedText(
            label="The unmodified answer's tokens: change of log-probability when intervened",
            show_legend=False,
            combine_adjacent=False,
        )
    return SimpleNamespace(
        prompt=prompt,
        max_new=max_new,
        button=button,
        cancel=cancel,
        estimate=estimate,
        note=note,
        outputs=[base, changed, control, diff, note],
    )


@job(Kind.STEER, outputs=5)
def steer_ui(located_on, mode, factor, positions, prompt, max_new, seed, state, run):
    state = session(state)
    neurons = state.located_set(located_on).neurons
    if not F.STEER_PROMPT.check(prompt).strip():
        raise ParameterError("Type a prompt to ask the model.")
    iv = Intervention.from_inputs(neurons, mode, factor, positions)
    request = SteerRequest(prompt, iv, F.STEER_TOKENS.check(max_new), F.SEED.check(seed))  # the CLI's request
    cost = run.expected(max_new=request.max_new_tokens)
    lm = state.model_for(neurons.grid)  # every input is checked before the model is loaded
    tokens = len(lm.tokenizer(prompt)["input_ids"])
    if tokens > F.TOKEN_CEILING:
        raise ParameterError(f"prompt: {tokens:,} tokens is too long; the limit is {F.TOKEN_CEILING:,}.")
    answers = {}
    with run.lane(cost):
        for answers in request.stream(lm, run):
            yield answers["baseline"].text, answers["intervened"].text, answers["control"].text, None, ""
        ids = lm.tokenizer(prompt)["input_ids"]
        base = answers["baseline"]
        before = token_logprobs(lm, ids, base.token_ids, None)
        after = token_logprobs(lm, ids, base.token_ids, iv)
    # a loss is positive (Gradio draws it red), a gain negative (purple): the colours the help text names
    diff = [(tok, max(-1.0, min(1.0, b - a))) for tok, b, a in zip(base.tokens, before, after)]
    yield base.text, answers["intervened"].text, answers["control"].text, diff, steer_note(answers, diff)


def steer_note(answers: dict, diff: list[tuple[str, float]]) -> str:
    """What the three answers and the colours say, and why a box is empty where one is."""
    empty = [
        name
        for name, key in (
            ("located neurons changed", "intervened"),
            ("random neurons changed", "control"),
            ("unmodified", "baseline"),
        )
        if not answers[key].text.strip()
    ]
    lines = [f"The *{name}* answer is empty: the model ended it (or wrote only spaces) at once." for name in empty]
    lost = sum(1 for _, d in diff if d > 0.05)
    gained = sum(1 for _, d in diff if d < -0.05)
    lines.append(
        f"Of the unmodified answer's {len(diff)} tokens, {lost} lose probability (red) and {gained} gain "
        "(purple) when the located neurons are changed; pale: little change."
    )
    return "\n\n".join(lines)

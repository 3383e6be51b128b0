"""Ask the model with neurons on and off: one prompt answered by the unmodified model, with the located set
zeroed or amplified, and with a same-size random control; every token's log-probability under each.

`steer_conditions` builds the three conditions (the CLI and the dashboard both call it, so one seed draws one
control everywhere); `steer_stream` yields the three answers as they grow, token by token (what the dashboard
shows live); `steer` returns the finished comparison. Each token is a full pass over the prompt and the answer so
far, so an intervention at the answer positions changes every position that predicts an answer token (the
prompt's last and each answer token's), as the evaluation's cached decoding does, not only the last one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import torch

from ..errors import ParameterError
from ..model.hooks import Edit, Intervention, edited
from ..model.loading import LoadedModel
from ..model.positions import answer_span, generated_positions
from ..progress import check_cancel
from ..schema import in_file, result_kind
from .controls import controlled

CONDITIONS = ("baseline", "intervened", "control")


@dataclass
class Answer:
    text: str = ""
    tokens: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # of each generated token, under its own condition


def _logprob_change(r: SteerResult) -> dict[str, list[float]]:
    """Per condition: how much the baseline's own tokens gained (+) or lost (-) log-probability under it."""
    base = r.baseline_under.get("baseline")
    if base is None:
        return {}
    return {k: [b - a for a, b in zip(base, v)] for k, v in r.baseline_under.items() if k != "baseline"}


@result_kind(
    "cnl.steer",
    order=("prompt", "intervention", "answers", "baseline_under", "baseline_tokens_logprob_change"),
    computed={"baseline_tokens_logprob_change": _logprob_change},  # written for readers, computed again
)
@dataclass
class SteerResult:
    prompt: str
    answers: dict[str, Answer] = field(metadata=in_file(flatten=True))  # by condition, each at the top of the file
    # the baseline's tokens, scored per condition
    baseline_under: dict[str, list[float]] = field(
        default_factory=dict, metadata=in_file(key="baseline_tokens_logprob_under")
    )
    intervention: dict = field(default_factory=dict)  # Intervention.describe()


def steer_conditions(iv: Intervention, seed: int) -> dict[str, Intervention | None]:
    """The three conditions of a steering comparison: the unmodified model, `iv`, and `iv` on a random control of
    as many neurons per layer (none of the located ones), drawn as an evaluation's first control with `seed`."""
    return {"baseline": None, "intervened": iv, "control": controlled(iv, seed)}


def check_prompt(prompt: object) -> str:
    """The prompt, or a sentence: an empty one has no last token to continue from (checked before any load)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ParameterError(f"The prompt is empty ({prompt!r:.40}); give the text the model should continue.")
    return prompt


def _under(lm: LoadedModel, iv: Intervention | None, prompt_tokens: int, tokens: int):
    """`iv` on one full pass of `tokens` tokens whose first `prompt_tokens` are the prompt: an answer-position
    intervention changes the positions from the prompt's last on (each predicts an answer token)."""
    return edited(lm, Edit.of(lm, iv).at(generated_positions(prompt_tokens, tokens, lm.input_device)))


def _next_token(lm: LoadedModel, ids: list[int]) -> tuple[int, float]:
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids], device=lm.input_device), use_cache=False).logits[0, -1].float()
    logp = torch.log_softmax(logits, -1)
    token = int(logp.argmax())
    return token, float(logp[token])


def token_logprobs(
    lm: LoadedModel, prompt_ids: list[int], continuation: list[int], iv: Intervention | None
) -> list[float]:
    """Log-probability of each continuation token after the prompt, under the intervention."""
    if not continuation:
        return []
    with _under(lm, iv, len(prompt_ids), len(prompt_ids) + len(continuation)), torch.no_grad():
        ids = torch.tensor([prompt_ids + continuation], device=lm.input_device)
        span = answer_span(len(prompt_ids), len(prompt_ids) + len(continuation))
        logits = lm.model(input_ids=ids, use_cache=False).logits[0, span].float()
    return (
        torch.log_softmax(logits, -1)
        .gather(-1, torch.tensor(continuation, device=logits.device)[:, None])
        .view(-1)
        .cpu()
        .tolist()
    )


def steer_stream(
    lm: LoadedModel,
    prompt: str,
    conditions: dict[str, Intervention | None],
    max_new_tokens: int = 32,
    cancel: threading.Event | None = None,
) -> Iterator[dict[str, Answer]]:
    """Greedy answers of every condition, one token at a time each (a full recompute per token: short answers).
    A set `cancel` stops before the next token (Cancelled), between the conditions too."""
    check_prompt(prompt)
    prompt_ids = lm.tokenizer(prompt)["input_ids"]
    answers = {name: Answer() for name in conditions}
    eos = lm.tokenizer.eos_token_id
    done: set[str] = set()
    for step in range(max_new_tokens):
        for name, iv in conditions.items():
            if name in done:
                continue
            check_cancel(cancel, step, max_new_tokens, "new tokens")
            ids = prompt_ids + answers[name].token_ids
            with _under(lm, iv, len(prompt_ids), len(ids)):
                token, logp = _next_token(lm, ids)
            a = answers[name]
            a.token_ids.append(token)
            # decode() of one sequence gives a str (transformers types it str | list[str], for batches too)
            a.tokens.append(cast(str, lm.tokenizer.decode([token])))
            a.logprobs.append(logp)
            a.text = cast(str, lm.tokenizer.decode(a.token_ids, skip_special_tokens=True))
            if token == eos:
                done.add(name)
        yield answers
        if len(done) == len(conditions):
            break


def steer(
    lm: LoadedModel, prompt: str, conditions: dict[str, Intervention | None], max_new_tokens: int = 32
) -> SteerResult:
    answers: dict[str, Answer] = {}
    for answers in steer_stream(lm, prompt, conditions, max_new_tokens):  # noqa: B007 - keeps the last (complete) one
        pass
    prompt_ids = lm.tokenizer(prompt)["input_ids"]
    base = answers.get("baseline")
    under = (
        {name: token_logprobs(lm, prompt_ids, base.token_ids, iv) for name, iv in conditions.items()} if base else {}
    )
    iv = conditions.get("intervened")
    return SteerResult(prompt, answers, under, iv.describe() if iv is not None else {})

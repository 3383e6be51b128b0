"""What a heavy button will cost on this server, told before it is pressed, and the line it joins.

Why: a student pressed Intervene on GSM8K (a short job by its kind) and held every demo, inspector page and
steering answer of the room for 3 minutes; a default knowledge study ran over 10 minutes with no warning. Here
each heavy button's inputs give an amount of work (samples x passes x tokens, per dataset: a GSM8K sample
generates 256 tokens after a 5-shot prompt, an add1 sample 8 after short ones), turned into seconds by a rate
measured on this server per kind of job (lanes.py keeps it: the first run of a kind is "a first guess", said as
such). The expected seconds decide the line (options.JOBS.short_line_s), show under the button before the press,
and, in a shared lab, refuse what would take more than the operator's limit (shared_mode.job_limit_s).

Each estimate takes the handler's inputs by the handler's own parameter names (wiring.py), so app.py wires the
line under a button from the same components as the button.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import lru_cache

from cnl_core import DEFAULT_FACTORS, DEMO, GENERATE_NUMBER, get_dataset, parse_tasks, shared_mode
from cnl_core.errors import ParameterError
from cnl_core.options import JOBS

from .lanes import LANES

# First guesses for the built-in 135M model on a 2-core CPU; every kind's rate is then measured here (lanes.py).
# (from the measurements: a GSM8K Intervene of 10 x 4 conditions over 11 min, a GSM8K locate of 2 x 20 in
# 186 s, the demo in 18 s: bench/RESULTS.md)
TOKEN_PASS_S = 0.001  # one prompt token through the model, teacher-forced, in a batch
TOKEN_GEN_S = 0.004  # one generated token of one sample, in a batch, plus GEN_CONTEXT_S per token of its context
GEN_CONTEXT_S = 0.00006
SCORED_TOKEN_S = 0.03  # one token of a located sample: forward, backward and every neuron's score
START_S = 1.0


@dataclass(frozen=True)
class Expected:
    """A job's expected seconds here, whether its kind's rate was measured here, and its raw work."""

    kind: str
    seconds: float
    measured: bool
    work: float

    @property
    def line(self) -> str:
        return "long" if self.seconds > JOBS.short_line_s else "short"

    def describe(self) -> str:
        guess = "" if self.measured else ", a first guess until one has run here"
        return f"Expected: about {duration(self.seconds)} on this server ({self.line}-job line{guess})."


def duration(seconds: float) -> str:
    """'40 s', '3 min', '1 h 10 min': rounded as a person says it."""
    if seconds < 90:
        return f"{max(1.0, seconds):.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


@lru_cache(maxsize=256)
def _prompt_tokens(dataset: str) -> float:
    rows = get_dataset(dataset).rows()[:64]
    return sum(len(r.prompt) + len(r.answer) for r in rows) / max(1, len(rows)) / 4  # about 4 characters a token


def sample_s(dataset: str, fewshot=-1, max_new=0) -> float:
    """One evaluated sample of this dataset: its prompt with the shots, then the generated tokens or the choices."""
    try:
        spec = get_dataset(dataset)
        tokens = _prompt_tokens(dataset)
    except Exception:  # noqa: BLE001  # an unknown or unreachable dataset: the handler says what is wrong
        return 1.0
    shots = int(fewshot) if fewshot is not None and int(fewshot) >= 0 else (5 if spec.kind == GENERATE_NUMBER else 0)
    if spec.kind == GENERATE_NUMBER:
        new, context = int(max_new or 0) or spec.max_new_tokens, tokens * (1 + shots)
        return context * TOKEN_PASS_S + new * (TOKEN_GEN_S + GEN_CONTEXT_S * context)
    options = max(1, len(spec.rows()[0].choices))
    return tokens * (1 + shots) * TOKEN_PASS_S * options


def scored_s(dataset: str, method: str = "grad_x_act", ig_steps=20) -> float:
    """One locate sample: a forward and backward pass (integrated gradients: one per step, about)."""
    try:
        tokens = _prompt_tokens(dataset)
    except Exception:  # noqa: BLE001
        return 1.0
    steps = int(ig_steps) if method == "integrated_gradients" else 1
    return tokens * SCORED_TOKEN_S * steps


def _names(items) -> list[str]:
    return list(items) if isinstance(items, (list, tuple, set)) else [items] if items else []


def _located(state) -> int:
    return max(1, len(getattr(state, "located", {}) or {}))


# Work per kind, by the handlers' own parameter names (first-guess seconds before the kind's rate is measured).
def locate_work(datasets, n, k, method, ig_steps) -> float:
    return START_S + sum(int(n) * int(k) * scored_s(d, method, ig_steps) for d in _names(datasets))


def demo_work(scored) -> float:
    data = DEMO.dataset + ("_content" if str(scored).startswith("digits") else "")
    one = 2 * DEMO.n * scored_s(data) + DEMO.eval_n * (1 + 2 + 2 * DEMO.control_draws) * sample_s(data, DEMO.fewshot)
    return START_S + (2 * one if str(scored).startswith("both") else one)


def intervene_work(targets, n, draws, fewshot, max_new) -> float:
    return START_S + sum(int(n) * (2 + int(draws)) * sample_s(t, fewshot, max_new) for t in _names(targets))


def dose_work(targets, n, fewshot, max_new) -> float:
    first = _names(targets)[:1]
    return START_S + sum(int(n) * (1 + len(DEFAULT_FACTORS)) * sample_s(t, fewshot, max_new) for t in first)


def matrix_work(targets, n, fewshot, max_new, state) -> float:
    return START_S + sum(int(n) * (1 + 2 * _located(state)) * sample_s(t, fewshot, max_new) for t in _names(targets))


def steer_work(max_new) -> float:
    return START_S + 3 * int(max_new) * TOKEN_GEN_S * 4  # one prompt: no batch shares the step


def inspect_work(datasets, n) -> float:
    return START_S + sum(int(n) * _prompt_tokens(d) * TOKEN_PASS_S for d in _names(datasets))


def decouple_work(dataset, other, n, fractions, repeats, method, ig_steps) -> float:
    curves = len(str(fractions).replace(",", " ").split()) * int(repeats)
    return START_S + 2 * int(n) * (scored_s(dataset, method, ig_steps) + scored_s(other, method, ig_steps)) + curves


def specificity_work(eval_n, fewshot, max_new, state) -> float:
    sets = _located(state)
    datasets = [e.result.dataset for e in getattr(state, "located", {}).values()] or ["add1"]
    return START_S + sum(sets * 2 * int(eval_n) * sample_s(d, fewshot, max_new) for d in datasets)


def knowledge_work(relations, per_relation, parts) -> float:
    facts = max(1, len(relations or [])) * int(per_relation or 1)
    return 20.0 + 12.0 * facts * len(parts or []) + (240.0 if "editing" in (parts or []) else 0.0)


def null_work(draws) -> float:
    return 20.0 + 30.0 * int(draws)


HARNESS_SAMPLE_S = 0.5  # one lm-eval sample: its task's size and kind are unknown until the harness builds it


def harness_work(tasks, n, draws) -> float:
    """Every task at n samples (its limit), unmodified, intervened and under each control."""
    return START_S + len(parse_tasks(tasks)) * int(n) * (2 + int(draws)) * HARNESS_SAMPLE_S


WORK = {
    "locate": locate_work,
    "demo": demo_work,
    "intervene": intervene_work,
    "dose": dose_work,
    "matrix": matrix_work,
    "steer": steer_work,
    "inspect": inspect_work,
    "decouple": decouple_work,
    "specificity": specificity_work,
    "knowledge": knowledge_work,
    "null": null_work,
    "lm-eval": harness_work,
}


def expected(kind: str, **inputs) -> Expected | None:
    """The job's expected seconds here for these inputs; None where the inputs cannot be read (the handler then
    says what is wrong)."""
    try:
        work = float(WORK[kind](**inputs))
    except (KeyError, TypeError, ValueError, ParameterError):
        return None
    seconds, measured = LANES.rate(kind)
    return Expected(kind, work * seconds, measured, work)


def check(kind: str, **inputs) -> Expected | None:
    """The expected cost, refused (ParameterError) in a shared lab where it exceeds the operator's limit."""
    cost = expected(kind, **inputs)
    limit = shared_mode.job_limit_s()
    if cost is not None and limit is not None and cost.seconds > limit:
        raise ParameterError(
            f"This would take about {duration(cost.seconds)} here, over this shared lab's limit of "
            f"{duration(limit)} per job (set by its operator, {JOBS.env}). Use fewer samples or "
            "datasets, a task the model answers in a few tokens (add1), or run it with the CLI."
        )
    return cost


def describer(kind: str):
    """A handler for the line under a button: takes the kind's inputs by name (wiring.py finds them), gives describe."""
    work = WORK[kind]

    def show(*args) -> str:
        return describe(kind, **dict(zip(inspect.signature(work).parameters, args)))

    show.__signature__ = inspect.signature(work)
    show.__name__ = f"{kind}_estimate"
    return show


def describe(kind: str, **inputs) -> str:
    """The line under a heavy button: its expected time here, and whether a shared lab would refuse it."""
    cost = expected(kind, **inputs)
    if cost is None:
        return "*Expected time: shown once every box holds a valid value.*"
    limit = shared_mode.job_limit_s()
    over = (
        f" **Over this lab's limit of {duration(limit)}: it would be refused; use fewer samples.**"
        if limit is not None and cost.seconds > limit
        else ""
    )
    return f"*{cost.describe()}*{over}"

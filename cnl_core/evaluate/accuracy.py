"""Accuracy and gold-answer log-likelihood of a model on samples, with or without an intervention.

- numeric tasks (GSM8K, ASDiv, arithmetic): few-shot "Question: ...\\nAnswer:" prompts, batched
  greedy generation (model/generation.py), stop at "Question:", strict and flexible answer match
  (answers.py). `accuracy` is the flexible match.
- choice tasks (sentiment, yes/no, multiple choice): the choice with the highest log-likelihood.
- every task: the mean per-token log-likelihood of the gold answer, teacher-forced, which moves
  even where a small model's accuracy is near zero.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from .. import fields as F
from ..data.samples import CHOICE, GENERATE_NUMBER, DatasetSpec, Sample
from ..errors import Cancelled, ParameterError
from ..model.forward import SHARED_CONTEXT_LEAST, teacher_forced_logprob
from ..model.generation import decode, greedy_generate, parts_that_fit, prompts_context_length
from ..model.hooks import Edit, Intervention
from ..model.kv_cache import Prompted
from ..model.loading import LoadedModel
from ..model.memory import is_out_of_memory, release_cached_memory
from ..model.tokens import token_ids
from ..options import POSITIONS
from ..progress import Progress, check_cancel, report
from ..schema import file_form, in_file
from .answers import STOP_STRINGS, cut_at_stop, extract_flexible, extract_strict, is_correct


@dataclass(frozen=True)
class EvalConfig:
    num_fewshot: int | None = None  # None: 5 for numeric tasks (as lm-eval's GSM8K), 0 otherwise
    max_new_tokens: int | None = None  # None: the dataset's own (256 for GSM8K-like tasks, a few for short sums)
    max_context_tokens: int = 2048
    batch_size: int = 16
    bootstrap: int = 1000

    def __post_init__(self):
        F.FEWSHOT.typed(self.num_fewshot)
        F.MAX_NEW.typed(self.max_new_tokens)
        F.BATCH.typed(self.batch_size)
        F.BOOTSTRAP.typed(self.bootstrap)

    @classmethod
    def from_inputs(cls, fewshot=None, max_new_tokens=None, batch_size=None, bootstrap=None) -> EvalConfig:
        """From a form or the command line (the one conversion both use): numbers may be text; few-shot -1 and
        new tokens 0 (or empty, or None) mean the task's own; batch size and bootstrap None keep the defaults."""
        d = cls()
        # Integer fields give ints; fields.NumberField types every value as int | float.
        return cls(
            num_fewshot=cast("int | None", F.FEWSHOT.read(fewshot)),
            max_new_tokens=cast("int | None", F.MAX_NEW.read(max_new_tokens)),
            batch_size=d.batch_size if batch_size is None else cast(int, F.BATCH.check(batch_size)),
            bootstrap=d.bootstrap if bootstrap is None else cast(int, F.BOOTSTRAP.check(bootstrap)),
        )

    def new_tokens_for(self, dataset: DatasetSpec) -> int:
        return self.max_new_tokens or dataset.max_new_tokens

    def shots_for(self, kind: str) -> int:
        return self.num_fewshot if self.num_fewshot is not None else (5 if kind == GENERATE_NUMBER else 0)


@file_form(order=("mode", "factor", "positions", "n_neurons"))  # Intervention.describe()'s order
@dataclass(frozen=True)
class InterventionRecord:
    """What an evaluation changed (Intervention.describe()) and, where it ran random controls, how they were drawn.

    Results held it as a plain dict; `record["mode"]` and `record.get("factor")` still read it that way."""

    mode: str
    factor: float
    n_neurons: int
    positions: str = POSITIONS[0]  # token positions changed (files before the choice existed: all)
    control_avoids_located: bool | None = field(default=None, metadata=in_file(omit="none"))
    control_seeds: list[int] | None = field(default=None, metadata=in_file(omit="none"))
    control_neurons: list[list[list[int]]] | None = field(
        default=None, metadata=in_file(omit="none")
    )  # per draw: [layer, index] pairs

    @staticmethod
    def of(iv: Intervention, **controls: Any) -> InterventionRecord:
        """The record of an intervention (and of its controls: control_avoids_located, control_seeds...)."""
        d = iv.describe()
        return InterventionRecord(d["mode"], d["factor"], d["n_neurons"], d["positions"], **controls)

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, None) if key in self.__dataclass_fields__ else None
        return default if value is None else value


@dataclass
class SampleResult:
    id: str
    correct: bool | None  # None for tasks scored by log-likelihood only
    gold_loglik: float  # mean per-token log-probability of the gold answer
    output: str  # generated text, or the chosen option
    strict_correct: bool | None = None


def fewshot_prefix(shots: Sequence[Sample]) -> str:
    return "".join(f"{s.prompt}{s.answer}\n\n" for s in shots)


def evaluate_samples(
    lm: LoadedModel,
    dataset: DatasetSpec,
    samples: Sequence[Sample],
    shots: Sequence[Sample],
    cfg: EvalConfig,
    iv: Intervention | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> list[SampleResult]:
    """Score each sample under the intervention (None: the unmodified model)."""
    return evaluate_conditions(lm, dataset, samples, shots, cfg, [iv], progress=progress, cancel=cancel)[0]


def evaluate_conditions(
    lm: LoadedModel,
    dataset: DatasetSpec,
    samples: Sequence[Sample],
    shots: Sequence[Sample],
    cfg: EvalConfig,
    ivs: Sequence[Intervention | None],
    labels: Sequence[str] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> list[list[SampleResult]]:
    """Score each sample under each intervention (None: the unmodified model): results[condition][sample].

    Numeric tasks, per batch of samples: each condition's gold-answer pass also leaves the prompts' keys and
    values and each first answer token, so the prompts run once per condition, not twice; then the rows of
    every condition decode as one batch, each under its own condition's neurons (model/generation.decode), as
    many conditions at a time as MAX_DECODE_ROWS rows and the free memory allow (_conditions_at_once). The
    model's lock is held for each group of conditions that decode together. A batch that runs out of GPU memory
    in any pass runs again in halves, with half as many rows decoding together (its results are kept only once
    it is done; later batches keep both sizes); one sample decoded alone that does not fit is a ParameterError.
    Progress counts a sample once for its gold pass and once for its answer.
    """
    labels = list(labels or [f"condition {c + 1}" for c in range(len(ivs))])
    numeric = dataset.kind == GENERATE_NUMBER
    prefix, steps = fewshot_prefix(shots), 2 if numeric else 1
    total, done = steps * len(ivs) * len(samples), 0
    out: list[list[SampleResult]] = [[] for _ in ivs]
    rows_together = 0  # what the last batch decoded together (samples in its pass, for tasks without decoding)

    def stop_if_asked() -> None:
        check_cancel(cancel, len(out[-1]), len(samples), f"samples of {dataset.name}")

    def run_batch(start: int, chunk: Sequence[Sample]) -> list[list[SampleResult]]:
        """Every condition's results for one batch of samples (kept apart until the batch is done)."""
        nonlocal done, rows_together
        got: list[list[SampleResult]] = [[] for _ in ivs]
        per_decode = _conditions_at_once(lm, prefix, chunk, cfg, cfg.new_tokens_for(dataset)) if numeric else len(ivs)
        if numeric and rows_cap is not None:
            per_decode = max(1, min(per_decode, rows_cap // len(chunk)))
        rows_together = per_decode * len(chunk) if numeric else len(chunk)
        for first in range(0, len(ivs), per_decode):
            group = list(range(first, min(first + per_decode, len(ivs))))
            golds, parts = [], []
            with lm.lock:  # the conditions of a batch see the same weights
                for c in group:
                    stop_if_asked()
                    edit = Edit.of(lm, ivs[c])
                    if dataset.kind == CHOICE:  # the gold answer is one of the choices: one pass gives both
                        got[c].extend(
                            SampleResult(s.id, s.choices[pick] == s.target, g, s.choices[pick].strip())
                            for s, (pick, g) in zip(chunk, _choose(lm, edit, chunk, prefix, cfg))
                        )
                    else:
                        gold, prompted = _gold_loglik(lm, edit, chunk, prefix, cfg, numeric)
                        golds.append(gold)
                        parts.append(prompted)
                        if not numeric:
                            got[c].extend(SampleResult(s.id, None, g, "") for s, g in zip(chunk, gold))
                    done += len(chunk)
                    report(
                        progress,
                        done,
                        total,
                        f"{dataset.name} {labels[c]}: {start + len(chunk)}/{len(samples)}"
                        + (" (gold answers)" if numeric else ""),
                    )
                if not numeric:
                    continue
                stop_if_asked()
                report(
                    progress,
                    done,
                    total,
                    f"{dataset.name}: answering {len(chunk)} questions x {len(group)} condition(s)",
                )
                try:
                    texts = _answers(
                        lm, parts, [ivs[c] for c in group], prefix, chunk, cfg, cfg.new_tokens_for(dataset), cancel
                    )
                except Cancelled:
                    stop_if_asked()
                    raise
                parts.clear()  # their keys and values go before the next group measures the free memory
            for c, answers, gold in zip(group, texts, golds):
                got[c].extend(
                    SampleResult(
                        s.id,
                        is_correct(extract_flexible(text), s.target),
                        g,
                        text,
                        is_correct(extract_strict(text), s.target),
                    )
                    for s, text, g in zip(chunk, answers, gold)
                )
            done += len(group) * len(chunk)
            report(progress, done, total, f"{dataset.name}: answered {start + len(chunk)}/{len(samples)}")
        return got

    report(progress, 0, total, f"{dataset.name}: {len(samples)} samples, {len(ivs)} condition(s)")
    start, size = 0, cfg.batch_size
    rows_cap: int | None = None  # after running out of memory: the most rows that decode together
    while start < len(samples):
        chunk = samples[start : start + size]
        try:
            got = run_batch(start, chunk)
        except RuntimeError as exc:  # torch.OutOfMemoryError is one
            if not is_out_of_memory(exc):
                raise
            if rows_together <= 1:
                raise ParameterError(
                    f"Evaluating one sample of {dataset.name} ran out of memory. Load the model in 8-bit or 4-bit, "
                    "or lower the few-shot examples or the new tokens."
                ) from exc
            got = None
        if got is None:  # out of the except block: the failed batch's tensors are free to go
            size, rows_cap = max(1, min(size, len(chunk)) // 2), max(1, rows_together // 2)
            done = steps * len(ivs) * start  # this batch again, in smaller ones
            release_cached_memory()
            report(progress, done, total, f"{dataset.name}: out of memory; batches of {size} from here")
            continue
        for c, rows in enumerate(got):
            out[c].extend(rows)
        start += len(chunk)
    return out


def _conditions_at_once(lm: LoadedModel, prefix: str, chunk: Sequence[Sample], cfg: EvalConfig, new_tokens: int) -> int:
    """Conditions whose prompts are kept and decoded together: what MAX_DECODE_ROWS rows and the free memory allow
    (generation.parts_that_fit), from the token counts the gold pass will see: prompts cut from the left to the
    context limit, the context they share (as forward.batch_context_length finds it) and the longest answer."""
    prompts = [
        p[-cfg.max_context_tokens :]
        for p in token_ids(lm.tokenizer, [prefix + s.prompt for s in chunk], add_special_tokens=True)
    ]
    shared = prompts_context_length(prompts) if len(prompts) > 1 else 0
    shared = shared if shared >= SHARED_CONTEXT_LEAST else 0
    answer = max(map(len, token_ids(lm.tokenizer, [s.answer for s in chunk], add_special_tokens=False)))
    return parts_that_fit(lm, len(chunk), shared, max(map(len, prompts)) - shared, answer, new_tokens)


def _gold_loglik(
    lm: LoadedModel, edit: Edit, chunk: Sequence[Sample], prefix: str, cfg: EvalConfig, keep_prompts: bool = False
) -> tuple[list[float], Prompted | None]:
    tf = teacher_forced_logprob(
        lm,
        edit,
        [prefix + s.prompt for s in chunk],
        [s.answer for s in chunk],
        cfg.max_context_tokens,
        keep_prompts=keep_prompts,
    )
    return (tf.total / tf.count.clamp(min=1)).tolist(), tf.prompted


def _answers(
    lm: LoadedModel,
    parts: list[Prompted | None],
    ivs: Sequence[Intervention | None],
    prefix: str,
    chunk: Sequence[Sample],
    cfg: EvalConfig,
    max_new_tokens: int,
    cancel: threading.Event | None = None,
) -> list[list[str]]:
    """Greedy answers per condition, cut at the first stop string: decoded from the gold passes' prompts where
    they could be kept, else generated again, one condition at a time."""
    ready = [p for p in parts if p is not None]
    if len(ready) == len(parts):
        with lm.lock:
            new = decode(lm, ready, max_new_tokens, STOP_STRINGS, ivs, cancel=cancel)
        return [[cut_at_stop(t) for t in lm.tokenizer.batch_decode(rows, skip_special_tokens=True)] for rows in new]
    return [_generate(lm, iv, prefix, [s.prompt for s in chunk], cfg, max_new_tokens) for iv in ivs]


def _choose(
    lm: LoadedModel, edit: Edit, chunk: Sequence[Sample], prefix: str, cfg: EvalConfig
) -> list[tuple[int, float]]:
    """(index of the most likely choice, mean per-token log-prob of the gold choice) per sample."""
    prompts = [prefix + s.prompt for s in chunk for _ in s.choices]
    options = [c for s in chunk for c in s.choices]
    tf = teacher_forced_logprob(lm, edit, prompts, options, cfg.max_context_tokens)
    total, count = tf.total, tf.count
    out, pos = [], 0
    for s in chunk:
        part, gold = total[pos : pos + len(s.choices)], pos + s.choices.index(s.target)
        out.append((int(part.argmax()), float(total[gold] / count[gold].clamp(min=1))))
        pos += len(s.choices)
    return out


def _generate(
    lm: LoadedModel, iv: Intervention | None, prefix: str, suffixes: list[str], cfg: EvalConfig, max_new_tokens: int
) -> list[str]:
    """Greedy answers for prefix + each suffix under iv, cut at the first stop string."""
    new = greedy_generate(lm, [prefix + s for s in suffixes], max_new_tokens, STOP_STRINGS, cfg.max_context_tokens, iv)
    return [cut_at_stop(t) for t in lm.tokenizer.batch_decode(new, skip_special_tokens=True)]

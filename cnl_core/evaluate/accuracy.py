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
from dataclasses import asdict, dataclass
from typing import Sequence

from .. import fields as F
from ..data.samples import CHOICE, GENERATE_NUMBER, DatasetSpec, Sample
from ..errors import ParameterError
from ..model.forward import teacher_forced_logprob
from ..model.generation import greedy_generate
from ..model.hooks import Intervention, InterventionHandle, intervene
from ..model.loading import LoadedModel
from ..progress import Progress, check_cancel, report
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

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> "EvalConfig":
        fields = {k: data[k] for k in ("num_fewshot", "max_new_tokens", "max_context_tokens", "batch_size", "bootstrap")
                  if k in data}
        try:
            return EvalConfig(**fields)
        except TypeError as exc:
            raise ParameterError(f"The evaluation settings are malformed: {exc}.") from exc

    def new_tokens_for(self, dataset: DatasetSpec) -> int:
        return self.max_new_tokens or dataset.max_new_tokens

    def shots_for(self, kind: str) -> int:
        return self.num_fewshot if self.num_fewshot is not None else (5 if kind == GENERATE_NUMBER else 0)


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
    lm: LoadedModel, dataset: DatasetSpec, samples: Sequence[Sample], shots: Sequence[Sample], cfg: EvalConfig,
    iv: Intervention | None = None, progress: Progress | None = None, cancel: threading.Event | None = None,
) -> list[SampleResult]:
    """Score each sample under the intervention (None: the unmodified model)."""
    prefix = fewshot_prefix(shots)
    out: list[SampleResult] = []
    report(progress, 0, len(samples), f"{dataset.name}: evaluating {len(samples)} samples")
    with intervene(lm, iv) as handle:
        for start in range(0, len(samples), cfg.batch_size):
            check_cancel(cancel, len(out), len(samples), f"samples of {dataset.name}")
            chunk = samples[start : start + cfg.batch_size]
            if dataset.kind == CHOICE:  # the gold answer is one of the choices: one pass gives both
                for s, (pick, g) in zip(chunk, _choose(lm, handle, chunk, prefix, cfg)):
                    out.append(SampleResult(s.id, s.choices[pick] == s.target, g, s.choices[pick].strip()))
                continue
            gold = _gold_loglik(lm, handle, chunk, prefix, cfg)
            if dataset.kind == GENERATE_NUMBER:
                texts = _generate(lm, handle, prefix, [s.prompt for s in chunk], cfg, cfg.new_tokens_for(dataset))
                for s, text, g in zip(chunk, texts, gold):
                    out.append(SampleResult(s.id, is_correct(extract_flexible(text), s.target), g, text,
                                            is_correct(extract_strict(text), s.target)))
            else:
                out.extend(SampleResult(s.id, None, g, "") for s, g in zip(chunk, gold))
            report(progress, len(out), len(samples), f"{dataset.name}: evaluated {len(out)}/{len(samples)}")
    return out


def _gold_loglik(lm, handle, chunk: Sequence[Sample], prefix: str, cfg: EvalConfig) -> list[float]:
    total, count = teacher_forced_logprob(lm, handle, [prefix + s.prompt for s in chunk], [s.answer for s in chunk],
                                          cfg.max_context_tokens)
    return (total / count.clamp(min=1)).tolist()


def _choose(lm, handle, chunk: Sequence[Sample], prefix: str, cfg: EvalConfig) -> list[tuple[int, float]]:
    """(index of the most likely choice, mean per-token log-prob of the gold choice) per sample."""
    prompts = [prefix + s.prompt for s in chunk for _ in s.choices]
    options = [c for s in chunk for c in s.choices]
    total, count = teacher_forced_logprob(lm, handle, prompts, options, cfg.max_context_tokens)
    out, pos = [], 0
    for s in chunk:
        part, gold = total[pos : pos + len(s.choices)], pos + s.choices.index(s.target)
        out.append((int(part.argmax()), float(total[gold] / count[gold].clamp(min=1))))
        pos += len(s.choices)
    return out


def _generate(lm: LoadedModel, handle: InterventionHandle, prefix: str, suffixes: list[str], cfg: EvalConfig,
              max_new_tokens: int) -> list[str]:
    """Greedy answers for prefix + each suffix, cut at the first stop string."""
    new = greedy_generate(lm, [prefix + s for s in suffixes], max_new_tokens, STOP_STRINGS,
                          cfg.max_context_tokens, handle)
    return [cut_at_stop(t) for t in lm.tokenizer.batch_decode(new, skip_special_tokens=True)]

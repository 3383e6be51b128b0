"""Accuracy and gold-answer log-likelihood of a model, with or without an intervention.

- numeric tasks (GSM8K, ASDiv, arithmetic): few-shot "Question: ...\\nAnswer:" prompts, batched
  greedy generation (generation.py), stop at "Question:", strict and flexible
  answer match (answers.py). `accuracy` is the flexible match.
- choice tasks (sentiment, yes/no, multiple choice): the choice with the highest log-likelihood.
- every task: the mean per-token log-likelihood of the gold answer, teacher-forced, which moves
  even where a small model's accuracy is near zero.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .answers import STOP_STRINGS, cut_at_stop, extract_flexible, extract_strict, is_correct
from .collect import Cancelled
from .datasets import CHOICE, GENERATE_NUMBER, DatasetSpec, Sample
from .errors import ParameterError
from .generation import greedy_generate, prefix_cache
from .interventions import Intervention, InterventionHandle, intervene
from .models import LoadedModel
from .scoring import EncodedBatch, ScoreConfig, encode_teacher_forced, gold_logprob, pass_groups


@dataclass(frozen=True)
class EvalConfig:
    num_fewshot: int | None = None  # None: 5 for numeric tasks (as lm-eval's GSM8K), 0 otherwise
    max_new_tokens: int = 256
    max_context_tokens: int = 2048
    batch_size: int = 8
    bootstrap: int = 1000

    def __post_init__(self):
        if self.num_fewshot is not None and not 0 <= self.num_fewshot <= 16:
            raise ParameterError("Few-shot examples must be between 0 and 16.")
        if not 1 <= self.max_new_tokens <= 2048:
            raise ParameterError("max_new_tokens must be between 1 and 2048.")
        if self.batch_size < 1 or self.bootstrap < 0:
            raise ParameterError("Batch size must be >= 1 and bootstrap draws >= 0.")

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


Progress = Callable[[int, int, str], None]


def evaluate_samples(
    lm: LoadedModel, dataset: DatasetSpec, samples: Sequence[Sample], shots: Sequence[Sample], cfg: EvalConfig,
    iv: Intervention | None = None, progress: Progress | None = None, cancel: threading.Event | None = None,
) -> list[SampleResult]:
    """Score each sample under the intervention (None: the unmodified model)."""
    prefix = fewshot_prefix(shots)
    out: list[SampleResult] = []
    with intervene(lm, iv) as handle:
        for start in range(0, len(samples), cfg.batch_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled("Evaluation cancelled.")
            chunk = samples[start : start + cfg.batch_size]
            if dataset.kind == CHOICE:  # the gold answer is one of the choices: one pass gives both
                for s, (pick, g) in zip(chunk, _choose(lm, handle, chunk, prefix, cfg)):
                    out.append(SampleResult(s.id, s.choices[pick] == s.target, g, s.choices[pick].strip()))
                continue
            gold = _gold_loglik(lm, handle, chunk, prefix, cfg)
            if dataset.kind == GENERATE_NUMBER:
                texts = _generate(lm, handle, prefix, [s.prompt for s in chunk], cfg)
                for s, text, g in zip(chunk, texts, gold):
                    out.append(SampleResult(s.id, is_correct(extract_flexible(text), s.target), g, text,
                                            is_correct(extract_strict(text), s.target)))
            else:
                out.extend(SampleResult(s.id, None, g, "") for s, g in zip(chunk, gold))
            if progress:
                progress(len(out), len(samples), f"evaluated {len(out)}/{len(samples)}")
    return out


def _teacher_forced(lm: LoadedModel, handle: InterventionHandle, prompts: list[str], answers: list[str],
                    cfg: EvalConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum log-prob of each answer after its prompt, and its token count."""
    score_cfg = ScoreConfig(max_prompt_tokens=cfg.max_context_tokens, max_answer_tokens=512)
    rows = [Sample(str(i), p, a, a) for i, (p, a) in enumerate(zip(prompts, answers))]
    batch = encode_teacher_forced(lm.tokenizer, rows, score_cfg, lm.input_device)
    shared = _shared_context(batch)
    try:
        with torch.no_grad():
            cache = prefix_cache(lm, batch.input_ids[0, :shared].tolist(), handle) if shared else None
            tail = batch.after(shared)
            groups = pass_groups(lm, tail.attention_mask.sum(-1).tolist())
            total = torch.empty(len(rows))
            for idx in groups:
                part, rows_cache = tail.select(idx), None
                if cache is not None:
                    rows_cache = copy.deepcopy(cache) if len(groups) > 1 else cache
                    rows_cache.batch_repeat_interleave(len(idx))
                handle.answer_mask = part.answer_mask
                total[idx] = gold_logprob(lm, part, cache=rows_cache).cpu()
    finally:
        handle.answer_mask = None
    return total, batch.answer_mask.sum(-1).cpu()


def _shared_context(batch: EncodedBatch, least: int = 16) -> int:
    """Leading columns that every row has, token for token, and where no position predicts an answer.

    The few-shot prefix is the same for every prompt; its KV cache is computed once and shared. Fewer
    than `least` shared tokens, or a single row, are not worth the extra pass.
    """
    ids = batch.input_ids
    if ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(0) & batch.attention_mask.bool().all(0) & ~batch.answer_mask.any(0)
    n = int(same.int().cumprod(0).sum())
    return n if n >= least else 0


def _gold_loglik(lm, handle, chunk: Sequence[Sample], prefix: str, cfg: EvalConfig) -> list[float]:
    total, count = _teacher_forced(lm, handle, [prefix + s.prompt for s in chunk], [s.answer for s in chunk], cfg)
    return (total / count.clamp(min=1)).tolist()


def _choose(lm, handle, chunk: Sequence[Sample], prefix: str, cfg: EvalConfig) -> list[tuple[int, float]]:
    """(index of the most likely choice, mean per-token log-prob of the gold choice) per sample."""
    prompts = [prefix + s.prompt for s in chunk for _ in s.choices]
    options = [c for s in chunk for c in s.choices]
    total, count = _teacher_forced(lm, handle, prompts, options, cfg)
    out, pos = [], 0
    for s in chunk:
        part, gold = total[pos : pos + len(s.choices)], pos + s.choices.index(s.target)
        out.append((int(part.argmax()), float(total[gold] / count[gold].clamp(min=1))))
        pos += len(s.choices)
    return out


def _generate(lm: LoadedModel, handle: InterventionHandle, prefix: str, suffixes: list[str], cfg: EvalConfig) -> list[str]:
    """Greedy answers for prefix + each suffix, cut at the first stop string."""
    new = greedy_generate(lm, [prefix + s for s in suffixes], cfg.max_new_tokens, STOP_STRINGS,
                          cfg.max_context_tokens, handle)
    return [cut_at_stop(t) for t in lm.tokenizer.batch_decode(new, skip_special_tokens=True)]


# ---------------------------------------------------------------- statistics


def bootstrap_ci(values: np.ndarray, draws: int, seed: int, level: float = 0.95) -> list[float] | None:
    """Percentile CI of the mean, resampling samples (rows of values; paired when values are differences)."""
    values = np.asarray(values, dtype=float)
    if draws == 0 or values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(draws, len(values)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def summarize(results: Sequence[SampleResult], draws: int, seed: int) -> dict:
    acc = np.array([r.correct for r in results if r.correct is not None], dtype=float)
    gold = np.array([r.gold_loglik for r in results])
    strict = np.array([r.strict_correct for r in results if r.strict_correct is not None], dtype=float)
    return {
        "accuracy": float(acc.mean()) if acc.size else None,
        "accuracy_ci": bootstrap_ci(acc, draws, seed) if acc.size else None,
        "strict_accuracy": float(strict.mean()) if strict.size else None,
        "gold_loglik": float(gold.mean()),
        "gold_loglik_ci": bootstrap_ci(gold, draws, seed),
    }


def per_sample_metrics(results: Sequence[SampleResult]) -> dict[str, np.ndarray]:
    return {
        "accuracy": np.array([np.nan if r.correct is None else float(r.correct) for r in results]),
        "gold_loglik": np.array([r.gold_loglik for r in results]),
    }


def deltas(after: dict[str, np.ndarray], before: dict[str, np.ndarray], draws: int, seed: int) -> dict:
    """Paired differences (after - before) with bootstrap CIs."""
    out = {}
    for metric in ("accuracy", "gold_loglik"):
        diff = after[metric] - before[metric]
        if np.isnan(diff).all():
            out[f"delta_{metric}"], out[f"delta_{metric}_ci"] = None, None
            continue
        out[f"delta_{metric}"] = float(np.nanmean(diff))
        out[f"delta_{metric}_ci"] = bootstrap_ci(diff[~np.isnan(diff)], draws, seed)
    return out


def eval_config_dict(cfg: EvalConfig) -> dict:
    return asdict(cfg)

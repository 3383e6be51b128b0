"""Summaries of per-sample results: means with percentile-bootstrap intervals, paired differences.

A summary's file form has its differences (`deltas`) flattened into it (declared on the field, schema.py), so a
chart reads `delta_accuracy` beside `accuracy`; earlier files wrote it so too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import ParameterError
from ..options import METRICS
from ..schema import in_file
from .accuracy import SampleResult

CI = list[float] | None


def bootstrap_ci(values: np.ndarray, draws: int, seed: int, level: float = 0.95) -> CI:
    """Percentile CI of the mean, resampling samples (rows of values; paired when values are differences)."""
    values = np.asarray(values, dtype=float)
    if draws == 0 or values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(draws, len(values)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def two_level_bootstrap_ci(matrix: np.ndarray, draws: int, seed: int, level: float = 0.95) -> CI:
    """Percentile CI of the grand mean of [control draws, samples], resampling draws and samples both.

    The control's uncertainty has two sources: which random neurons were drawn, and which samples were
    tested. Resampling only samples (of the mean over draws) hides the first; this keeps both.
    """
    matrix = np.asarray(matrix, dtype=float)
    if draws == 0 or matrix.size == 0:
        return None
    rng = np.random.default_rng(seed)
    k, n = matrix.shape
    means = np.empty(draws)
    for b in range(draws):
        means[b] = matrix[rng.integers(0, k, size=k)][:, rng.integers(0, n, size=n)].mean()
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


@dataclass
class Deltas:
    """Paired differences (after - before) on the same samples, with bootstrap CIs."""

    delta_accuracy: float | None = None
    delta_accuracy_ci: CI = None
    delta_gold_loglik: float | None = None
    delta_gold_loglik_ci: CI = None

    def __post_init__(self):
        _check_intervals(self)


@dataclass
class Summary:
    """One condition on one dataset: accuracy (None where a task has none) and gold log-likelihood per token.

    Its file form has the differences (`deltas`) flattened into it. Files are strict JSON, where a number that is
    not finite is null: a gold log-likelihood or an interval end written as null reads back as NaN (a harness
    task's gold log-likelihood is not measured)."""

    gold_loglik: float
    gold_loglik_ci: CI = None
    accuracy: float | None = None
    accuracy_ci: CI = None
    strict_accuracy: float | None = None
    # against the unmodified model, when this is a changed condition; its keys follow the summary's own in the file
    deltas: Deltas | None = field(default=None, metadata=in_file(flatten=True))

    def __post_init__(self):
        _check_intervals(self)


def _check_intervals(numbers: Summary | Deltas) -> None:
    """Every interval is [low, high] (a file could hold any list)."""
    for f in fields(numbers):
        ci = getattr(numbers, f.name) if f.name.endswith("_ci") else None
        if ci is not None and len(ci) != 2:
            raise ParameterError(f"{f.name}: an interval is [low, high], not {len(ci)} numbers.")


@dataclass
class ControlSummary(Summary):
    """The random controls: mean over draws, the spread between draws, and each draw's numbers."""

    accuracy_std: float | None = None
    gold_loglik_std: float | None = None
    draws: list[dict] = field(default_factory=list)


def per_sample_metrics(results: Sequence[SampleResult]) -> dict[str, np.ndarray]:
    """Every metric (options.METRICS) per sample; NaN where a sample has no accuracy (a log-likelihood task)."""
    values = {
        "accuracy": [np.nan if r.correct is None else float(r.correct) for r in results],
        "gold_loglik": [r.gold_loglik for r in results],
    }
    return {metric: np.array(values[metric]) for metric in METRICS}


def summarize(results: Sequence[SampleResult], draws: int, seed: int, deltas: Deltas | None = None) -> Summary:
    acc = np.array([r.correct for r in results if r.correct is not None], dtype=float)
    gold = np.array([r.gold_loglik for r in results])
    strict = np.array([r.strict_correct for r in results if r.strict_correct is not None], dtype=float)
    return Summary(
        accuracy=float(acc.mean()) if acc.size else None,
        accuracy_ci=bootstrap_ci(acc, draws, seed) if acc.size else None,
        strict_accuracy=float(strict.mean()) if strict.size else None,
        gold_loglik=float(gold.mean()),
        gold_loglik_ci=bootstrap_ci(gold, draws, seed),
        deltas=deltas,
    )


def paired_deltas(after: dict[str, np.ndarray], before: dict[str, np.ndarray], draws: int, seed: int) -> Deltas:
    """Paired differences (after - before) with bootstrap CIs."""
    out = Deltas()
    for metric in METRICS:
        diff = after[metric] - before[metric]
        if np.isnan(diff).all():
            continue
        setattr(out, f"delta_{metric}", float(np.nanmean(diff)))
        setattr(out, f"delta_{metric}_ci", bootstrap_ci(diff[~np.isnan(diff)], draws, seed))
    return out


def compared(
    after: Sequence[SampleResult], before: Sequence[SampleResult], draws: int, seed: int, ci_draws: int | None = None
) -> Summary:
    """A changed condition's summary with its paired differences from the unmodified model."""
    d = paired_deltas(per_sample_metrics(after), per_sample_metrics(before), draws, seed)
    return summarize(after, draws if ci_draws is None else ci_draws, seed, deltas=d)


def control_summary(
    draws: Sequence[Sequence[SampleResult]], before: Sequence[SampleResult], boot: int, seed: int
) -> ControlSummary | None:
    """Mean and spread over the control draws; CIs resample both the draws and the samples."""
    if not draws:
        return None
    per_draw = [summarize(d, 0, seed) for d in draws]
    mats = {m: np.stack([per_sample_metrics(d)[m] for d in draws]) for m in METRICS}  # [draws, samples]
    base = per_sample_metrics(before)
    out: dict = {"draws": [{"accuracy": d.accuracy, "gold_loglik": d.gold_loglik} for d in per_draw]}
    deltas = Deltas()
    for metric in METRICS:
        vals = [getattr(d, metric) for d in per_draw if getattr(d, metric) is not None]
        out[metric] = float(np.mean(vals)) if vals else None
        out[f"{metric}_std"] = float(np.std(vals)) if vals else None
        mat = mats[metric]
        if np.isnan(mat).all():
            out[f"{metric}_ci"] = None
            continue
        keep = ~np.isnan(mat).any(0)
        out[f"{metric}_ci"] = two_level_bootstrap_ci(mat[:, keep], boot, seed)
        diff = mat[:, keep] - base[metric][keep]
        setattr(deltas, f"delta_{metric}", float(diff.mean()))
        setattr(deltas, f"delta_{metric}_ci", two_level_bootstrap_ci(diff, boot, seed))
    return ControlSummary(**out, deltas=deltas)

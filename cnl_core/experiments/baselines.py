"""Can the loaded model do this task at all? Each dataset's unmodified accuracy, measured once and stored.

Why: a workshop's students follow the defaults. With GSM8K preselected, a 135M model scoring 0 on it was located
("mostly noise") and intervened on for 11 minutes: zeroing neurons cannot lower an accuracy of 0. The Data tab
now shows each dataset's measured baseline for the loaded model and marks the ones it cannot do. A baseline is an
evaluation of the unmodified model (the Intervene tab's first row, without interventions) on `BASELINE.n`
held-out samples at the task's own few-shot and generation length; it is stored in the result cache by the
model's weights, the dataset's content and the settings, so it is computed once per model and dataset, ever,
and read by anyone without the model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from ..data.samples import CHOICE, LOGLIK, get_dataset
from ..evaluate.accuracy import EvalConfig
from ..model.loading import LoadedModel
from ..options import BASELINE
from ..progress import Progress
from ..serialize import to_data
from .evaluate import run_evaluate
from .requests import NO_JOB, Job, canonical
from .result_cache import RESULTS, ResultCache, data_identity, model_identity

KIND = "baseline"


@dataclass
class Baseline:
    """The unmodified model's accuracy on one dataset, with what it was measured with."""

    model: str
    dataset: str
    task_kind: str
    n: int
    fewshot: int
    max_new_tokens: int
    seed: int
    accuracy: float | None  # None: the task is scored by log-likelihood only
    accuracy_ci: list[float] | None
    chance: float
    gold_loglik: float

    @property
    def verdict(self) -> str:
        """'can do', 'weak', 'cannot do', or 'no accuracy' (a log-likelihood-only task)."""
        if self.accuracy is None:
            return "no accuracy"
        above = self.accuracy - self.chance
        return "can do" if above >= BASELINE.can_do_margin else "weak" if above >= BASELINE.weak_margin else "cannot do"

    def reading(self) -> str:
        """One line: the number and what it means."""
        if self.accuracy is None:
            return (
                f"{self.dataset}: no accuracy (scored by the gold answer's log-likelihood only, "
                f"{self.gold_loglik:.2f} per token); interventions are read on that."
            )
        low, high = self.accuracy_ci or (self.accuracy, self.accuracy)
        chance = f", chance {self.chance:.0%}" if self.chance else ""
        return (
            f"{self.dataset}: {self.accuracy:.0%} [{low:.0%}, {high:.0%}]{chance} on {self.n} held-out samples, "
            f"{self.fewshot}-shot: **{self.verdict}**"
        )


def chance_level(dataset: str) -> float:
    """The accuracy of guessing: 1 / options for a choice task (mean over rows), 0 for a generated number."""
    spec = get_dataset(dataset)
    if spec.kind != CHOICE:
        return 0.0
    rows = spec.rows()
    return sum(1 / max(1, len(s.choices)) for s in rows) / len(rows)


@dataclass(frozen=True)
class BaselineRequest:
    """A dataset's baseline (requests.py): the unmodified model on BASELINE.n held-out samples at the task's own
    settings. Its only input is the dataset: the sizes and settings are the library's, and in the key."""

    kind: ClassVar[str] = KIND
    result_type: ClassVar[type] = Baseline
    dataset: str

    def key(self) -> dict[str, Any]:
        return canonical(
            {
                "dataset": data_identity(self.dataset),
                "n": BASELINE.n,
                "seed": BASELINE.seed,
                "eval": to_data(EvalConfig()),
            }
        )

    def run(self, lm: LoadedModel, job: Job = NO_JOB) -> Baseline:
        return measure_baseline(lm, self.dataset, progress=job.report, cancel=job.cancel)


def _request(dataset: str | BaselineRequest) -> BaselineRequest:
    return dataset if isinstance(dataset, BaselineRequest) else BaselineRequest(dataset)


def baseline_params(lm: LoadedModel, dataset: str | BaselineRequest) -> dict:
    """What a baseline depends on: the model's weights and precision, the dataset's content, the settings (the
    key every stored baseline was kept under: the request's key with the model)."""
    return {"model": model_identity(lm), **_request(dataset).key()}


def measure_baseline(
    lm: LoadedModel, dataset: str, *, progress: Progress | None = None, cancel: threading.Event | None = None
) -> Baseline:
    """Evaluate the unmodified model on BASELINE.n held-out samples at the task's own settings."""
    spec, cfg = get_dataset(dataset), EvalConfig()
    n = min(BASELINE.n, len(spec.rows()) - cfg.shots_for(spec.kind))
    ev = run_evaluate(
        lm, dataset, n, BASELINE.seed, None, control_draws=0, cfg=cfg, n_examples=0, progress=progress, cancel=cancel
    )
    b = ev.baseline
    return Baseline(
        model=lm.spec.name,
        dataset=dataset,
        task_kind=spec.kind,
        n=ev.n,
        fewshot=cfg.shots_for(spec.kind),
        max_new_tokens=cfg.new_tokens_for(spec),
        seed=BASELINE.seed,
        accuracy=None if spec.kind == LOGLIK else b.accuracy,
        accuracy_ci=None if b.accuracy_ci is None or spec.kind == LOGLIK else list(b.accuracy_ci),
        chance=chance_level(dataset),
        gold_loglik=b.gold_loglik,
    )


def stored_baseline(lm: LoadedModel, dataset: str | BaselineRequest, cache: ResultCache = RESULTS) -> Baseline | None:
    """The stored baseline, or None where it was never measured for this model and dataset (no model call)."""
    return cache.read(KIND, baseline_params(lm, dataset), Baseline)


def baseline(
    lm: LoadedModel,
    dataset: str | BaselineRequest,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    cache: ResultCache = RESULTS,
) -> Baseline:
    """The stored baseline, or measured now and stored (once per model and dataset, shared while it runs)."""
    request = _request(dataset)
    return cache.serve(
        KIND, baseline_params(lm, request), Baseline, lambda: request.run(lm, Job(progress, cancel)), cancel
    ).value

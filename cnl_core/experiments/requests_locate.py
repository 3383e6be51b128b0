"""The requests of locating and of the studies over located sets: locate, specificity, the empirical null (see
requests.py for why requests exist; a stored baseline's request is in baselines.py, beside the cache it is kept in).

Each holds every input its result depends on, checked by its field (fields.py); `key()` is the result cache's
key (the model added by the caller), `run(lm, job)` the one library call. Settings no number depends on (a batch
size, whether the score cache is used) are fields but not in the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import fields as F
from ..errors import ParameterError
from ..evaluate.accuracy import EvalConfig
from ..locate.scorers import ScoreConfig
from ..locate.select import LocateParams
from ..model.loading import LoadedModel
from ..options import DEFAULTS, INTERVENTION_MODES, METRICS
from ..serialize import to_data
from .empirical_null import NULL_KINDS, EmpiricalNull, empirical_null
from .locate import LocateRun, run_locate
from .locate_result import LocateResult
from .requests import NO_JOB, Job, canonical
from .result_cache import data_identity, neurons_identity
from .specificity import SpecificityResult, run_specificity


def _batch(size: int | None) -> None:
    if size is not None:
        F.BATCH.typed(size)


@dataclass(frozen=True)
class LocateRequest:
    """Locate: score `k` disjoint splits of `n` samples of one dataset (through the score cache) and select each
    split's neurons; the run keeps its scores, so new thresholds need no model call (`LocateRun.result`)."""

    kind: ClassVar[str] = "locate"
    result_type: ClassVar[type] = LocateRun
    dataset: str
    n: int = DEFAULTS.n
    k: int = DEFAULTS.splits
    seed: int = DEFAULTS.seed
    score: ScoreConfig = field(default_factory=ScoreConfig)
    params: LocateParams = field(default_factory=LocateParams)
    batch_size: int | None = None  # None: fitted to free memory; no number depends on it
    use_cache: bool = True  # the score cache: read and filled, or left alone; no number depends on it

    def __post_init__(self) -> None:
        for spec, value in ((F.N_SPLIT, self.n), (F.SPLITS, self.k), (F.SEED, self.seed)):
            spec.typed(value)
        _batch(self.batch_size)

    def key(self) -> dict[str, Any]:
        return canonical(
            {
                "dataset": data_identity(self.dataset),
                "n": self.n,
                "k": self.k,
                "seed": self.seed,
                "score": to_data(self.score),
                "params": self.params.as_dict(),
            }
        )

    def run(self, lm: LoadedModel, job: Job = NO_JOB, **launch: Any) -> LocateRun:
        """`launch`: the CLI's torchrun helper (run_locate's `launch=`), where there is one."""
        return run_locate(
            lm,
            self.dataset,
            self.n,
            self.k,
            self.seed,
            self.score,
            self.params,
            batch_size=self.batch_size,
            use_cache=self.use_cache,
            progress=job.report,
            cancel=job.cancel,
            **launch,
        )


@dataclass(frozen=True)
class SpecificityRequest:
    """Specificity: each located set's specific neurons (and the ones all sets share) intervened on, tested on every
    set's dataset (the cross-dataset matrix); the specificity index per dataset."""

    kind: ClassVar[str] = "specificity"
    result_type: ClassVar[type] = SpecificityResult
    located: Mapping[str, LocateResult]
    n: int = DEFAULTS.eval_n
    seed: int = DEFAULTS.seed
    mode: str = INTERVENTION_MODES[0]
    factor: float = DEFAULTS.amplify_factor
    metric: str = METRICS[0]
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        for spec, value in ((F.EVAL_N, self.n), (F.SEED, self.seed), (F.FACTOR, self.factor)):
            spec.typed(value)
        if self.mode not in INTERVENTION_MODES:
            raise ParameterError(f"The intervention must be one of {', '.join(INTERVENTION_MODES)}.")
        if self.metric not in METRICS:
            raise ParameterError(f"The specificity metric must be one of {', '.join(METRICS)}.")
        object.__setattr__(self, "located", dict(self.located))

    def key(self) -> dict[str, Any]:
        located = {
            name: {
                "dataset": data_identity(r.dataset),
                "neurons": neurons_identity(r.neurons),
                "located_ids": list(r.located_sample_ids()),
            }
            for name, r in self.located.items()
        }
        return canonical(
            {
                "located": located,
                "n": self.n,
                "seed": self.seed,
                "mode": self.mode,
                "factor": self.factor,
                "metric": self.metric,
                "eval": to_data(self.eval),
            }
        )

    def run(self, lm: LoadedModel, job: Job = NO_JOB) -> SpecificityResult:
        return run_specificity(
            lm,
            self.located,
            self.n,
            self.seed,
            mode=self.mode,
            factor=self.factor,
            metric=self.metric,
            cfg=self.eval,
            progress=job.report,
            cancel=job.cancel,
        )


@dataclass(frozen=True)
class NullRequest:
    """The empirical null: IoU of sets located on `draws` subsamples of the dataset and of an unrelated one
    (`null` "unrelated"), or of the dataset with its answers shuffled ("shuffled"; `other` is not read)."""

    kind: ClassVar[str] = "null"
    result_type: ClassVar[type] = EmpiricalNull
    dataset: str
    null: str = NULL_KINDS[0]
    other: str | None = DEFAULTS.null_other
    n: int = DEFAULTS.n
    draws: int = DEFAULTS.null_draws
    seed: int = DEFAULTS.seed
    score: ScoreConfig = field(default_factory=ScoreConfig)
    params: LocateParams = field(default_factory=LocateParams)
    batch_size: int | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        for spec, value in ((F.N_SPLIT, self.n), (F.NULL_DRAWS, self.draws), (F.SEED, self.seed)):
            spec.typed(value)
        _batch(self.batch_size)
        if self.null not in NULL_KINDS:
            raise ParameterError(f"The empirical null must be one of {', '.join(NULL_KINDS)}.")
        if self.null == "shuffled":  # the shuffled null reads no other dataset: one key for any `other`
            object.__setattr__(self, "other", None)

    def key(self) -> dict[str, Any]:
        return canonical(
            {
                "dataset": data_identity(self.dataset),
                "null": self.null,
                "other": None if self.other is None else data_identity(self.other),
                "n": self.n,
                "draws": self.draws,
                "seed": self.seed,
                "score": to_data(self.score),
                "params": self.params.as_dict(),
            }
        )

    def run(self, lm: LoadedModel, job: Job = NO_JOB) -> EmpiricalNull:
        return empirical_null(
            lm,
            self.dataset,
            self.null,
            self.other,
            self.n,
            self.draws,
            self.seed,
            self.score,
            self.params,
            batch_size=self.batch_size,
            use_cache=self.use_cache,
            progress=job.report,
            cancel=job.cancel,
        )

"""One typed request per experiment: what to run, checked once, and the key its result is stored under.

Why: the dashboard built each result-cache key as a hand-written dict beside the call it keyed (Intervene, dose,
matrix, the inspector, decouple, the demo): an argument added to the call and not to the key would have served
every visitor a stale result. Here a request holds every input of one experiment as typed fields, its `key()`
is built from those same fields (a sorted plain dict: the result cache's key, with the model added by the
caller), and its `run(lm, job)` makes the one library call from them. The CLI and the dashboard both build
requests, so a number is checked by the same field (fields.py) and defaults come from options.py.

`Job` carries a run's progress callback and its cancel event as one object, instead of two arguments threaded
through every signature; the library's `run_*` functions keep their `progress=`/`cancel=` keywords.
The requests of the heavier studies (inspector, demo, decouple) are in requests_studies.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from .. import fields as F
from ..evaluate.accuracy import EvalConfig
from ..evaluate.steer import Answer, SteerResult, check_prompt, steer, steer_conditions, steer_stream
from ..model.hooks import Intervention, check_positions
from ..model.loading import LoadedModel
from ..model.neurons import NeuronSet
from ..options import DEFAULTS, POSITIONS
from ..progress import Progress, report
from ..serialize import to_data
from .dose import DEFAULT_FACTORS, DosePoint, run_dose_response
from .eval_results import EvalResult, MatrixResult
from .evaluate import run_evaluate, run_matrix
from .result_cache import data_identity, neurons_identity


@dataclass(frozen=True)
class Job:
    """A run's progress and Cancel, carried together: `report(done, total, message)` draws the progress (nothing
    where there is none), a set `cancel` stops the run at its next step (Cancelled)."""

    progress: Progress | None = None
    cancel: threading.Event | None = None

    def report(self, done: int, total: int, message: str) -> None:
        report(self.progress, done, total, message)


NO_JOB = Job()


class Request(Protocol):
    """What every request offers: its kind (the result cache's folder), its key, the type of its result."""

    kind: ClassVar[str]

    @property
    def result_type(self) -> Any: ...

    def key(self) -> dict[str, Any]: ...

    def run(self, lm: LoadedModel, job: Job = NO_JOB) -> Any: ...


def canonical(params: Mapping[str, Any]) -> dict[str, Any]:
    """A key as a sorted plain dict (the result cache hashes its JSON with sorted keys too)."""
    return dict(sorted(params.items()))


def _checked(*pairs: tuple[F.NumberField, object]) -> None:
    for spec, value in pairs:
        spec.typed(value)


def _intervention_key(iv: Intervention) -> dict[str, Any]:
    return {"neurons": neurons_identity(iv.neurons), "intervention": iv.describe()}


@dataclass(frozen=True)
class EvaluateRequest:
    """An evaluation (the CLI's `evaluate`, the dashboard's Intervene, one tested dataset): accuracy and gold
    log-likelihood unmodified, under the intervention, and under `control_draws` random controls."""

    kind: ClassVar[str] = "intervene"
    result_type: ClassVar[type] = EvalResult
    dataset: str
    intervention: Intervention | None = None
    n: int = DEFAULTS.eval_n
    seed: int = DEFAULTS.seed
    control_draws: int = DEFAULTS.control_draws
    control_may_overlap: bool = False
    located_ids: tuple[str, ...] = ()  # the samples the neurons were located on: never evaluated
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        _checked((F.EVAL_N, self.n), (F.SEED, self.seed), (F.CONTROL_DRAWS, self.control_draws))
        object.__setattr__(self, "located_ids", tuple(self.located_ids))

    def key(self) -> dict[str, Any]:
        iv = _intervention_key(self.intervention) if self.intervention is not None else {}
        return canonical(
            {
                "dataset": data_identity(self.dataset),
                **iv,
                "n": self.n,
                "seed": self.seed,
                "control_draws": self.control_draws,
                "control_may_overlap": self.control_may_overlap,
                "located_ids": list(self.located_ids),
                "eval": to_data(self.eval),
            }
        )

    def run(self, lm: LoadedModel, job: Job = NO_JOB, **launch: Any) -> EvalResult:
        """`launch`: the CLI's torchrun helper (run_evaluate's `launch=`), where there is one."""
        return run_evaluate(
            lm,
            self.dataset,
            self.n,
            self.seed,
            self.intervention,
            control_draws=self.control_draws,
            control_may_overlap=self.control_may_overlap,
            located_ids=self.located_ids,
            cfg=self.eval,
            progress=job.report,
            cancel=job.cancel,
            **launch,
        )


@dataclass(frozen=True)
class DoseRequest:
    """Dose-response: the located neurons scaled by each factor, on the same held-out samples of one dataset."""

    kind: ClassVar[str] = "dose"
    result_type: ClassVar[Any] = list[DosePoint]
    dataset: str
    neurons: NeuronSet
    positions: str = POSITIONS[0]
    factors: tuple[float, ...] = tuple(DEFAULT_FACTORS)
    n: int = DEFAULTS.eval_n
    seed: int = DEFAULTS.seed
    located_ids: tuple[str, ...] = ()
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        _checked((F.EVAL_N, self.n), (F.SEED, self.seed), *((F.FACTOR, f) for f in self.factors))
        object.__setattr__(self, "positions", check_positions(self.positions))
        object.__setattr__(self, "factors", tuple(self.factors))
        object.__setattr__(self, "located_ids", tuple(self.located_ids))

    def key(self) -> dict[str, Any]:
        return canonical(
            {
                "dataset": data_identity(self.dataset),
                "neurons": neurons_identity(self.neurons),
                "factors": list(self.factors),
                "positions": self.positions,
                "n": self.n,
                "seed": self.seed,
                "located_ids": list(self.located_ids),
                "eval": to_data(self.eval),
            }
        )

    def run(self, lm: LoadedModel, job: Job = NO_JOB) -> list[DosePoint]:
        return run_dose_response(
            lm,
            self.dataset,
            self.neurons,
            self.factors,
            self.n,
            self.seed,
            self.located_ids,
            self.eval,
            job.report,
            job.cancel,
            positions=self.positions,
        )


@dataclass(frozen=True)
class MatrixRequest:
    """The cross-dataset matrix: rows = whose neurons are changed (an intervention and the ids they were located
    on), columns = the datasets tested; with a random-control row under each set unless `with_controls` is off."""

    kind: ClassVar[str] = "matrix"
    result_type: ClassVar[type] = MatrixResult
    rows: Mapping[str, tuple[Intervention, Sequence[str]]]
    targets: tuple[str, ...]
    n: int = DEFAULTS.eval_n
    seed: int = DEFAULTS.seed
    with_controls: bool = True
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        _checked((F.EVAL_N, self.n), (F.SEED, self.seed))
        object.__setattr__(self, "rows", {k: (iv, tuple(ids)) for k, (iv, ids) in self.rows.items()})
        object.__setattr__(self, "targets", tuple(self.targets))

    def key(self) -> dict[str, Any]:
        return canonical(
            {
                "rows": {k: {**_intervention_key(iv), "located_ids": list(ids)} for k, (iv, ids) in self.rows.items()},
                "targets": [data_identity(t) for t in self.targets],
                "n": self.n,
                "seed": self.seed,
                "with_controls": self.with_controls,
                "eval": to_data(self.eval),
            }
        )

    def run(self, lm: LoadedModel, job: Job = NO_JOB, **launch: Any) -> MatrixResult:
        return run_matrix(
            lm,
            self.rows,
            list(self.targets),
            self.n,
            self.seed,
            with_controls=self.with_controls,
            cfg=self.eval,
            progress=job.report,
            cancel=job.cancel,
            **launch,
        )


@dataclass(frozen=True)
class SteerRequest:
    """One prompt answered unmodified, under the intervention and under its random control (steer.py); the
    control is drawn from `seed` as an evaluation's first draw, the same in the CLI and the dashboard."""

    kind: ClassVar[str] = "steer"
    result_type: ClassVar[type] = SteerResult
    prompt: str
    intervention: Intervention
    max_new_tokens: int = DEFAULTS.steer_tokens
    seed: int = DEFAULTS.seed

    def __post_init__(self) -> None:
        F.STEER_PROMPT.check(self.prompt)
        check_prompt(self.prompt)
        _checked((F.STEER_TOKENS, self.max_new_tokens), (F.SEED, self.seed))

    def conditions(self) -> dict[str, Intervention | None]:
        return steer_conditions(self.intervention, self.seed)

    def key(self) -> dict[str, Any]:
        return canonical(
            {
                "prompt": self.prompt,
                **_intervention_key(self.intervention),
                "max_new_tokens": self.max_new_tokens,
                "seed": self.seed,
            }
        )

    def stream(self, lm: LoadedModel, job: Job = NO_JOB) -> Iterator[dict[str, Answer]]:
        """The three answers as they grow, token by token (the dashboard shows them live)."""
        return steer_stream(lm, self.prompt, self.conditions(), self.max_new_tokens, cancel=job.cancel)

    def run(self, lm: LoadedModel, job: Job = NO_JOB) -> SteerResult:
        return steer(lm, self.prompt, self.conditions(), self.max_new_tokens)

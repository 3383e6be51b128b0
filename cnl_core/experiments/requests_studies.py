"""The requests of the inspector, the demo and the decoupling study (see requests.py for why requests exist).

Each holds every input its result depends on, checked by its field (fields.py); `key()` is the result cache's
key (the model added by the caller), `run(lm, job)` the one library call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Literal

from .. import fields as F
from ..data.samples import DatasetSpec
from ..inspect.neuron import NeuronReport, inspect_neuron
from ..locate.scorers import ScoreConfig
from ..locate.select import LocateParams
from ..model.loading import LoadedModel
from ..options import DEFAULTS
from ..serialize import to_data
from .decouple import DEFAULT_FRACTIONS, DecoupleResult, run_decouple
from .demo import DEMO, DemoPreset, DemoResult, run_demo
from .format_control import FormatControlResult, run_format_control
from .requests import NO_JOB, Job, canonical
from .result_cache import data_identity

TOP_EXAMPLES = 5  # top activating samples an inspector page keeps (the CLI's --top default)
Scored = Literal["whole", "content", "both"]  # the demo's answer: all of it, its digits only, or both compared


@dataclass(frozen=True)
class InspectRequest:
    """One neuron's page: its vocabulary projection, its activations on `n` samples of each dataset."""

    kind: ClassVar[str] = "inspect"
    result_type: ClassVar[type] = NeuronReport
    layer: int
    index: int
    datasets: tuple[DatasetSpec, ...]
    n: int = DEFAULTS.inspect_n
    seed: int = DEFAULTS.seed
    top: int = TOP_EXAMPLES

    def __post_init__(self) -> None:
        for spec, value in ((F.LAYER, self.layer), (F.INSPECT_N, self.n), (F.SEED, self.seed)):
            spec.typed(value)
        F.TOP_EXAMPLES.typed(self.top)
        object.__setattr__(self, "datasets", tuple(self.datasets))

    def key(self) -> dict[str, Any]:
        return canonical(
            {
                "neuron": [self.layer, self.index],
                "datasets": [data_identity(d) for d in self.datasets],
                "n": self.n,
                "seed": self.seed,
                "top": self.top,
            }
        )

    def run(self, lm: LoadedModel, job: Job = NO_JOB) -> NeuronReport:
        return inspect_neuron(lm, self.layer, self.index, self.datasets, self.n, self.seed, self.top)


@dataclass(frozen=True)
class DemoRequest:
    """The one-button demo: locate a capability the model has (one-digit sums), then zero and amplify it;
    `scored` "both" runs it twice (whole answer, digits only) with the format token's probability."""

    kind: ClassVar[str] = "demo"
    scored: Scored = "whole"
    seed: int = DEMO.seed

    def __post_init__(self) -> None:
        F.SEED.typed(self.seed)
        if self.scored not in ("whole", "content", "both"):
            raise ValueError(f"scored must be whole, content or both, not {self.scored!r}")

    @property
    def result_type(self) -> type:
        return FormatControlResult if self.scored == "both" else DemoResult

    @property
    def preset(self) -> DemoPreset:
        preset = replace(DEMO, seed=self.seed)
        return replace(preset, dataset=preset.dataset + "_content") if self.scored == "content" else preset

    def key(self) -> dict[str, Any]:
        return canonical({"preset": asdict(self.preset), **({"scored": "both"} if self.scored == "both" else {})})

    def run(self, lm: LoadedModel, job: Job = NO_JOB) -> DemoResult | FormatControlResult:
        if self.scored == "both":
            return run_format_control(lm, self.preset, progress=job.report, cancel=job.cancel)
        return run_demo(lm, self.preset, progress=job.report, cancel=job.cancel)


@dataclass(frozen=True)
class DecoupleRequest:
    """The paper's decoupling curve: IoU of two subsamples' located sets as their shared part shrinks, the
    replaceable part from the same dataset or from `other`."""

    kind: ClassVar[str] = "decouple"
    result_type: ClassVar[type] = DecoupleResult
    dataset: str
    other: str
    n: int = DEFAULTS.n
    fractions: tuple[float, ...] = tuple(DEFAULT_FRACTIONS)
    repeats: int = DEFAULTS.decouple_repeats
    seed: int = DEFAULTS.seed
    score: ScoreConfig = field(default_factory=ScoreConfig)
    params: LocateParams = field(default_factory=LocateParams)
    batch_size: int | None = None  # how many samples go through the model at once: no number depends on it

    def __post_init__(self) -> None:
        for spec, value in ((F.N_SPLIT, self.n), (F.REPEATS, self.repeats), (F.SEED, self.seed)):
            spec.typed(value)
        for fraction in self.fractions:
            F.FRACTION.typed(fraction)
        object.__setattr__(self, "fractions", tuple(self.fractions))

    def key(self) -> dict[str, Any]:
        return canonical(
            {
                "datasets": [data_identity(self.dataset), data_identity(self.other)],
                "n": self.n,
                "fractions": list(self.fractions),
                "repeats": self.repeats,
                "seed": self.seed,
                "score": to_data(self.score),
                "params": self.params.as_dict(),
            }
        )

    def run(self, lm: LoadedModel, job: Job = NO_JOB) -> DecoupleResult:
        return run_decouple(
            lm,
            self.dataset,
            self.other,
            self.n,
            list(self.fractions),
            self.repeats,
            self.seed,
            self.score,
            self.params,
            batch_size=self.batch_size,
            progress=job.report,
            cancel=job.cancel,
        )

"""The result of a locate run, typed: what the CLI writes, the dashboard shows and both re-load.

Its file (kind "cnl.locate") is not its fields: the neurons are [layer, index] pairs on a grid written beside them,
the settings are grouped under "params", and a reader sees counts and per-layer totals. That shape is declared
once, as the dataclass `_File` (schema.FileForm), which both writes and reads the file through the one codec
(serialize.py); reading then checks what types cannot say (every neuron inside the grid, pairs of existing splits,
names, counts), so a hand-edited or foreign file is refused with a ResultFileError naming the field instead of
failing later. A hand-made file needs only "grid" and "neurons".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compare.overlap import SetComparison
from ..errors import ResultFileError
from ..locate.scorers import ScoreConfig
from ..locate.select import LocateParams
from ..model.neurons import NeuronGrid, NeuronSet
from ..schema import Codec, FileForm, file_form, in_file, result_kind
from ..serialize import at, from_data, read_fields, refused, to_data
from .json_io import read_result, write_json

KIND = "cnl.locate"
UNNAMED = "unnamed"
MAX_NAME_CHARS = 200
SMALL_SET = 20  # fewer located neurons than this: an intervention's effect is mostly noise


@dataclass(frozen=True)
class SplitResult:
    """One subsample: its sample ids and the neurons located on it alone."""

    sample_ids: list[str]
    neurons: NeuronSet


@dataclass(frozen=True)
class SplitPair:
    """Agreement of the sets located on splits a and b."""

    a: int
    b: int
    stats: SetComparison = field(metadata=in_file(flatten=True))  # its numbers beside a and b


@dataclass(frozen=True)
class TopNeuron:
    layer: int
    index: int
    mean_score: float


@dataclass(frozen=True)
class CacheInfo:
    key: str = ""
    computed: int = 0
    reused: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Agreement:
    """Mean overlap rate, IoU and chance IoU over all pairs of splits (NaN with fewer than two splits)."""

    overlap_rate: float
    iou: float
    chance_iou: float
    worst_p_value: float


@file_form(
    computed={
        "max_prompt_tokens": lambda p: p.score.max_prompt_tokens,  # repeated for readers; read from "score"
        "max_answer_tokens": lambda p: p.score.max_answer_tokens,
        "sign": lambda p: p.locate.sign,
    }
)
@dataclass(frozen=True)
class _Params:
    """The file's "params" (its token limits and sign repeat those of `score` and `locate`)."""

    n: int = 0
    splits: int | None = None  # None: as many as the file lists
    seed: int = 0
    score: ScoreConfig = field(default_factory=ScoreConfig)
    locate: LocateParams = field(default_factory=LocateParams)


@file_form(computed={"n_located": lambda s: len(s.neurons)})
@dataclass(frozen=True)
class _Split:
    sample_ids: list[str] = field(default_factory=list)
    neurons: Any = field(default_factory=list)  # [layer, index] pairs, checked against the grid


@dataclass(frozen=True)
class _Pair:
    a: int
    b: int


GRID = Codec(write=NeuronGrid.as_dict, read=lambda data, where: from_data(NeuronGrid, data, where))


def _located(f: _File) -> NeuronSet:
    return NeuronSet.from_pairs(f.grid, f.neurons)


@file_form(
    computed={  # for readers of the file; computed from the neurons again when it is read
        "method": lambda f: f.params.score.method,
        "n_neurons_total": lambda f: f.grid.total,
        "n_located": lambda f: len(f.neurons),
        "fraction_located": lambda f: len(f.neurons) / f.grid.total,
        "per_layer": lambda f: _located(f).per_layer_counts(),
    },
    order=(
        *("model", "model_info", "dataset", "method", "params", "grid", "n_neurons_total", "neurons", "n_located"),
        *("fraction_located", "per_layer", "top_neurons", "splits", "pairwise", "cache", "mean_gold_logprob"),
    ),
)
@dataclass(frozen=True)
class _File:
    """A locate result's file; a hand-made set needs only grid and neurons."""

    grid: NeuronGrid = field(metadata=in_file(codec=GRID))
    neurons: Any  # [layer, index] pairs, checked against the grid
    model: str = UNNAMED
    dataset: str = UNNAMED
    params: _Params = field(default_factory=_Params)
    model_info: dict = field(default_factory=dict)
    splits: list[_Split] = field(default_factory=list)
    pairwise: list[dict] = field(default_factory=list)  # {a, b, and the SetComparison's fields}
    top_neurons: list[TopNeuron] = field(default_factory=list)
    cache: CacheInfo = field(default_factory=CacheInfo)
    mean_gold_logprob: float | None = None
    truncated_prompts: int = 0
    truncated_answers: int = 0
    ig_completeness: dict | None = None
    created: str | None = None
    versions: dict = field(default_factory=dict)


def _to_file(r: LocateResult) -> _File:
    return _File(
        grid=r.grid,
        neurons=r.neurons.pairs(),
        model=r.model,
        dataset=r.dataset,
        params=_Params(r.n, r.k, r.seed, r.score, r.params),
        model_info=r.model_info,
        splits=[_Split(s.sample_ids, s.neurons.pairs()) for s in r.splits],
        pairwise=[to_data(p) for p in r.pairwise],
        top_neurons=r.top_neurons,
        cache=r.cache,
        mean_gold_logprob=r.mean_gold_logprob,
        truncated_prompts=r.truncated_prompts,
        truncated_answers=r.truncated_answers,
        ig_completeness=r.ig_completeness,
        created=r.created,
        versions=r.versions,
    )


@result_kind(KIND, form=FileForm(_File, _to_file, lambda f, where: _result(f, where)), kind_required=False)
@dataclass(frozen=True)
class LocateResult:
    model: str
    dataset: str
    neurons: NeuronSet
    n: int = 0
    k: int = 0
    seed: int = 0
    score: ScoreConfig = field(default_factory=ScoreConfig)
    params: LocateParams = field(default_factory=LocateParams)
    model_info: dict = field(default_factory=dict)
    splits: list[SplitResult] = field(default_factory=list)
    pairwise: list[SplitPair] = field(default_factory=list)
    top_neurons: list[TopNeuron] = field(default_factory=list)
    cache: CacheInfo = field(default_factory=CacheInfo)
    mean_gold_logprob: float | None = None
    truncated_prompts: int = 0  # located-on samples whose prompt was cut to score.max_prompt_tokens
    truncated_answers: int = 0  # located-on samples whose gold answer was cut to score.max_answer_tokens
    ig_completeness: dict | None = None  # integrated gradients: per-layer sum of IG / effect of zeroing the layer
    created: str | None = None
    versions: dict = field(default_factory=dict)

    @property
    def grid(self) -> NeuronGrid:
        return self.neurons.grid

    @property
    def method(self) -> str:
        return self.score.method

    @property
    def n_located(self) -> int:
        return len(self.neurons)

    @property
    def fraction_located(self) -> float:
        return len(self.neurons) / self.grid.total

    def located_sample_ids(self) -> list[str]:
        """Every sample the neurons were located on (evaluation keeps away from them)."""
        return [i for s in self.splits for i in s.sample_ids]

    def split_sets(self) -> list[NeuronSet]:
        return [s.neurons for s in self.splits]

    def agreement(self) -> Agreement:
        pw = [p.stats for p in self.pairwise]
        mean = (lambda key: sum(getattr(x, key) for x in pw) / len(pw)) if pw else (lambda key: float("nan"))
        return Agreement(
            mean("overlap_rate"), mean("iou"), mean("chance_iou"), max((x.p_value for x in pw), default=float("nan"))
        )

    def warnings(self) -> list[str]:
        """What a reader of these numbers should know: a tiny set, answers cut short, incomplete IG."""
        out = []
        if self.n_located < SMALL_SET:
            out.append(
                f"Only {self.n_located} neurons located: zeroing or amplifying so few moves little, and the "
                "effect is mostly noise. Lower tau or p (the threshold sweep shows the trade-off)."
            )
        if self.fraction_located > 0.05:
            out.append(
                f"{100 * self.fraction_located:.0f}% of all neurons are located: that is not a localized "
                "capability. Raise tau or p, or lower top-k."
            )
        if self.truncated_answers:
            out.append(
                f"{self.truncated_answers} of {len(self.located_sample_ids())} gold answers were cut to "
                f"{self.score.max_answer_tokens} tokens."
            )
        gap = (self.ig_completeness or {}).get("worst_gap")
        if isinstance(gap, float) and math.isfinite(gap) and gap > 0.1:
            out.append(
                f"Integrated gradients are {100 * gap:.0f}% off completeness in some layer: raise the IG "
                "steps (or use the midpoint rule) before comparing layers."
            )
        return out

    def write(self, path: str | Path) -> Path:
        return write_json(path, self)

    @staticmethod
    def read(path: str | Path) -> LocateResult:
        return read_result(path, LocateResult, "result file")


def _result(f: _File, where: str) -> LocateResult:
    grid = f.grid
    for key in ("model", "dataset"):
        name = getattr(f, key)
        if not name.strip():
            raise ResultFileError(f"{at(where, key)}: the '{key}' name is empty.")
        if len(name) > MAX_NAME_CHARS:
            raise ResultFileError(
                f"{at(where, key)}: the '{key}' name is {len(name)} characters long (at most {MAX_NAME_CHARS})."
            )
    splits = [
        SplitResult(s.sample_ids, _neurons(grid, s.neurons, at(at(where, f"splits[{i}]"), "neurons")))
        for i, s in enumerate(f.splits)
    ]
    pairwise = [_pair(p, len(splits), at(where, f"pairwise[{i}]")) for i, p in enumerate(f.pairwise)]
    for i, t in enumerate(f.top_neurons):
        _below(at(where, f"top_neurons[{i}]"), layer=(t.layer, grid.n_layers), index=(t.index, grid.width))
    p = f.params
    _below(
        where,
        **{
            "params.n": (p.n, None),
            "params.seed": (p.seed, None),
            "params.splits": (p.splits or 0, None),
            "cache.computed": (f.cache.computed, None),
            "cache.reused": (f.cache.reused, None),
            "truncated_prompts": (f.truncated_prompts, None),
            "truncated_answers": (f.truncated_answers, None),
        },
    )
    return LocateResult(
        model=f.model,
        dataset=f.dataset,
        neurons=_neurons(grid, f.neurons, at(where, "neurons")),
        n=p.n,
        k=len(splits) if p.splits is None else p.splits,
        seed=p.seed,
        score=p.score,
        params=p.locate,
        model_info=f.model_info,
        splits=splits,
        pairwise=pairwise,
        top_neurons=f.top_neurons,
        cache=f.cache,
        mean_gold_logprob=f.mean_gold_logprob,
        truncated_prompts=f.truncated_prompts,
        truncated_answers=f.truncated_answers,
        ig_completeness=f.ig_completeness or None,
        created=f.created,
        versions=f.versions,
    )


def _neurons(grid: NeuronGrid, pairs: Any, where: str) -> NeuronSet:
    with refused(where):
        return NeuronSet.from_pairs(grid, pairs)


def _pair(data: dict, n_splits: int, where: str) -> SplitPair:
    ends, stats = read_fields(_Pair, data, where), from_data(SetComparison, data, where)
    _below(
        where,
        a=(ends.a, n_splits),
        b=(ends.b, n_splits),
        size_a=(stats.size_a, None),
        size_b=(stats.size_b, None),
        intersection=(stats.intersection, None),
    )
    shares = (
        stats.overlap_rate,
        stats.iou,
        stats.chance_intersection,
        stats.chance_overlap_rate,
        stats.chance_iou,
        stats.p_value,
    )
    if not all(math.isfinite(x) for x in shares):
        raise ResultFileError(f"{where}: the overlap, IoU, chance levels and p-value must be finite numbers.")
    if not (0 <= stats.overlap_rate <= 1 and 0 <= stats.iou <= 1 and 0 <= stats.p_value <= 1):
        raise ResultFileError(f"{where}: an overlap, IoU or p-value outside 0..1.")
    return SplitPair(ends.a, ends.b, stats)


def _below(where: str, **values: tuple[int, int | None]) -> None:
    """Each whole number is at least 0 and, where a bound is given, below it (a split, a layer, an index)."""
    for name, (value, bound) in values.items():
        if value < 0 or (bound is not None and value >= bound):
            raise ResultFileError(
                f"{at(where, name)}: {value} is not a whole number from 0"
                + (f" and below {bound}." if bound is not None else ".")
            )

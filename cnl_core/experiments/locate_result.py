"""The result of a locate run, typed: what the CLI writes, the dashboard shows and both re-load.

`to_json` writes the documented schema (kind "cnl.locate"); `from_json` reads it back and checks
everything it reads (grid size, every neuron inside the grid, split and pairwise fields, types),
so a hand-edited or foreign file is refused with a sentence instead of failing later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..compare.overlap import SetComparison
from ..errors import CNLError, NeuronSetError
from ..locate.scorers import ScoreConfig
from ..locate.select import LocateParams
from ..model.neurons import NeuronGrid, NeuronSet
from .json_io import read_json, write_json

KIND = "cnl.locate"
UNNAMED = "unnamed"
MAX_NAME_CHARS = 200
SMALL_SET = 20  # fewer located neurons than this: an intervention's effect is mostly noise


@dataclass(frozen=True)
class SplitResult:
    """One subsample: its sample ids and the neurons located on it alone."""

    sample_ids: list[str]
    neurons: NeuronSet

    def to_json(self) -> dict:
        return {"sample_ids": self.sample_ids, "neurons": self.neurons.pairs(), "n_located": len(self.neurons)}


@dataclass(frozen=True)
class SplitPair:
    """Agreement of the sets located on splits a and b."""

    a: int
    b: int
    stats: SetComparison

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, **self.stats.to_json()}


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
        return Agreement(mean("overlap_rate"), mean("iou"), mean("chance_iou"),
                         max((x.p_value for x in pw), default=float("nan")))

    def warnings(self) -> list[str]:
        """What a reader of these numbers should know: a tiny set, answers cut short, incomplete IG."""
        out = []
        if self.n_located < SMALL_SET:
            out.append(f"Only {self.n_located} neurons located: zeroing or amplifying so few moves little, and the "
                       "effect is mostly noise. Lower tau or p (the threshold sweep shows the trade-off).")
        if self.fraction_located > 0.05:
            out.append(f"{100 * self.fraction_located:.0f}% of all neurons are located: that is not a localized "
                       "capability. Raise tau or p, or lower top-k.")
        if self.truncated_answers:
            out.append(f"{self.truncated_answers} of {len(self.located_sample_ids())} gold answers were cut to "
                       f"{self.score.max_answer_tokens} tokens.")
        gap = (self.ig_completeness or {}).get("worst_gap")
        if isinstance(gap, float) and math.isfinite(gap) and gap > 0.1:
            out.append(f"Integrated gradients are {100 * gap:.0f}% off completeness in some layer: raise the IG "
                       "steps (or use the midpoint rule) before comparing layers.")
        return out

    def to_json(self) -> dict:
        grid = self.grid
        return {
            "kind": KIND,
            "model": self.model,
            "model_info": self.model_info,
            "dataset": self.dataset,
            "method": self.method,
            "params": {"n": self.n, "splits": self.k, "seed": self.seed, "score": self.score.to_json(),
                       "locate": self.params.as_dict(), "max_prompt_tokens": self.score.max_prompt_tokens,
                       "max_answer_tokens": self.score.max_answer_tokens, "sign": self.params.sign},
            "grid": grid.as_dict(),
            "n_neurons_total": grid.total,
            "neurons": self.neurons.pairs(),
            "n_located": self.n_located,
            "fraction_located": self.fraction_located,
            "per_layer": self.neurons.per_layer_counts(),
            "top_neurons": [vars(t) for t in self.top_neurons],
            "splits": [s.to_json() for s in self.splits],
            "pairwise": [p.to_json() for p in self.pairwise],
            "cache": vars(self.cache),
            "mean_gold_logprob": self.mean_gold_logprob,
            "truncated_prompts": self.truncated_prompts,
            "truncated_answers": self.truncated_answers,
            "ig_completeness": self.ig_completeness,
            "created": self.created,
            "versions": self.versions,
        }

    def write(self, path: str | Path) -> Path:
        return write_json(path, self.to_json())

    @staticmethod
    def read(path: str | Path) -> "LocateResult":
        return LocateResult.from_json(read_json(path, "result file"), Path(path).name)

    @staticmethod
    def from_json(data: dict, source: str = "the result file") -> "LocateResult":
        """A result read back from JSON, every field checked; NeuronSetError names the first problem."""
        try:
            return _parse(data)
        except CNLError as exc:
            raise NeuronSetError(f"{source} was not loaded: {exc}") from exc
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
            raise NeuronSetError(f"{source} was not loaded: it is not a valid locate result "
                                 f"({type(exc).__name__}: {str(exc)[:200]}).") from exc


def _parse(data: dict) -> LocateResult:
    if not isinstance(data, dict) or "neurons" not in data or "grid" not in data:
        raise NeuronSetError("it is not a locate result (it needs 'neurons' and 'grid').")
    grid = NeuronGrid.from_json(data["grid"])
    neurons = NeuronSet.from_pairs(grid, data["neurons"])
    names = {key: data.get(key, UNNAMED) for key in ("model", "dataset")}  # a hand-made set may have none
    for key, value in names.items():
        if not isinstance(value, str) or not value.strip():
            raise NeuronSetError(f"it has no '{key}' name.")
        if len(value) > MAX_NAME_CHARS:
            raise NeuronSetError(f"its '{key}' name is {len(value)} characters long (at most {MAX_NAME_CHARS}).")
    params = _dict(data.get("params", {}), "params")
    splits = [SplitResult(_str_list(_dict(s, "a split").get("sample_ids", []), "sample_ids"),
                          NeuronSet.from_pairs(grid, _dict(s, "a split").get("neurons", [])))
              for s in _list(data.get("splits", []), "splits")]
    pairwise = [_pair(_dict(p, "a pairwise entry"), len(splits)) for p in _list(data.get("pairwise", []), "pairwise")]
    top = [TopNeuron(_int(t["layer"], "top neuron layer", grid.n_layers), _int(t["index"], "top neuron index", grid.width),
                     _number(t["mean_score"], "mean_score", finite=False))
           for t in _list(data.get("top_neurons", []), "top_neurons")]
    cache = _dict(data.get("cache", {}), "cache")
    gold = data.get("mean_gold_logprob")
    return LocateResult(
        model=names["model"], dataset=names["dataset"], neurons=neurons,
        n=_int(params.get("n", 0), "n"), k=_int(params.get("splits", len(splits)), "splits"),
        seed=_int(params.get("seed", 0), "seed"),
        score=ScoreConfig.from_json(_dict(params.get("score", {}), "score settings")),
        params=LocateParams.from_json(_dict(params.get("locate", {}), "locate settings")),
        model_info=_dict(data.get("model_info", {}), "model_info"), splits=splits, pairwise=pairwise, top_neurons=top,
        cache=CacheInfo(str(cache.get("key", "")), _int(cache.get("computed", 0), "cache computed"),
                        _int(cache.get("reused", 0), "cache reused"), _str_list(cache.get("notes", []), "notes")),
        mean_gold_logprob=None if gold is None else _number(gold, "mean_gold_logprob", finite=False),
        truncated_prompts=_int(data.get("truncated_prompts", 0), "truncated_prompts"),
        truncated_answers=_int(data.get("truncated_answers", 0), "truncated_answers"),
        ig_completeness=_dict(data["ig_completeness"], "ig_completeness") if data.get("ig_completeness") else None,
        created=data.get("created") if isinstance(data.get("created"), str) else None,
        versions=_dict(data.get("versions", {}), "versions"),
    )


def _pair(p: dict, n_splits: int) -> SplitPair:
    a, b = _int(p["a"], "pairwise a", n_splits), _int(p["b"], "pairwise b", n_splits)
    stats = SetComparison(
        size_a=_int(p["size_a"], "size_a"), size_b=_int(p["size_b"], "size_b"),
        intersection=_int(p["intersection"], "intersection"),
        **{k: _number(p[k], k) for k in ("overlap_rate", "iou", "chance_intersection", "chance_overlap_rate",
                                          "chance_iou", "p_value")})
    if not (0 <= stats.overlap_rate <= 1 and 0 <= stats.iou <= 1 and 0 <= stats.p_value <= 1):
        raise NeuronSetError("a pairwise entry has an overlap, IoU or p-value outside 0..1.")
    return SplitPair(a, b, stats)


def _dict(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise NeuronSetError(f"'{what}' must be an object.")
    return value


def _list(value, what: str) -> list:
    if not isinstance(value, list):
        raise NeuronSetError(f"'{what}' must be a list.")
    return value


def _str_list(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise NeuronSetError(f"'{what}' must be a list of strings.")
    return value


def _int(value, what: str, below: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (below is not None and value >= below):
        raise NeuronSetError(f"'{what}' must be a whole number" + (f" below {below}." if below is not None else " >= 0."))
    return value


def _number(value, what: str, finite: bool = True) -> float:
    """A number; finite unless a field may hold a score that overflowed (inf) or an empty mean (NaN)."""
    try:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    except OverflowError:
        number = None
    if number is None or (finite and not math.isfinite(number)):
        raise NeuronSetError(f"'{what}' must be a{' finite' if finite else ''} number.")
    return number

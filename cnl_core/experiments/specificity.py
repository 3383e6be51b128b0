"""Specificity across capabilities: which located neurons belong to one capability, and which to all?

A 2026 study finds fewer than 0.2% of neurons shared by all tasks, and zeroing them collapses every
benchmark: a located "capability" set may mix such task-agnostic backbone neurons with neurons
specific to the capability. From the located sets of several datasets this splits the neurons into
shared by all, shared by some, and specific to one (the UpSet-style counts), then intervenes on each
dataset's specific part and on the shared part, on every dataset's test samples.

Specificity index of dataset i: the effect of changing i's specific neurons on i's own test set minus
the mean effect on the other datasets (effect = paired change of the metric from the unmodified
model). Its 95% interval combines the cells' bootstrap intervals by the normal approximation
(SE = CI width / 3.92), treating the datasets' test samples as independent.

Its file (kind "cnl.specificity") lists the neuron sets as [layer, index] pairs without their grid, as it always
has: it is a report to read, not a set to load back (a located set's file is).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..evaluate.accuracy import EvalConfig
from ..model.hooks import Intervention
from ..model.loading import LoadedModel
from ..model.neurons import NeuronSet
from ..options import DEFAULTS, METRICS
from ..progress import Progress
from ..schema import Codec, in_file, result_kind
from .eval_results import MatrixResult
from .evaluate import run_matrix
from .locate_result import LocateResult

SHARED = "shared by all"


def _no_grid(data: Any, where: str) -> Any:
    raise ParameterError("a specificity file lists neurons without their grid; load the located sets' files instead.")


PAIRS = Codec(write=NeuronSet.pairs, read=_no_grid)
PAIRS_BY_NAME = Codec(write=lambda sets: {k: v.pairs() for k, v in sets.items()}, read=_no_grid)


@dataclass
class SharingSplit:
    """Located neurons by how many sets hold them."""

    names: list[str]
    shared_by_all: NeuronSet = field(metadata=in_file(codec=PAIRS))
    specific: dict[str, NeuronSet] = field(metadata=in_file(codec=PAIRS_BY_NAME))
    counts: dict[str, int]  # "a & b" -> neurons held by exactly these sets (the UpSet bars)


def split_by_sharing(sets: Mapping[str, NeuronSet]) -> SharingSplit:
    """Shared by all, specific to one, and the count of every exact combination of sets."""
    names = list(sets)
    if len(names) < 2:
        raise ParameterError("Specificity needs the located sets of at least two datasets.")
    grids = {s.grid for s in sets.values()}
    if len(grids) != 1:
        raise ParameterError("The located sets come from models of different shapes.")
    grid = grids.pop()
    member = np.zeros((len(names), grid.total), dtype=bool)
    for i, name in enumerate(names):
        member[i, sets[name].flat] = True
    held = member.sum(0)
    counts: dict[str, int] = {}
    for flat in np.nonzero(held)[0]:
        key = " & ".join(n for i, n in enumerate(names) if member[i, flat])
        counts[key] = counts.get(key, 0) + 1
    shared = NeuronSet.from_flat(grid, np.nonzero(held == len(names))[0])
    specific = {n: NeuronSet.from_flat(grid, np.nonzero(member[i] & (held == 1))[0]) for i, n in enumerate(names)}
    return SharingSplit(names, shared, specific, dict(sorted(counts.items(), key=lambda kv: -kv[1])))


@result_kind("cnl.specificity", order=("split", "metric", "index", "matrix"))
@dataclass
class SpecificityResult:
    split: SharingSplit = field(metadata=in_file(flatten=True))  # its keys at the top of the file
    metric: str
    matrix: MatrixResult | None = field(default=None, metadata=in_file(omit="none"))
    index: dict[str, dict] = field(default_factory=dict)  # name -> {"value", "ci", "own", "others"}


def specificity_index(matrix: MatrixResult, row: str, own: str, metric: str) -> dict:
    """Effect of a row on its own dataset minus its mean effect on the others, with a normal-approx CI."""
    others = [t for t in matrix.targets if t != own]
    key = f"delta_{metric}"
    own_v, own_ci = matrix.cell(row, own, key), matrix.cell(row, own, f"{key}_ci")
    vals = [(matrix.cell(row, t, key), matrix.cell(row, t, f"{key}_ci")) for t in others]
    if own_v is None or any(v is None for v, _ in vals) or not others:
        return {"value": None, "ci": None, "own": own_v, "others": None}
    mean_others = sum(v for v, _ in vals) / len(vals)
    value = own_v - mean_others
    ses = [(ci[1] - ci[0]) / 3.92 if ci else 0.0 for ci in [own_ci, *(c for _, c in vals)]]
    se = math.sqrt(ses[0] ** 2 + sum(s**2 for s in ses[1:]) / len(others) ** 2)
    return {"value": value, "ci": [value - 1.96 * se, value + 1.96 * se], "own": own_v, "others": mean_others}


def run_specificity(
    lm: LoadedModel,
    located: Mapping[str, LocateResult],
    n: int,
    seed: int = 0,
    *,
    mode: str = "zero",
    factor: float = DEFAULTS.amplify_factor,
    metric: str = METRICS[0],
    cfg: EvalConfig | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> SpecificityResult:
    """Intervene on each dataset's specific neurons and on the shared ones; the specificity index per dataset.

    `located` maps a name to a locate result; the datasets tested are the results' datasets.
    """
    if metric not in METRICS:
        raise ParameterError(f"The specificity metric must be one of {', '.join(METRICS)}.")
    split = split_by_sharing({name: r.neurons for name, r in located.items()})
    for r in located.values():
        r.grid.check_on(lm.grid, "These sets")
    all_ids = [i for r in located.values() for i in r.located_sample_ids()]
    rows = {f"{name} specific": (Intervention(split.specific[name], mode, factor), all_ids) for name in split.names}
    rows[SHARED] = (Intervention(split.shared_by_all, mode, factor), all_ids)
    targets = list(dict.fromkeys(r.dataset for r in located.values()))
    matrix = run_matrix(lm, rows, targets, n, seed, cfg=cfg, progress=progress, cancel=cancel)
    index = {name: specificity_index(matrix, f"{name} specific", located[name].dataset, metric) for name in split.names}
    return SpecificityResult(split, metric, matrix, index)

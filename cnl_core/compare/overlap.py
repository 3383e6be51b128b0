"""Overlap rate, IoU and their chance levels for located neuron sets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ..model.neurons import NeuronSet


def overlap_rate(a: NeuronSet, b: NeuronSet) -> float:
    """|A & B| / min(|A|, |B|); 0 when either set is empty."""
    small = min(len(a), len(b))
    return _intersection(a, b) / small if small else 0.0


def iou(a: NeuronSet, b: NeuronSet) -> float:
    union = len(a) + len(b) - _intersection(a, b)
    return _intersection(a, b) / union if union else 0.0


def _intersection(a: NeuronSet, b: NeuronSet) -> int:
    if a.grid != b.grid:
        raise ParameterError(f"Cannot compare neuron sets on different grids ({a.grid} vs {b.grid}).")
    return int(np.intersect1d(a.flat, b.flat, assume_unique=True).size)


def hypergeom_sf(k: int, total: int, size_a: int, size_b: int) -> float:
    """P(|A & B| >= k) for a random B of size_b among total items, size_a of them in A."""
    lo, hi = max(0, size_a + size_b - total), min(size_a, size_b)
    if k <= lo:
        return 1.0
    if k > hi:
        return 0.0

    def log_pmf(x: int) -> float:
        return _log_comb(size_a, x) + _log_comb(total - size_a, size_b - x) - _log_comb(total, size_b)

    logs = [log_pmf(x) for x in range(k, hi + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def _log_comb(n: int, r: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)


@dataclass(frozen=True)
class SetComparison:
    """Two sets' overlap and IoU, and what random sets of the same sizes would give (with a p-value)."""

    size_a: int
    size_b: int
    intersection: int
    overlap_rate: float
    iou: float
    chance_intersection: float
    chance_overlap_rate: float
    chance_iou: float
    p_value: float


def compare_sets(a: NeuronSet, b: NeuronSet) -> SetComparison:
    """Overlap, IoU, and what random sets of the same sizes would give (with a p-value)."""
    inter, total = _intersection(a, b), a.grid.total
    expected = len(a) * len(b) / total if total else 0.0
    union_exp = len(a) + len(b) - expected
    return SetComparison(
        size_a=len(a),
        size_b=len(b),
        intersection=inter,
        overlap_rate=overlap_rate(a, b),
        iou=iou(a, b),
        chance_intersection=expected,
        chance_overlap_rate=expected / min(len(a), len(b)) if min(len(a), len(b)) else 0.0,
        chance_iou=expected / union_exp if union_exp else 0.0,
        p_value=hypergeom_sf(inter, total, len(a), len(b)),
    )


@dataclass(frozen=True)
class ComparisonMatrix:
    """Pairwise overlap rate, IoU and chance IoU of named sets, as square lists (diagonal 1)."""

    names: list[str]
    sizes: list[int]
    overlap_rate: list[list[float]]
    iou: list[list[float]]
    chance_iou: list[list[float]]


def comparison_matrix(sets: Mapping[str, NeuronSet]) -> ComparisonMatrix:
    """Pairwise overlap and IoU for named sets (splits, datasets or models on one grid)."""
    names = list(sets)
    n = len(names)
    overlap, iou_m, chance = np.eye(n), np.eye(n), np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            c = compare_sets(sets[names[i]], sets[names[j]])
            overlap[i, j] = overlap[j, i] = c.overlap_rate
            iou_m[i, j] = iou_m[j, i] = c.iou
            chance[i, j] = chance[j, i] = c.chance_iou
    return ComparisonMatrix(names, [len(sets[k]) for k in names], overlap.tolist(), iou_m.tolist(), chance.tolist())

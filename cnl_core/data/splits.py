"""Disjoint, seeded subsamples of a dataset, identified by stable sample ids."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from ..errors import DatasetError, ParameterError
from .samples import DatasetSpec


def draw_disjoint(ids: Sequence[str], sizes: Sequence[int], seed: int, exclude: Iterable[str] = ()) -> list[list[str]]:
    """Draw groups of the given sizes from ids, without replacement and without the excluded ids.

    The pool is sorted before shuffling, so the result depends only on (ids, sizes, seed, exclude).
    """
    if any(s < 1 for s in sizes):
        raise ParameterError("Every subsample needs at least one row.")
    excluded = set(exclude)
    pool = sorted(i for i in ids if i not in excluded)
    need = sum(sizes)
    if need > len(pool):
        raise DatasetError(
            f"Asked for {need} rows ({' + '.join(map(str, sizes))}) but only {len(pool)} are available"
            + (f" after excluding {len(excluded)} already used" if excluded else "")
            + "."
        )
    random.Random(seed).shuffle(pool)
    out, start = [], 0
    for size in sizes:
        out.append(pool[start : start + size])
        start += size
    return out


def make_splits(dataset: DatasetSpec, n: int, k: int, seed: int, exclude: Iterable[str] = ()) -> list[list[str]]:
    """k disjoint random subsamples of n rows each; the same arguments always give the same ids."""
    if k < 1:
        raise ParameterError("The number of splits must be at least 1.")
    return draw_disjoint([s.id for s in dataset.rows()], [n] * k, seed, exclude)

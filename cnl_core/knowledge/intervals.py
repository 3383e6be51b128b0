"""Intervals over facts *and* wordings: a two-level (hierarchical) bootstrap for the fidelity pair groups.

A fact's IoU in a group is a mean over pairs of prompts, and the prompts are the fact's wordings (templates). A
bootstrap over facts alone treats those wordings as fixed, so its interval is too narrow for a claim about "a
fact in any wording". Here each bootstrap draw resamples the facts (with replacement), then, independently for
every fact drawn, the wordings of that fact (a multinomial count per template, with replacement). A pair's weight
is the count of each of its wordings that belongs to the fact's own template set:
- two wordings of the fact itself, or of its relation (other fact, other wording): count(ti) x count(tj);
- the same wording on both sides (other fact, same wording): count(t), the wording drawn once;
- a wording of another relation: count(ti) only (the other relation's wordings are not the fact's to resample).
The fact's value in the draw is the weighted mean of its pairs' IoUs; the draw's statistic is the mean over the
facts drawn; the interval is the percentile interval of those means. The point estimate (mean over facts of each
fact's unweighted mean) is unchanged. Resampling at both levels counts the wording-to-wording spread twice (in the
facts' means and in the redrawn wordings), so this interval errs wide.

The templates are shared by the facts of a relation (a crossed design): a wording that raises every fact of its
relation is one unit, which the nested draw above redraws fact by fact. `facts_and_templates_ci` (the crossed
interval) redraws each relation's templates once per draw, for all its facts, beside the facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..evaluate.stats import bootstrap_ci

CI = list[float] | None
ONCE = -1  # `right` for a pair whose other wording is the same draw (same wording) or not the fact's own


@dataclass(frozen=True)
class UnitPairs:
    """One fact's pairs in a group: IoU per pair, the fact's wording on the left, the other side's wording (an
    index into the same template set, or ONCE), and how many templates the fact's relation has."""

    iou: np.ndarray
    left: np.ndarray
    right: np.ndarray
    templates: int


def unit_means(unit: UnitPairs, draws: int, rng: np.random.Generator) -> np.ndarray:
    """[draws] the fact's weighted mean IoU with its wordings resampled (NaN where no pair keeps a weight)."""
    return weighted_means(unit, _template_counts(unit.templates, draws, rng))


def _template_counts(templates: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """[draws, templates] how often each template is drawn (with replacement, as many draws as templates)."""
    return rng.multinomial(templates, np.full(templates, 1.0 / templates), size=draws).astype(float)


def weighted_means(unit: UnitPairs, counts: np.ndarray) -> np.ndarray:
    """[draws] the fact's mean IoU with each pair weighted by its wordings' draw counts ([draws, templates])."""
    w = counts[:, unit.left]
    paired = unit.right != ONCE
    if paired.any():
        w[:, paired] *= counts[:, unit.right[paired]]
    total = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w * unit.iou[None, :]).sum(1) / total, np.nan)


def facts_and_wordings_ci(units: list[UnitPairs], draws: int, seed: int, level: float = 0.95) -> CI:
    """Percentile interval of the mean over facts, resampling facts, then wordings within each fact drawn."""
    units = [u for u in units if u.iou.size]
    if draws == 0 or not units:
        return None
    rng = np.random.default_rng(seed)
    per_unit = np.stack([unit_means(u, draws, rng) for u in units])  # [facts, draws]
    n = len(units)
    pick = rng.integers(0, n, size=(draws, n))  # facts drawn
    column = rng.integers(0, draws, size=(draws, n))  # an independent wording draw for every fact drawn
    values = per_unit[pick, column]
    kept = (~np.isnan(values)).sum(1)
    means = np.nansum(values, axis=1)[kept > 0] / kept[kept > 0]
    if not means.size:
        return None
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def facts_and_templates_ci(
    units: list[UnitPairs], relations: list[str], draws: int, seed: int, level: float = 0.95
) -> CI:
    """The crossed interval: each draw resamples the facts and, once for all the facts of a relation, that
    relation's templates (a wording that raises every fact of its relation moves them together, as it would in
    another sample of wordings)."""
    kept = [(u, r) for u, r in zip(units, relations) if u.iou.size]
    if draws == 0 or not kept:
        return None
    rng = np.random.default_rng(seed)
    counts: dict[str, np.ndarray] = {}
    for u, r in kept:
        if r not in counts:
            counts[r] = _template_counts(u.templates, draws, rng)
    per_unit = np.stack([weighted_means(u, counts[r]) for u, r in kept])  # [facts, draws]
    pick = rng.integers(0, len(kept), size=(draws, len(kept)))
    values = per_unit[pick, np.arange(draws)[:, None]]  # every fact drawn in draw b sees draw b's templates
    n_ok = (~np.isnan(values)).sum(1)
    means = np.nansum(values, axis=1)[n_ok > 0] / n_ok[n_ok > 0]
    if not means.size:
        return None
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def facts_and_items_ci(per_fact: Sequence[np.ndarray], draws: int, seed: int, level: float = 0.95) -> CI:
    """The same two-level interval for one value per prompt: facts resampled, then each fact's prompts (its held-out
    wordings, or the other facts' prompts it was tested on), each prompt its own item."""
    units = [UnitPairs(np.asarray(v, float), np.arange(len(v)), np.full(len(v), ONCE), len(v)) for v in per_fact]
    return facts_and_wordings_ci([u for u in units if u.templates], draws, seed, level)


@dataclass(frozen=True)
class GroupStat:
    """Mean IoU of a group of set pairs [95% interval], its chance IoU, and how many pairs and units it holds."""

    name: str
    iou: float | None
    ci: list[float] | None
    chance_iou: float | None
    pairs: int
    units: int  # facts (or draws) the interval resamples
    mean_size: float
    undefined: int = 0  # pairs of two empty sets (IoU undefined, left out)
    interval: str = "facts"  # what the interval resamples (INTERVALS)
    size_cap: int | None = None  # every set capped at this many top-scored neurons (like for like), or None
    ci_crossed: list[float] | None = None  # facts, and each relation's templates once for all its facts


INTERVALS = {
    "facts": "facts",
    "nested": "facts, then the wordings within each fact",
    "draws": "independent draws (disjoint samples or facts)",
}


# IoU, chance IoU, mean size[, the fact's wording, the other side's wording (or ONCE)]
Pair = tuple[float, ...]


def group_stat(
    name: str,
    per_unit: Sequence[Sequence[Pair]],
    bootstrap: int,
    seed: int,
    *,
    templates: list[int] | None = None,
    relations: list[str] | None = None,
    interval: str = "facts",
    size_cap: int | None = None,
) -> GroupStat:
    """Per unit (fact or draw), its pairs' (IoU, chance, mean size[, wording, other wording]); NaN IoUs (two empty
    sets) are counted apart. With `templates` (each unit's number of wordings) the interval is the two-level one
    (facts, then wordings within a fact), and with `relations` (each unit's relation) the crossed one too
    (`ci_crossed`); otherwise a bootstrap over the units."""
    undefined = sum(1 for unit in per_unit for v in unit if np.isnan(v[0]))
    means, chances, sizes, pairs, nested, unit_relations = [], [], [], 0, [], []
    for k, unit in enumerate(per_unit):
        ok = [v for v in unit if not np.isnan(v[0])]
        if ok:
            means.append(float(np.mean([v[0] for v in ok])))
            chances.append(float(np.mean([v[1] for v in ok])))
            sizes.append(float(np.mean([v[2] for v in ok])))
            pairs += len(ok)
            if templates is not None:
                cols = np.array([v[:5] for v in ok], dtype=float)
                nested.append(UnitPairs(cols[:, 0], cols[:, 3].astype(int), cols[:, 4].astype(int), templates[k]))
                unit_relations.append(relations[k] if relations is not None else "")
    if not means:
        return GroupStat(name, None, None, None, 0, 0, 0.0, undefined, interval, size_cap)
    crossed = None
    if templates is not None:
        ci, interval = facts_and_wordings_ci(nested, bootstrap, seed), "nested"
        if relations is not None:
            crossed = facts_and_templates_ci(nested, unit_relations, bootstrap, seed)
    else:
        ci = bootstrap_ci(np.array(means), bootstrap, seed)
    return GroupStat(
        name,
        float(np.mean(means)),
        ci,
        float(np.mean(chances)),
        pairs,
        len(means),
        float(np.mean(sizes)),
        undefined,
        interval,
        size_cap,
        crossed,
    )

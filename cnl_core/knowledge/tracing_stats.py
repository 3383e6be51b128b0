"""Statistics over causal traces that can tell a fact's layer from its relation's (or from noise).

An arg-max peak cannot: the hidden-state curve is a plateau whose values differ in the 4th decimal, and the
MLP curve peaks in the first window for nearly every prompt. So, over the informative traces only (the noise
at least halved p(answer)):
- `peak_agreement`: how often two paraphrases of a fact peak at the same layer (or within 2), against two facts
  of one relation (kept for comparison with round one; averaged per fact, intervals over facts);
- `effect_curve`: the average indirect effect per layer (ROME's AIE, as the restored share of what the noise
  took), per fact first, with a bootstrap interval over facts;
- `centre_of_mass_test`: each trace's centre of mass over layers; the mean distance between two paraphrases of
  one fact against two facts of one relation, and a permutation test that shuffles facts' labels within each
  relation: if traces localized the fact, paraphrases of one fact would sit closer than facts of one relation.

Beside each interval over facts (`ci`), the two-level one of intervals.py (`ci_facts_and_prompts`): each draw
resamples the facts, then, within every fact drawn, its wordings (its informative traces; for a distance, the
pairs are weighted by their wordings' draw counts, as fidelity's pair groups are). It covers "this fact in other
wordings" too, and errs wide (the wording-to-wording spread counts at both levels). Files from before it lack it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..evaluate.stats import bootstrap_ci
from .intervals import ONCE, UnitPairs, facts_and_items_ci, facts_and_wordings_ci
from .tracing import Trace

PEAK_GROUPS = ("same fact", "other fact, same relation")
TOLERANCES = (0, 2)  # layers: the same peak, or peaks at most 2 layers apart


def peak_agreement(
    traces: Sequence[Trace],
    fact_of: dict[str, str],
    relation_of: dict[str, str],
    draws: int = 1000,
    seed: int = 0,
    informative_only: bool = True,
) -> dict:
    """Share of paraphrase pairs whose peaks agree (exactly, within 2 layers): of one fact, and of two facts of one
    relation (what agreement the layer profile alone gives: a null). Averaged per fact, intervals over facts."""
    kept = [t for t in traces if t.informative or not informative_only]
    out: dict = {}
    for group in PEAK_GROUPS:
        for tol in TOLERANCES:
            per_fact: dict[str, list[float]] = {}
            for i, a in enumerate(kept):
                for b in kept[i + 1 :]:
                    fa, fb = fact_of[a.paraphrase], fact_of[b.paraphrase]
                    same = fa == fb
                    if (group == PEAK_GROUPS[0]) != same or relation_of[fa] != relation_of[fb]:
                        continue
                    hit = float(abs(a.peak_layer - b.peak_layer) <= tol)
                    per_fact.setdefault(fa, []).append(hit)
                    if not same:
                        per_fact.setdefault(fb, []).append(hit)
            means = np.array([np.mean(v) for v in per_fact.values()])
            out[f"{group}, within {tol}"] = {
                "share": float(means.mean()) if means.size else None,
                "ci": bootstrap_ci(means, draws, seed),
                "pairs": int(sum(len(v) for v in per_fact.values())) // (1 if group == PEAK_GROUPS[0] else 2),
                "facts": len(per_fact),
            }
    out["prompts"] = len(kept)
    out["informative_only"] = informative_only
    return out


def effect_curve(traces: Sequence[Trace], fact_of: dict[str, str], draws: int = 1000, seed: int = 0) -> dict:
    """Average indirect effect per layer (restored share), mean per fact then over facts, [95% CI over facts] and
    [95% CI over facts, then the prompts within each fact] (`ci_facts_and_prompts`)."""
    per_fact: dict[str, list[list[float]]] = {}
    for t in traces:
        if t.informative:
            per_fact.setdefault(fact_of[t.paraphrase], []).append(t.restored_share)
    if not per_fact:
        return {"mean": [], "ci": [], "ci_facts_and_prompts": [], "facts": 0, "prompts": 0}
    rows = np.array([np.mean(v, 0) for v in per_fact.values()])  # [facts, layers]
    prompts = [np.array(v) for v in per_fact.values()]  # per fact [its prompts, layers]
    return {
        "mean": rows.mean(0).tolist(),
        "ci": [bootstrap_ci(rows[:, layer], draws, seed) for layer in range(rows.shape[1])],
        "ci_facts_and_prompts": [
            facts_and_items_ci([v[:, layer] for v in prompts], draws, seed) for layer in range(rows.shape[1])
        ],
        "facts": len(per_fact),
        "prompts": sum(len(v) for v in per_fact.values()),
        "peak_of_mean": int(rows.mean(0).argmax()),
    }


def centre_of_mass_test(
    traces: Sequence[Trace],
    fact_of: dict[str, str],
    relation_of: dict[str, str],
    permutations: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    template_of: dict[str, int] | None = None,
) -> dict:
    """Mean |centre of mass difference| (layers) of paraphrase pairs of one fact and of two facts of one relation,
    per fact [95% CI over facts] [two-level CI], their difference, and a one-sided permutation p-value (labels
    shuffled within relations) for "paraphrases of a fact sit closer than facts of its relation". `template_of`:
    each prompt's wording (index into its relation's templates; default: its order among its fact's traces)."""
    template_of = template_of or _wording_order(traces, fact_of)
    kept = [t for t in traces if t.informative and t.centre_of_mass is not None]
    com = np.array([t.centre_of_mass for t in kept])
    facts = np.array([fact_of[t.paraphrase] for t in kept])
    rels = np.array([relation_of[f] for f in facts])
    wording = np.array([template_of[t.paraphrase] for t in kept], dtype=int)
    out = {
        "traces": len(kept),
        "mean": float(com.mean()) if com.size else None,
        **_mean_over_facts(com, facts, draws, seed),
    }
    if len(kept) < 3:
        return {**out, "same fact": None, "other fact, same relation": None, "difference": None, "p_value": None}
    dist = np.abs(com[:, None] - com[None, :])
    upper = np.triu(np.ones_like(dist, dtype=bool), 1)
    same_rel = (rels[:, None] == rels[None, :]) & upper

    def stat(labels: np.ndarray) -> float:
        same = (labels[:, None] == labels[None, :]) & same_rel
        other = ~(labels[:, None] == labels[None, :]) & same_rel
        if not same.any() or not other.any():
            return float("nan")
        return float(dist[other].mean() - dist[same].mean())

    observed = stat(facts)
    rng = np.random.default_rng(seed)
    shuffled_stats = []
    for _ in range(permutations):
        shuffled = facts.copy()
        for r in np.unique(rels):
            idx = np.flatnonzero(rels == r)
            shuffled[idx] = facts[rng.permutation(idx)]
        shuffled_stats.append(stat(shuffled))
    null = np.array(shuffled_stats)
    # per fact and group: (distance, the fact's wording, the other side's wording or ONCE for the same wording)
    per_fact: dict[str, dict[str, list[tuple[float, int, int]]]] = {}
    for i in range(len(kept)):
        for j in range(len(kept)):
            if i != j and rels[i] == rels[j]:
                key = "same" if facts[i] == facts[j] else "other"
                right = ONCE if key == "other" and wording[i] == wording[j] else int(wording[j])
                per_fact.setdefault(facts[i], {"same": [], "other": []})[key].append(
                    (float(dist[i, j]), int(wording[i]), right)
                )
    templates = {
        r: 1 + max(template_of[t.paraphrase] for t in traces if relation_of[fact_of[t.paraphrase]] == r)
        for r in set(rels.tolist())
    }
    groups = {}
    for key, name in (("same", "same fact"), ("other", "other fact, same relation")):
        means = np.array([np.mean([d for d, _, _ in v[key]]) for v in per_fact.values() if v[key]])
        units = [_unit(v[key], templates[relation_of[f]]) for f, v in per_fact.items() if v[key]]
        groups[name] = {
            "mean_distance": float(means.mean()) if means.size else None,
            "ci": bootstrap_ci(means, draws, seed),
            "ci_facts_and_prompts": facts_and_wordings_ci(units, draws, seed),
            "facts": int(means.size),
        }
    p = None if np.isnan(observed) else float((1 + np.sum(null >= observed)) / (1 + np.sum(~np.isnan(null))))
    return {
        **out,
        **groups,
        "difference": None if np.isnan(observed) else observed,
        "p_value": p,
        "permutations": permutations,
    }


def _unit(pairs: list[tuple[float, int, int]], templates: int) -> UnitPairs:
    """One fact's distances as intervals.py's pairs: (distance, its wording, the other side's wording or ONCE)."""
    cols = np.array(pairs, dtype=float)
    return UnitPairs(cols[:, 0], cols[:, 1].astype(int), cols[:, 2].astype(int), templates)


def _wording_order(traces: Sequence[Trace], fact_of: dict[str, str]) -> dict[str, int]:
    """Each prompt's index among its fact's traces (the wording, where the caller names none)."""
    seen: dict[str, int] = {}
    order = {}
    for t in traces:
        f = fact_of[t.paraphrase]
        order[t.paraphrase] = seen.get(f, 0)
        seen[f] = order[t.paraphrase] + 1
    return order


def _mean_over_facts(com: np.ndarray, facts: np.ndarray, draws: int, seed: int) -> dict:
    """The centre of mass, mean per fact then over facts, [95% CI over facts] and [facts, then prompts]."""
    names = list(dict.fromkeys(facts.tolist()))
    per_fact = [com[facts == f] for f in names]
    means = np.array([v.mean() for v in per_fact])
    return {
        "mean_over_facts": float(means.mean()) if means.size else None,
        "mean_ci": bootstrap_ci(means, draws, seed),
        "mean_ci_facts_and_prompts": facts_and_items_ci(per_fact, draws, seed),
    }

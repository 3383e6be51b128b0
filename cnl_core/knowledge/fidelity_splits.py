"""Fidelity's split groups: sets over several prompts per side, facts against CNL's capability agreement.

Every group draws from a seeded generator of its own, so one group's draws do not move with another's size (round
one's capability baseline moved with the number of facts: 0.236, 0.283, 0.305 on the same samples). Where the
interval is over draws, the draws share nothing (disjoint samples, disjoint facts), so treating them as
independent is right; where draws would overlap (a fact's halvings), they are averaged within their fact and the
interval is over facts.
- fact split: a fact's wordings in two halves (several halvings averaged per fact; interval over facts);
- relation split: a relation's facts in disjoint groups of two halves, one wording at a time (averaged over the
  wordings per group; interval over the groups, which share no fact);
- capability split: two groups of capability samples, each draw on samples no other draw uses;
- capability vs unrelated: a capability half against as many fact prompts (an empirical null).
`size_cap` caps every set at that many top-scored neurons (scoring.common_set), the like-for-like comparison at
one set size: the draws are the same at every cap.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import torch

from ..compare.overlap import compare_sets
from .facts import Fact, FactSet
from .intervals import GroupStat, group_stat
from .scoring import ParaphraseScores, common_set

if TYPE_CHECKING:
    from .fidelity import FidelityConfig

SPLIT_GROUPS = ("fact split", "relation split", "capability split", "capability vs unrelated")


def split_iou(
    a: torch.Tensor, b: torch.Tensor, cfg: FidelityConfig, size_cap: int | None = None
) -> tuple[float, float, float]:
    """(IoU, chance IoU, mean size) of the common sets of two groups of prompts' scores."""
    sa = common_set(a, cfg.tau, cfg.p, cfg.sign, size_cap)
    sb = common_set(b, cfg.tau, cfg.p, cfg.sign, size_cap)
    c = compare_sets(sa, sb)
    return (float("nan") if not (len(sa) or len(sb)) else c.iou), c.chance_iou, (len(sa) + len(sb)) / 2


def split_groups(
    facts: list[Fact],
    facts_set: FactSet,
    scores: ParaphraseScores,
    capability: torch.Tensor,
    cfg: FidelityConfig,
    size_cap: int | None = None,
) -> list[GroupStat]:
    """The four split groups (module doc), every set capped at `size_cap` neurons when it is given."""
    half = min(len(t.templates) for t in facts_set.relations) // 2
    rng = random.Random(f"{cfg.seed}/fact split")
    fact_units = []
    for f in facts:  # a fact's paraphrases in two disjoint halves, several random halvings
        ids = [p.id for p in facts_set.paraphrases(f)]
        draws = []
        for _ in range(min(cfg.draws, 10)):
            order = rng.sample(ids, len(ids))
            draws.append(split_iou(scores.rows(order[:half]), scores.rows(order[half : 2 * half]), cfg, size_cap))
        fact_units.append(draws)
    relation_units = []
    by_relation: dict[str, list[Fact]] = {}
    for f in facts:
        by_relation.setdefault(f.relation, []).append(f)
    for rel, members in by_relation.items():  # disjoint groups of 2 x half facts, every wording
        shuffled = random.Random(f"{cfg.seed}/relation split/{rel}").sample(members, len(members))
        n_t = len(facts_set.relation(rel).templates)
        for start in range(0, len(shuffled) - 2 * half + 1, 2 * half):
            chosen = shuffled[start : start + 2 * half]
            per_wording = []
            for t in range(n_t):
                ids = [f"{m.id}#{t}" for m in chosen]
                per_wording.append(split_iou(scores.rows(ids[:half]), scores.rows(ids[half:]), cfg, size_cap))
            relation_units.append(per_wording)
    cap_units, null_units = [], []
    rng = random.Random(f"{cfg.seed}/capability split")
    shuffled_rows = rng.sample(range(capability.shape[0]), capability.shape[0])
    for d in range(min(cfg.draws, len(shuffled_rows) // (2 * half))):  # each draw on samples of its own
        rows = shuffled_rows[2 * half * d : 2 * half * (d + 1)]
        a, b = capability[rows[:half]], capability[rows[half:]]
        cap_units.append([split_iou(a, b, cfg, size_cap)])
        null_units.append([split_iou(a, scores.rows(rng.sample(scores.ids, half)), cfg, size_cap)])
    return [
        group_stat(SPLIT_GROUPS[0], fact_units, cfg.bootstrap, cfg.seed, size_cap=size_cap),
        group_stat(SPLIT_GROUPS[1], relation_units, cfg.bootstrap, cfg.seed, interval="draws", size_cap=size_cap),
        group_stat(SPLIT_GROUPS[2], cap_units, cfg.bootstrap, cfg.seed, interval="draws", size_cap=size_cap),
        group_stat(SPLIT_GROUPS[3], null_units, cfg.bootstrap, cfg.seed, interval="draws", size_cap=size_cap),
    ]

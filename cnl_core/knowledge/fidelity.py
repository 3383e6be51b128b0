"""Fidelity: do prompts with the same meaning localize to the same neurons? (the paper's first half)

Each paraphrase gets its own Knowledge-Neurons set (score >= tau x its largest score). Pairs of sets are
grouped by what the two prompts share, and each group's IoU is averaged per fact, then over facts, with an
interval that resamples facts, then the wordings within each fact drawn (intervals.py: a two-level bootstrap):
- same fact, other wording: what a fact-level localization needs to be high;
- other fact with the same answer word (Spain and Mexico: " Spanish"), in the same wording and in another wording
  apart (round one mixed the two, and a shared wording alone already raises the IoU);
- other fact of the relation, same wording: what the wording alone gives;
- other fact, other wording; other relation: how much any two prompts share (an empirical null).

Then sets over several prompts, the commonality rule that CNL applies to a capability (neurons at least a
fraction p of the prompts select), compared at the same number of prompts per side (fidelity_splits.py): a fact's
wordings in two halves, a relation's facts in two groups in one wording, CNL's own split agreement on a capability
dataset (default add1_content, the digits of one-digit sums: no shared format token, as facts have none), and a
capability set against fact prompts (an empirical null). Like for like: the capability prompts get as many
demonstrations as the fact prompts (`capability_shots`), and the split groups are given again with every set
capped at each of `match_sizes` neurons (top-scored), since the fact and the capability sets differ in size.
Every IoU comes with the hypergeometric chance IoU of sets of the same sizes.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.samples import DatasetSpec, Sample, get_dataset
from ..errors import ParameterError
from ..evaluate.accuracy import fewshot_prefix
from ..locate.collect import collect_scores
from ..locate.scorers import ScoreConfig
from ..model.loading import LoadedModel
from ..options import SCORE_POSITIONS
from ..progress import Progress
from ..provenance import stamp
from ..schema import result_kind
from ..serialize import to_data
from .facts import Fact, FactSet
from .fidelity_splits import SPLIT_GROUPS, split_groups
from .intervals import ONCE, GroupStat, group_stat
from .scoring import iou_matrix, kn_masks, paraphrase_scores

PAIR_GROUPS = (
    "same fact, other wording",
    "other fact, same answer, same wording",
    "other fact, same answer, other wording",
    "other fact, same wording",
    "other fact, other wording",
    "other relation",
)
__all__ = ["PAIR_GROUPS", "SPLIT_GROUPS", "FidelityConfig", "FidelityResult", "GroupStat", "run_fidelity"]


@dataclass(frozen=True)
class FidelityConfig:
    """Scoring and selection (the KN rule), the commonality share, and the capability compared against."""

    method: str = "grad_x_act"
    ig_steps: int = 20
    tau: float = 0.2
    sign: str = "positive"
    p: float = 0.5  # sets over several prompts: neurons selected by at least this share of them
    position: str = SCORE_POSITIONS[0]  # where fact prompts are scored (the capability: at its answer, as CNL)
    capability: str = "add1_content"  # the demo's capability, scored on the digits only (no format token)
    draws: int = 20  # capability split draws (each on samples of its own); a fact's halvings: at most 10
    seed: int = 0
    bootstrap: int = 1000
    # like for like: the capability's prompts get as many demonstrations as the fact prompts (None), or this many
    capability_shots: int | None = None
    # like for like: the split groups again with every set capped at each of these sizes (its top-scored neurons)
    match_sizes: tuple[int, ...] = (5, 10, 20)


@result_kind(
    "cnl.knowledge.fidelity",
    order=(
        "model",
        "facts",
        "shots",
        "config",
        "score",
        "fact_ids",
        "per_paraphrase_size",
        "pairs",
        "splits",
        "matched",
    ),
)
@dataclass
class FidelityResult:
    model: str
    facts: str
    shots: int
    config: FidelityConfig
    fact_ids: list[str]
    per_paraphrase_size: dict[str, int]
    pairs: list[GroupStat]
    splits: list[GroupStat]
    per_fact: list[dict] = field(default_factory=list)
    score: dict = field(default_factory=dict)
    created: str | None = None
    versions: dict = field(default_factory=dict)
    matched: list[GroupStat] = field(default_factory=list)  # the split groups at matched set sizes

    def group(self, name: str, size_cap: int | None = None) -> GroupStat:
        """A group by name (`size_cap`: its like-for-like version with sets capped at that size)."""
        pool = [*self.pairs, *self.splits] if size_cap is None else self.matched
        return next(g for g in pool if g.name == name and g.size_cap == size_cap)


def _pair_group(f: Fact, g: Fact, ti: int, tj: int) -> tuple[str, int]:
    """The group of the pair (f's wording ti, g's wording tj), and the other side's wording as the two-level
    bootstrap weighs it: an index into f's templates, or ONCE (the same wording, or another relation's)."""
    same_relation = g.relation == f.relation
    other = ONCE if not same_relation or ti == tj else tj
    if g.id == f.id:
        return PAIR_GROUPS[0], other
    if g.answer == f.answer:
        return PAIR_GROUPS[1 if same_relation and ti == tj else 2], other
    if not same_relation:
        return PAIR_GROUPS[5], other
    return PAIR_GROUPS[3 if ti == tj else 4], other


def _pair_groups(
    facts: list[Fact], n_templates: dict[str, int], masks: torch.Tensor, cfg: FidelityConfig, ids: list[str]
) -> tuple[list[GroupStat], list[dict]]:
    iou, chance = iou_matrix(masks)
    sizes = masks.sum(1).float()
    row = {pid: k for k, pid in enumerate(ids)}
    per_group: dict[str, list[list]] = {g: [] for g in PAIR_GROUPS}
    per_fact = []
    for f in facts:
        mine = [row[f"{f.id}#{t}"] for t in range(n_templates[f.relation])]
        buckets: dict[str, list] = {g: [] for g in PAIR_GROUPS}
        for g_fact in facts:
            theirs = [row[f"{g_fact.id}#{t}"] for t in range(n_templates[g_fact.relation])]
            for ti, i in enumerate(mine):
                for tj, j in enumerate(theirs):
                    if g_fact.id == f.id and tj <= ti:
                        continue
                    group, other = _pair_group(f, g_fact, ti, tj)
                    size = float((sizes[i] + sizes[j]) / 2)
                    buckets[group].append((float(iou[i, j]), float(chance[i, j]), size, ti, other))
        for g in PAIR_GROUPS:
            per_group[g].append(buckets[g])
        same = [v[0] for v in buckets[PAIR_GROUPS[0]] if not np.isnan(v[0])]
        same_wording = [v[0] for v in buckets[PAIR_GROUPS[3]] if not np.isnan(v[0])]
        per_fact.append(
            {
                "fact": f.id,
                "same_fact_iou": float(np.mean(same)) if same else None,
                "same_wording_iou": float(np.mean(same_wording)) if same_wording else None,
                "mean_set_size": float(sizes[mine].mean()),
            }
        )
    templates, relations = [n_templates[f.relation] for f in facts], [f.relation for f in facts]
    stats = [
        group_stat(g, per_group[g], cfg.bootstrap, cfg.seed, templates=templates, relations=relations)
        for g in PAIR_GROUPS
    ]
    return stats, per_fact


def run_fidelity(
    lm: LoadedModel,
    facts_set: FactSet,
    fact_ids: list[str] | None = None,
    cfg: FidelityConfig | None = None,
    *,
    capability_n: int | None = None,
    batch_size: int | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> FidelityResult:
    """Score every paraphrase of the chosen facts (default: all), then compare their sets (see the module doc).
    The capability split scores `capability_n` samples (default: enough for `draws` disjoint draws, up to the
    dataset's size) and draws each split from samples no other draw uses."""
    cfg = cfg or FidelityConfig()
    facts = facts_set.subset(fact_ids) if fact_ids is not None else list(facts_set.facts)
    if len(facts) < 2:
        raise ParameterError("Fidelity compares facts with each other: choose at least two facts.")
    half = min(len(t.templates) for t in facts_set.relations) // 2
    capability_n = cfg.draws * 2 * half if capability_n is None else capability_n  # disjoint draws: independent
    if capability_n < 2 * half:
        raise ParameterError(
            f"The capability split compares two groups of {half} samples: score at least {2 * half} capability samples."
        )
    paraphrases = [p for f in facts for p in facts_set.paraphrases(f)]
    scores = paraphrase_scores(
        lm,
        facts_set,
        paraphrases,
        cfg.method,
        cfg.ig_steps,
        position=cfg.position,
        batch_size=batch_size,
        use_cache=use_cache,
        progress=progress,
        cancel=cancel,
    )
    masks = kn_masks(scores.scores, cfg.tau, cfg.sign)
    n_templates = {r.name: len(r.templates) for r in facts_set.relations}
    pairs, per_fact = _pair_groups(facts, n_templates, masks, cfg, scores.ids)
    shots = facts_set.shots if cfg.capability_shots is None else cfg.capability_shots
    cap_spec, demos = capability_with_shots(cfg.capability, shots, cfg.seed)
    pool = cap_spec.rows()
    cap_ids = [s.id for s in random.Random(cfg.seed).sample(pool, min(capability_n, len(pool)))]
    cap_cfg = ScoreConfig(method=cfg.method, ig_steps=cfg.ig_steps)
    cap = collect_scores(
        lm, cap_spec, cap_ids, cap_cfg, batch_size=batch_size, use_cache=use_cache, progress=progress, cancel=cancel
    )
    splits = split_groups(facts, facts_set, scores, cap.scores, cfg)
    matched = [g for k in cfg.match_sizes for g in split_groups(facts, facts_set, scores, cap.scores, cfg, k)]
    return FidelityResult(
        model=lm.spec.name,
        facts=facts_set.name,
        shots=facts_set.shots,
        config=cfg,
        fact_ids=[f.id for f in facts],
        per_paraphrase_size=dict(zip(scores.ids, masks.sum(1).tolist())),
        pairs=pairs,
        splits=splits,
        per_fact=per_fact,
        score={
            "facts": {**to_data(scores.score_cfg), "position": cfg.position},
            "capability": to_data(cap.cfg or cap_cfg),
            "capability_samples": cap_ids,
            "capability_shots": shots,
            "capability_demonstrations": demos,
        },
        **stamp(),
        matched=matched,
    )


def capability_with_shots(name: str, shots: int, seed: int) -> tuple[DatasetSpec, list[str]]:
    """The capability dataset with `shots` demonstrations before every prompt (like for like with few-shot fact
    prompts), and the demonstrations' ids: drawn with the seed, and left out of the samples scored. 0: the
    dataset itself (so its cached scores serve)."""
    spec = get_dataset(name)
    if shots == 0:
        return spec, []
    demos = random.Random(f"{seed}/capability shots").sample(spec.rows(), shots)
    prefix, taken = fewshot_prefix(demos), {d.id for d in demos}
    rows = [Sample(s.id, prefix + s.prompt, s.answer, s.target, s.choices) for s in spec.rows() if s.id not in taken]
    derived = DatasetSpec(
        f"{name}-{shots}shot",
        f"{spec.description}; {shots} demonstrations before each prompt",
        spec.source,
        spec.kind,
        f"{spec.prompt_format}, after {shots} demonstrations (prompt + answer, a blank line after each)",
        lambda: rows,
        expected_rows=len(rows),
        max_new_tokens=spec.max_new_tokens,
    )
    return derived, [d.id for d in demos]

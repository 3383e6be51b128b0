"""Fidelity: do prompts with the same meaning localize to the same neurons? (the paper's first half)

Each paraphrase gets its own Knowledge-Neurons set (score >= tau x its largest score). Pairs of sets are
grouped by what the two prompts share, and each group's IoU is averaged per fact, then over facts, with a
bootstrap interval over facts:
- same fact, other wording: what a fact-level localization needs to be high;
- other fact with the same answer word (Spain and Mexico: " Spanish"): what the answer token alone gives;
- other fact of the relation, same wording: what the wording alone gives;
- other fact, other wording; other relation: how much any two prompts share (an empirical null).

Then sets over several prompts, the commonality rule that CNL applies to a capability (neurons at least a
fraction p of the prompts select), compared at the same number of prompts per side:
- fact split: one fact's paraphrases in two disjoint halves (same fact, other wordings);
- relation split: two disjoint groups of facts of one relation in one wording (same relation, other facts);
- capability split: CNL's own split agreement on a capability dataset (default add1_content, the digits of
  one-digit sums: no shared format token, as facts have none), drawn many times, each draw on samples of its own
  (independent draws, so the interval over draws means what it says);
- capability vs unrelated: a capability set against a set from as many fact prompts (an empirical null).
Every IoU comes with the hypergeometric chance IoU of sets of the same sizes.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from ..compare.overlap import compare_sets
from ..data.samples import get_dataset
from ..errors import ParameterError
from ..evaluate.stats import bootstrap_ci
from ..locate.collect import collect_scores
from ..locate.scorers import ScoreConfig
from ..model.loading import LoadedModel
from ..options import SCORE_POSITIONS
from ..progress import Progress
from ..provenance import stamp
from ..schema import result_kind
from ..serialize import to_data
from .facts import Fact, FactSet
from .scoring import ParaphraseScores, common_set, iou_matrix, kn_masks, paraphrase_scores

PAIR_GROUPS = (
    "same fact, other wording",
    "other fact, same answer",
    "other fact, same wording",
    "other fact, other wording",
    "other relation",
)
SPLIT_GROUPS = ("fact split", "relation split", "capability split", "capability vs unrelated")


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
    draws: int = 20  # random split pairs per split group
    seed: int = 0
    bootstrap: int = 1000


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


@result_kind(
    "cnl.knowledge.fidelity",
    order=("model", "facts", "shots", "config", "score", "fact_ids", "per_paraphrase_size", "pairs", "splits"),
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

    def group(self, name: str) -> GroupStat:
        return next(g for g in [*self.pairs, *self.splits] if g.name == name)


def _stat(name: str, per_unit: list[list[tuple[float, float, float]]], cfg: FidelityConfig) -> GroupStat:
    """Per unit (fact or draw), its pairs' (IoU, chance, mean size); NaN IoUs (two empty sets) are counted apart."""
    undefined = sum(1 for unit in per_unit for v in unit if np.isnan(v[0]))
    means, chances, sizes, pairs = [], [], [], 0
    for unit in per_unit:
        ok = [v for v in unit if not np.isnan(v[0])]
        if ok:
            means.append(float(np.mean([v[0] for v in ok])))
            chances.append(float(np.mean([v[1] for v in ok])))
            sizes.append(float(np.mean([v[2] for v in ok])))
            pairs += len(ok)
    if not means:
        return GroupStat(name, None, None, None, 0, 0, 0.0, undefined)
    return GroupStat(
        name,
        float(np.mean(means)),
        bootstrap_ci(np.array(means), cfg.bootstrap, cfg.seed),
        float(np.mean(chances)),
        pairs,
        len(means),
        float(np.mean(sizes)),
        undefined,
    )


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
                    if g_fact.id == f.id:
                        if tj <= ti:
                            continue
                        group = PAIR_GROUPS[0]
                    elif g_fact.answer == f.answer:
                        group = PAIR_GROUPS[1]
                    elif g_fact.relation != f.relation:
                        group = PAIR_GROUPS[4]
                    else:
                        group = PAIR_GROUPS[2] if ti == tj else PAIR_GROUPS[3]
                    buckets[group].append((float(iou[i, j]), float(chance[i, j]), float((sizes[i] + sizes[j]) / 2)))
        for g in PAIR_GROUPS:
            per_group[g].append(buckets[g])
        same = [v[0] for v in buckets[PAIR_GROUPS[0]] if not np.isnan(v[0])]
        other = [v[0] for v in buckets[PAIR_GROUPS[2]] if not np.isnan(v[0])]
        per_fact.append(
            {
                "fact": f.id,
                "same_fact_iou": float(np.mean(same)) if same else None,
                "same_wording_iou": float(np.mean(other)) if other else None,
                "mean_set_size": float(sizes[mine].mean()),
            }
        )
    return [_stat(g, per_group[g], cfg) for g in PAIR_GROUPS], per_fact


def _split_iou(a: torch.Tensor, b: torch.Tensor, cfg: FidelityConfig) -> tuple[float, float, float]:
    """(IoU, chance IoU, mean size) of the common sets of two groups of prompts' scores."""
    sa, sb = common_set(a, cfg.tau, cfg.p, cfg.sign), common_set(b, cfg.tau, cfg.p, cfg.sign)
    c = compare_sets(sa, sb)
    return (float("nan") if not (len(sa) or len(sb)) else c.iou), c.chance_iou, (len(sa) + len(sb)) / 2


def _split_groups(
    facts: list[Fact], facts_set: FactSet, scores: ParaphraseScores, capability: torch.Tensor, cfg: FidelityConfig
) -> list[GroupStat]:
    # each group draws from its own seeded generator, so that one group's draws do not move with another's size
    # (round one's capability baseline moved with the number of facts: 0.236, 0.283, 0.305 on the same samples)
    rng = random.Random(f"{cfg.seed}/fact split")
    fact_units, relation_units = [], []
    for f in facts:  # a fact's paraphrases in two disjoint halves, several random halvings
        ids = [p.id for p in facts_set.paraphrases(f)]
        half = len(ids) // 2
        draws = []
        for _ in range(min(cfg.draws, 10)):
            order = rng.sample(ids, len(ids))
            draws.append(_split_iou(scores.rows(order[:half]), scores.rows(order[half : 2 * half]), cfg))
        fact_units.append(draws)
    half = min(len(t.templates) for t in facts_set.relations) // 2
    by_relation: dict[str, list[Fact]] = {}
    for f in facts:
        by_relation.setdefault(f.relation, []).append(f)
    rng = random.Random(f"{cfg.seed}/relation split")
    for rel, members in by_relation.items():  # half-many other facts per side, one wording
        if len(members) < 2 * half:
            continue
        n_t = len(facts_set.relation(rel).templates)
        for _ in range(cfg.draws):
            chosen, t = rng.sample(members, 2 * half), rng.randrange(n_t)
            ids = [f"{m.id}#{t}" for m in chosen]
            relation_units.append([_split_iou(scores.rows(ids[:half]), scores.rows(ids[half:]), cfg)])
    cap_units, null_units = [], []
    all_ids = scores.ids
    rng = random.Random(f"{cfg.seed}/capability split")
    order = rng.sample(range(capability.shape[0]), capability.shape[0])
    for d in range(min(cfg.draws, len(order) // (2 * half))):  # capability: each draw on samples of its own (the
        rows = order[
            2 * half * d : 2 * half * (d + 1)
        ]  # draws independent), two groups of `half`; null: vs fact prompts
        a, b = capability[rows[:half]], capability[rows[half:]]
        cap_units.append([_split_iou(a, b, cfg)])
        null_units.append([_split_iou(a, scores.rows(rng.sample(all_ids, half)), cfg)])
    return [
        _stat(SPLIT_GROUPS[0], fact_units, cfg),
        _stat(SPLIT_GROUPS[1], relation_units, cfg),
        _stat(SPLIT_GROUPS[2], cap_units, cfg),
        _stat(SPLIT_GROUPS[3], null_units, cfg),
    ]


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
    cap_spec = get_dataset(cfg.capability)
    cap_ids = [s.id for s in random.Random(cfg.seed).sample(cap_spec.rows(), min(capability_n, len(cap_spec.rows())))]
    cap_cfg = ScoreConfig(method=cfg.method, ig_steps=cfg.ig_steps)
    cap = collect_scores(
        lm, cap_spec, cap_ids, cap_cfg, batch_size=batch_size, use_cache=use_cache, progress=progress, cancel=cancel
    )
    splits = _split_groups(facts, facts_set, scores, cap.scores, cfg)
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
        },
        **stamp(),
    )

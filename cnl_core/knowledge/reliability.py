"""Reliability, and the control that decides "individual knowledge": does switching a fact's located neurons off
(or up) move that fact, or its whole relation?

For each fact, its Knowledge-Neurons set is located on some of its paraphrases (`locate_on`, neurons that at
least a share p of them select), then zeroed or amplified while the model answers three kinds of prompt:
- the fact's other, held-out paraphrases (the same fact, other wordings);
- other facts of the SAME relation (one paraphrase each): a set that erases these carries the relation (or its
  answers' output path), not the fact;
- facts of other relations (one paraphrase each).
Round one drew "other facts" from every relation, which hid the second line; both are reported apart here.

The same test is run on the fact's *fact-specific* neurons: its set minus its relation's common set (neurons that
at least a share p of the relation's other facts' sets hold, located the same way: leave-one-out, so the fact's
own set does not define its relation's). If individual facts had neurons of their own, zeroing those would move
the held-out paraphrases and spare the relation's other facts.

Every set is compared with as many random neurons per layer (avoiding the set; several seeded draws). Means are
per fact, intervals bootstrap over facts (`ci`), and over facts then the prompts within each fact
(`ci_facts_and_prompts`, intervals.py's two-level bootstrap: the wordings and other facts tested vary too). A fact
whose set comes out empty is counted apart.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError
from ..evaluate.controls import control_seed, random_like
from ..evaluate.stats import bootstrap_ci
from ..model.hooks import Intervention, intervene
from ..model.loading import LoadedModel
from ..model.neurons import NeuronSet
from ..options import SCORE_POSITIONS
from ..progress import Progress, check_cancel, report
from ..provenance import stamp
from ..schema import result_kind
from .facts import FactSet, Paraphrase
from .intervals import facts_and_items_ci
from .probe import answer_stats
from .scoring import common_set, paraphrase_scores

TARGETS = ("held-out paraphrases", "same relation, other facts", "other relations")
SETS = ("located", "fact-specific")  # the fact's set; the same minus its relation's common set
NEURONS = ("located", "random", "fact-specific", "fact-specific random")


@dataclass(frozen=True)
class ReliabilityConfig:
    method: str = "grad_x_act"
    ig_steps: int = 20
    tau: float = 0.2
    p: float = 0.5
    sign: str = "positive"
    position: str = SCORE_POSITIONS[0]  # where fact prompts are scored (options.SCORE_POSITIONS)
    locate_on: int = 3  # paraphrases the set is located on; the rest are held out
    modes: tuple[str, ...] = ("zero", "amplify")
    factor: float = 2.0
    control_draws: int = 3
    other_facts: int = 6  # prompts tested per fact in each of the two other-fact groups (one paraphrase each)
    drop: float = 0.5  # a fact counts as erased when p(answer) falls below this share of its unmodified value
    seed: int = 0
    bootstrap: int = 1000


FACT_SPECIFIC = "the fact's set minus the neurons that at least a share p of its relation's other facts' sets hold"


def _contrasts(r: ReliabilityResult) -> list[dict]:
    cfg = r.config
    return [c for m in cfg.modes for c in contrasts(r.per_fact, m, cfg.bootstrap, cfg.seed)]


@result_kind(
    "cnl.knowledge.reliability",
    computed={  # for readers of the file, never read back
        "targets": lambda r: list(TARGETS),
        "fact_specific": lambda r: FACT_SPECIFIC,
        "contrasts": _contrasts,
    },
    order=("model", "facts", "config", "targets", "fact_specific", "summary", "per_fact", "contrasts"),
)
@dataclass
class ReliabilityResult:
    model: str
    facts: str
    config: ReliabilityConfig
    per_fact: list[dict]
    summary: list[dict]  # one row per (mode, neurons, target): mean change of log p, interval, erased share
    empty_sets: list[str] = field(default_factory=list)
    created: str | None = None
    versions: dict = field(default_factory=dict)

    def row(self, mode: str, neurons: str, target: str) -> dict:
        return next(r for r in self.summary if (r["mode"], r["neurons"], r["target"]) == (mode, neurons, target))


def _logps(lm: LoadedModel, prompts: list[Paraphrase], iv: Intervention | None) -> np.ndarray:
    with intervene(lm, iv):
        return answer_stats(lm, [(p.text, p.answer) for p in prompts]).logprob.numpy()


def relation_common_set(sets: dict[str, NeuronSet], others: list[str], p: float) -> NeuronSet | None:
    """Neurons held by at least a share p of these facts' sets (None: no other fact to say what is common)."""
    if not others:
        return None
    grid = sets[others[0]].grid
    counts = np.zeros(grid.total, dtype=int)
    for f in others:
        counts[sets[f].flat] += 1
    return NeuronSet.from_flat(grid, np.flatnonzero(counts >= p * len(others) - 1e-9))


def _without(a: NeuronSet, b: NeuronSet | None) -> NeuronSet:
    return a if b is None else NeuronSet.from_flat(a.grid, np.setdiff1d(a.flat, b.flat))


def run_reliability(
    lm: LoadedModel,
    facts_set: FactSet,
    fact_ids: list[str] | None = None,
    cfg: ReliabilityConfig | None = None,
    *,
    batch_size: int | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ReliabilityResult:
    """Locate each fact on some paraphrases; intervene with its set and its fact-specific part; measure held-out
    paraphrases, other facts of its relation and of other relations, against random controls."""
    cfg = cfg or ReliabilityConfig()
    facts = facts_set.subset(fact_ids) if fact_ids is not None else list(facts_set.facts)
    if len(facts) < 2:
        raise ParameterError("Reliability tests a fact against other facts: choose at least two facts.")
    rng = random.Random(cfg.seed)
    paras = {f.id: facts_set.paraphrases(f) for f in facts}
    if min(len(v) for v in paras.values()) <= cfg.locate_on:
        raise ParameterError(f"Locating on {cfg.locate_on} paraphrases leaves none held out; lower it.")
    every = [p for f in facts for p in paras[f.id]]
    scores = paraphrase_scores(
        lm,
        facts_set,
        every,
        cfg.method,
        cfg.ig_steps,
        position=cfg.position,
        batch_size=batch_size,
        use_cache=use_cache,
        progress=progress,
        cancel=cancel,
    )
    base = dict(zip([p.id for p in every], _logps(lm, every, None)))
    split, sets = {}, {}
    for f in facts:  # every fact's located and held-out paraphrases first: the relation sets need them all
        order = rng.sample(paras[f.id], len(paras[f.id]))
        split[f.id] = (order[: cfg.locate_on], order[cfg.locate_on :])
        sets[f.id] = common_set(scores.rows([p.id for p in split[f.id][0]]), cfg.tau, cfg.p, cfg.sign)
    per_fact, empty = [], []
    for k, f in enumerate(facts):
        check_cancel(cancel, k, len(facts), "facts")
        located_on, held = split[f.id]
        same = [g for g in facts if g.id != f.id and g.relation == f.relation]
        other = [g for g in facts if g.relation != f.relation]
        groups = [held] + [
            [rng.choice(paras[g.id]) for g in rng.sample(pool, min(cfg.other_facts, len(pool)))]
            for pool in (same, other)
        ]
        neurons = sets[f.id]
        if not len(neurons):
            empty.append(f.id)
            continue
        relation = relation_common_set(sets, [g.id for g in same], cfg.p)
        specific = _without(neurons, relation)
        tested = [p for g in groups for p in g]
        before = np.array([base[p.id] for p in tested])
        bounds = np.cumsum([0] + [len(g) for g in groups])
        row = {
            "fact": f.id,
            "n_neurons": len(neurons),
            "n_relation_common": None if relation is None else len(relation),
            "n_fact_specific": len(specific),
            "located_on": [p.id for p in located_on],
            "held_out": [p.id for p in held],
            "same_relation": [p.id for p in groups[1]],
            "other_relations": [p.id for p in groups[2]],
        }
        for s, chosen in zip(SETS, (neurons, specific)):
            if not len(chosen):
                continue
            controls = [
                random_like(chosen, control_seed(cfg.seed, d, "fact", group=k), chosen)
                for d in range(cfg.control_draws)
            ]
            for mode in cfg.modes:
                located = _logps(lm, tested, Intervention(chosen, mode, cfg.factor)) - before
                random_ = (
                    np.mean([_logps(lm, tested, Intervention(c, mode, cfg.factor)) - before for c in controls], 0)
                    if controls
                    else np.full(len(tested), np.nan)
                )
                names = ("located", "random") if s == SETS[0] else ("fact-specific", "fact-specific random")
                for who, delta in zip(names, (located, random_)):
                    for t, target in enumerate(TARGETS):
                        d = delta[bounds[t] : bounds[t + 1]]
                        row[f"{mode}/{who}/{target}"] = (
                            None
                            if not d.size
                            else {
                                "delta_logp": float(np.mean(d)),
                                "erased": float(np.mean(d < np.log(cfg.drop))),
                                "per_prompt": d.tolist(),
                            }
                        )
        per_fact.append(row)
        report(progress, k + 1, len(facts), f"reliability: {f.id}")
    return ReliabilityResult(lm.spec.name, facts_set.name, cfg, per_fact, _summary(per_fact, cfg), empty, **stamp())


def _summary(per_fact: list[dict], cfg: ReliabilityConfig) -> list[dict]:
    summary = []
    for mode in cfg.modes:
        for who in NEURONS:
            for target in TARGETS:
                cells = [c for r in per_fact if (c := r.get(f"{mode}/{who}/{target}")) is not None]
                vals = np.array([c["delta_logp"] for c in cells])
                erased = np.array([c["erased"] for c in cells])
                summary.append(
                    {
                        "mode": mode,
                        "neurons": who,
                        "target": target,
                        "facts": int(vals.size),
                        "delta_logp": float(vals.mean()) if vals.size else None,
                        "ci": bootstrap_ci(vals, cfg.bootstrap, cfg.seed),
                        # facts, then the prompts within each fact (files from before it: None)
                        "ci_facts_and_prompts": facts_and_items_ci(
                            [np.array(c["per_prompt"]) for c in cells if "per_prompt" in c], cfg.bootstrap, cfg.seed
                        ),
                        "erased": float(erased.mean()) if erased.size else None,
                    }
                )
    return summary


CONTRASTS = ((TARGETS[0], TARGETS[1]), (TARGETS[1], TARGETS[2]))  # fact vs its relation; relation vs the rest


def contrasts(per_fact: list[dict], mode: str = "zero", bootstrap: int = 1000, seed: int = 0) -> list[dict]:
    """Paired per fact: how much more a set moves the held-out paraphrases than its relation's other facts, and
    those than other relations (change of log p, [95% CI over facts]). A fact's own neurons would make the first
    large; a relation's, the second."""
    out = []
    for who in SETS:
        for a, b in CONTRASTS:
            d = np.array(
                [
                    r[f"{mode}/{who}/{a}"]["delta_logp"] - r[f"{mode}/{who}/{b}"]["delta_logp"]
                    for r in per_fact
                    if r.get(f"{mode}/{who}/{a}") and r.get(f"{mode}/{who}/{b}")
                ]
            )
            out.append(
                {
                    "mode": mode,
                    "neurons": who,
                    "contrast": f"{a} minus {b}",
                    "facts": int(d.size),
                    "delta_logp": float(d.mean()) if d.size else None,
                    "ci": bootstrap_ci(d, bootstrap, seed),
                }
            )
    return out

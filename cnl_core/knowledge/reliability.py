"""Reliability: does switching a fact's located neurons off (or up) move that fact, and only that fact?

For each fact, its Knowledge-Neurons set is located on some of its paraphrases (`locate_on`, neurons that
at least a share p of them select), then zeroed or amplified while the model answers the fact's other,
held-out paraphrases, and prompts of other facts. The change of log p(answer) is compared with as many
random neurons per layer (avoiding the located ones; several seeded draws). A fact's neurons are
reliable when the held-out paraphrases move clearly more than other facts and than random neurons.
Means are per fact, intervals bootstrap over facts. A fact whose set comes out empty is counted apart.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ParameterError
from ..evaluate.controls import random_like
from ..evaluate.stats import bootstrap_ci
from ..model.hooks import Intervention, intervene
from ..model.loading import LoadedModel
from ..progress import Progress, check_cancel, report
from ..provenance import stamp
from .facts import FactSet, Paraphrase
from .probe import answer_stats
from .scoring import common_set, paraphrase_scores

TARGETS = ("held-out paraphrases", "other facts")


@dataclass(frozen=True)
class ReliabilityConfig:
    method: str = "grad_x_act"
    ig_steps: int = 20
    tau: float = 0.2
    p: float = 0.5
    sign: str = "positive"
    locate_on: int = 3  # paraphrases the set is located on; the rest are held out
    modes: tuple[str, ...] = ("zero", "amplify")
    factor: float = 2.0
    control_draws: int = 3
    other_facts: int = 6  # prompts of other facts tested per fact (one paraphrase each)
    drop: float = 0.5  # a fact counts as erased when p(answer) falls below this share of its unmodified value
    seed: int = 0
    bootstrap: int = 1000


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

    def to_json(self) -> dict:
        cfg = asdict(self.config)
        cfg["modes"] = list(cfg["modes"])
        return {"kind": "cnl.knowledge.reliability", "model": self.model, "facts": self.facts, "config": cfg,
                "summary": self.summary, "per_fact": self.per_fact, "empty_sets": self.empty_sets,
                "created": self.created, "versions": self.versions}


def _logps(lm: LoadedModel, prompts: list[Paraphrase], iv: Intervention | None) -> np.ndarray:
    with intervene(lm, iv):
        return answer_stats(lm, [(p.text, p.answer) for p in prompts]).logprob.numpy()


def run_reliability(lm: LoadedModel, facts_set: FactSet, fact_ids: list[str] | None = None,
                    cfg: ReliabilityConfig | None = None, *, batch_size: int | None = None, use_cache: bool = True,
                    progress: Progress | None = None, cancel: threading.Event | None = None) -> ReliabilityResult:
    """Locate each fact on some paraphrases, intervene, measure held-out paraphrases, other facts, random controls."""
    cfg = cfg or ReliabilityConfig()
    facts = facts_set.subset(fact_ids) if fact_ids is not None else list(facts_set.facts)
    if len(facts) < 2:
        raise ParameterError("Reliability tests a fact against other facts: choose at least two facts.")
    rng = random.Random(cfg.seed)
    paras = {f.id: facts_set.paraphrases(f) for f in facts}
    if min(len(v) for v in paras.values()) <= cfg.locate_on:
        raise ParameterError(f"Locating on {cfg.locate_on} paraphrases leaves none held out; lower it.")
    every = [p for f in facts for p in paras[f.id]]
    scores = paraphrase_scores(lm, facts_set, every, cfg.method, cfg.ig_steps, batch_size=batch_size,
                               use_cache=use_cache, progress=progress, cancel=cancel)
    base = dict(zip([p.id for p in every], _logps(lm, every, None)))
    per_fact, empty = [], []
    for k, f in enumerate(facts):
        check_cancel(cancel, k, len(facts), "facts")
        order = rng.sample(paras[f.id], len(paras[f.id]))
        located_on, held = order[:cfg.locate_on], order[cfg.locate_on:]
        others = [rng.choice(paras[g.id]) for g in rng.sample([g for g in facts if g.id != f.id],
                                                                 min(cfg.other_facts, len(facts) - 1))]
        neurons = common_set(scores.rows([p.id for p in located_on]), cfg.tau, cfg.p, cfg.sign)
        if not len(neurons):
            empty.append(f.id)
            continue
        tested = held + others
        before = np.array([base[p.id] for p in tested])
        row = {"fact": f.id, "n_neurons": len(neurons), "located_on": [p.id for p in located_on],
               "held_out": [p.id for p in held], "others": [p.id for p in others]}
        controls = [random_like(neurons, cfg.seed + 1000 * k + d, neurons) for d in range(cfg.control_draws)]
        for mode in cfg.modes:
            iv = Intervention(neurons, mode, cfg.factor)
            located = _logps(lm, tested, iv) - before
            random_ = np.mean([_logps(lm, tested, Intervention(c, mode, cfg.factor)) - before for c in controls], 0) \
                if controls else np.full(len(tested), np.nan)
            for who, delta in (("located", located), ("random", random_)):
                for target, part in ((TARGETS[0], slice(0, len(held))), (TARGETS[1], slice(len(held), None))):
                    d = delta[part]
                    row[f"{mode}/{who}/{target}"] = {"delta_logp": float(np.mean(d)),
                                                     "erased": float(np.mean(d < np.log(cfg.drop)))}
        per_fact.append(row)
        report(progress, k + 1, len(facts), f"reliability: {f.id}")
    summary = []
    for mode in cfg.modes:
        for who in ("located", "random"):
            for target in TARGETS:
                vals = np.array([r[f"{mode}/{who}/{target}"]["delta_logp"] for r in per_fact])
                erased = np.array([r[f"{mode}/{who}/{target}"]["erased"] for r in per_fact])
                summary.append({"mode": mode, "neurons": who, "target": target, "facts": int(vals.size),
                                "delta_logp": float(vals.mean()) if vals.size else None,
                                "ci": bootstrap_ci(vals, cfg.bootstrap, cfg.seed),
                                "erased": float(erased.mean()) if erased.size else None})
    return ReliabilityResult(lm.spec.name, facts_set.name, cfg, per_fact, summary, empty, **stamp())

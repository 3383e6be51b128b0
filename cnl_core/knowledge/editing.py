"""Editing one fact at each layer (the paper's Figure 2; Hase et al. 2023): does the located layer predict
where editing works?

At layer l, ROME's rank-one update of the FFN down projection (rome.py: the value optimised for the new answer
with ROME's essence-drift KL term, the averaged key, the key covariance from text), applied for one layer at a
time and undone after it.

Measured per layer: edit success (p(new answer) on the edit prompt, and whether greedy decoding gives it),
paraphrase generalization (the same on the fact's other paraphrases), and beside them the collateral: the
change of log p(true answer) of other facts of the same relation and of other relations (ROME's neighbourhood).
The layers are chosen from the model's depth (`edit_layers`). Next to it, the causal trace of the edit prompt
(`tracing.trace`), compared on the edited layers only: if localization informed editing, editing would work
best where the trace peaks.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ParameterError
from ..evaluate.stats import bootstrap_ci
from ..model.loading import LoadedModel
from ..progress import Progress, check_cancel, report
from ..provenance import stamp
from ..schema import in_file, result_kind
from .facts import Fact, FactSet, Paraphrase
from .keys import key_covariance
from .probe import answer_stats
from .rome import (
    EDIT_LAYER_COUNT,
    EditConfig,
    EditTarget,
    down_weight,
    edit_layers,
    edit_target,
    optimize_edit,
    rank_one_edit,
    rome_update,
)
from .tracing import subject_noise_std, trace

__all__ = [
    "EDIT_LAYER_COUNT",
    "EditConfig",
    "EditingResult",
    "edit_layers",
    "located_vs_best",
    "run_editing",
    "TRACED_SITES",
]


@result_kind("cnl.knowledge.editing", order=("model", "facts", "config", "summary", "per_fact"))
@dataclass
class EditingResult:
    model: str
    facts: str
    config: EditConfig
    layers: list[int] = field(
        metadata=in_file(group="config")
    )  # the layers edited, in place of the config's choice (None: auto)
    per_fact: list[dict]  # fact, new answer, per-layer rows, the edit prompt's traces
    summary: list[dict]  # per layer: means and intervals over facts
    created: str | None = None
    versions: dict = field(default_factory=dict)


def _new_answer(f: Fact, facts: Sequence[Fact], rng: random.Random) -> str:
    """A counterfactual answer: another fact's answer of the same relation (as COUNTERFACT's targets)."""
    pool = sorted({g.answer for g in facts if g.relation == f.relation and g.answer != f.answer})
    if not pool:
        raise ParameterError(f"No other answer of relation '{f.relation}' to edit {f.id} towards.")
    return rng.choice(pool)


TRACED_SITES = ("hidden", "mlp")  # the traces each edited fact is compared with
OTHER_GROUPS = ("same relation", "other relations")  # whose facts the collateral is measured on


def edit_fact_by_layer(
    lm: LoadedModel,
    facts_set: FactSet,
    f: Fact,
    new_answer: str,
    others: list[Paraphrase],
    layers: Sequence[int],
    cfg: EditConfig,
    *,
    use_cache: bool = True,
) -> list[dict]:
    """Edit `f` towards `new_answer` at each layer in turn (weights restored after each); one row per layer. The
    collateral is measured on `others` (prompts of other facts), split by whether they share f's relation."""
    edit, *rest = facts_set.paraphrases(f)
    tests = [(edit.text, new_answer)] + [(p.text, new_answer) for p in rest] + [(p.text, p.answer) for p in others]
    n = 1 + len(rest)
    same = np.array([facts_set.fact(p.fact_id).relation == f.relation for p in others], dtype=bool)
    with lm.lock:
        before = answer_stats(lm, tests)
        target = edit_target(lm, edit, new_answer, cfg.essence_prompt)
        essence_before = _essence(lm, target)
        covariance = (
            key_covariance(lm, layers, cfg.covariance_tokens, use_cache=use_cache)
            if cfg.key_covariance == "text"
            else None
        )
        rows = []
        for layer in layers:
            with torch.enable_grad():
                key, delta = optimize_edit(lm, layer, target, cfg)
            k_star, residual, direction = rome_update(
                lm, layer, edit, key, delta, cfg, None if covariance is None else covariance[layer]
            )
            with rank_one_edit(lm, layer, k_star, residual, direction):
                after = answer_stats(lm, tests)
                essence_after = _essence(lm, target)
            change = (after.logprob[n:] - before.logprob[n:]).numpy()
            row: dict = {
                "layer": layer,
                "p_new_edit": float(after.prob[0]),
                "success": bool(after.greedy[0]),
                "p_new_paraphrases": float(after.prob[1:n].mean()),
                "generalization": float(after.greedy[1:n].float().mean()),
                "other_facts_delta_logp": float(change.mean()) if change.size else 0.0,
                "delta_norm": float(delta.norm()),
                # how far the edit moved what the model says after "{subject} is a" (what ROME's KL term holds)
                "essence_kl": float(torch.sum(essence_before.exp() * (essence_before - essence_after))),
            }
            for group, mask in zip(OTHER_GROUPS, (same, ~same)):
                row[f"{group}_delta_logp"] = float(change[mask].mean()) if mask.any() else None
            rows.append(row)
    return rows


def _essence(lm: LoadedModel, t: EditTarget) -> torch.Tensor:
    """[vocab] log-probabilities of the token after the essence prompt, as the model stands (edited or not)."""
    with torch.no_grad():
        return torch.log_softmax(lm.model(input_ids=t.essence).logits[0, -1].float(), -1)


def _others(f: Fact, facts_set: FactSet, n: int, rng: random.Random) -> list[Paraphrase]:
    """One prompt each of up to n other facts of f's relation and n facts of other relations."""
    out = []
    for same in (True, False):
        pool = [g for g in facts_set.facts if g.id != f.id and (g.relation == f.relation) == same]
        out += [rng.choice(facts_set.paraphrases(g)) for g in rng.sample(pool, min(n, len(pool)))]
    return out


def run_editing(
    lm: LoadedModel,
    facts_set: FactSet,
    fact_ids: list[str] | None = None,
    cfg: EditConfig | None = None,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> EditingResult:
    """Per-layer edits of each chosen fact, next to the causal traces of its edit prompt (`use_cache`: the key
    covariance is read from, and kept in, the cache folder)."""
    cfg = cfg or EditConfig()
    facts = facts_set.subset(fact_ids) if fact_ids is not None else list(facts_set.facts)
    if not facts:
        raise ParameterError("Choose at least one fact to edit.")
    layers = cfg.chosen_layers(lm.grid.n_layers)
    down_weight(lm, layers[0])
    rng = random.Random(cfg.seed)
    std = subject_noise_std(lm, [facts_set.paraphrases(f)[0] for f in facts])
    per_fact = []
    for k, f in enumerate(facts):
        check_cancel(cancel, k, len(facts), "facts")
        new = _new_answer(f, facts_set.facts, rng)
        rows = edit_fact_by_layer(
            lm, facts_set, f, new, _others(f, facts_set, cfg.other_facts, rng), layers, cfg, use_cache=use_cache
        )
        edit = facts_set.paraphrases(f)[0]
        traces = {site: trace(lm, edit, std, cfg.trace_draws, cfg.seed + k, site=site) for site in TRACED_SITES}
        per_fact.append(
            {
                "fact": f.id,
                "new_answer": new,
                "rows": rows,
                "trace": {
                    s: {
                        "peak_layer": t.peak_layer,
                        "effect": t.effect,
                        "p_clean": t.p_clean,
                        "p_corrupt": t.p_corrupt,
                        "informative": t.informative,
                    }
                    for s, t in traces.items()
                },
            }
        )
        report(progress, k + 1, len(facts), f"editing: {f.id} -> {new.strip()}")
    return EditingResult(
        lm.spec.name, facts_set.name, cfg, layers, per_fact, _summary(per_fact, layers, cfg), **stamp()
    )


SUMMARY_KEYS = (
    "p_new_edit",
    "success",
    "p_new_paraphrases",
    "generalization",
    "other_facts_delta_logp",
    *(f"{g}_delta_logp" for g in OTHER_GROUPS),
    "essence_kl",
)


def _summary(per_fact: list[dict], layers: list[int], cfg: EditConfig) -> list[dict]:
    """Per layer: mean [interval over facts] of success, generalization and collateral, and the mean traced effect."""
    out = []
    for i, layer in enumerate(layers):
        row: dict = {"layer": layer}
        for key in SUMMARY_KEYS:
            vals = np.array([float(v) for f in per_fact if (v := f["rows"][i].get(key)) is not None])
            row[key] = float(vals.mean()) if vals.size else None
            row[f"{key}_ci"] = bootstrap_ci(vals, cfg.bootstrap, cfg.seed)
        for site in TRACED_SITES:
            effects = [
                f["trace"][site]["effect"][layer]
                / max(f["trace"][site]["p_clean"] - f["trace"][site]["p_corrupt"], 1e-6)
                for f in per_fact
            ]
            row[f"traced_{site}"] = float(np.mean(effects))
        out.append(row)
    return out


def located_vs_best(result: EditingResult, site: str = "mlp") -> dict:
    """Does the traced peak predict the best edit layer? Per fact, both among the edited layers only (like for
    like): the layer of the largest traced effect and the layer where paraphrase p(new) is highest; over facts the
    mean Pearson correlation of traced effect with paraphrase p(new) across those layers (Hase et al.'s question)."""
    rows, corr = [], []
    for f in result.per_fact:
        gen = np.array([r["p_new_paraphrases"] for r in f["rows"]])
        effect = np.array([f["trace"][site]["effect"][r["layer"]] for r in f["rows"]])
        best = f["rows"][int(gen.argmax())]["layer"]
        rows.append(
            {
                "fact": f["fact"],
                "traced_peak": f["rows"][int(effect.argmax())]["layer"],
                "traced_peak_any_layer": f["trace"][site]["peak_layer"],
                "best_edit_layer": best,
            }
        )
        if gen.std() > 0 and effect.std() > 0:
            corr.append(float(np.corrcoef(effect, gen)[0, 1]))
    return {
        "site": site,
        "facts": rows,
        "mean_correlation": float(np.mean(corr)) if corr else None,
        "correlation_ci": bootstrap_ci(np.array(corr), result.config.bootstrap, result.config.seed),
        "peak_is_best": float(np.mean([r["traced_peak"] == r["best_edit_layer"] for r in rows])),
        "compared_on": "the edited layers",
    }

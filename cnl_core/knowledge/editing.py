"""Editing one fact at each layer (the paper's Figure 2; Hase et al. 2023): does the located layer predict
where editing works?

At layer l, ROME's rank-one update of the FFN down projection: a vector delta, added to the down projection's
output at the subject's last token of the edit prompt, is optimized (Adam, a few steps, an L2 penalty and
ROME's norm clamp) to make a new answer likely; the value wanted there is v* = W k_edit + delta. The key k* is
the down projection's input at the subject's last token averaged over several contexts (keys.py), and C the
keys' second moment on generic text (`key_covariance="text"`, ROME's form; `"identity"` drops it, the round-one
form): W <- W + (v* - W k*) (C^-1 k*)^T / ((C^-1 k*)^T k*), which maps k* to v* and changes the outputs of
keys C says are common least. Reading keys and adding delta go through `neuron_hooks` ([rows, tokens, width]
on every architecture, OPT's flattened FFN included). The edit is applied to the weights inside a context
manager that holds the model lock and puts back a saved copy on exit, whatever happens.

Measured per layer: edit success (p(new answer) on the edit prompt, and whether greedy decoding gives it),
paraphrase generalization (the same on the fact's other paraphrases), and beside them the collateral: the
change of log p(true answer) of other facts of the same relation and of other relations (ROME's neighbourhood).
The layers are chosen from the model's depth (`edit_layers`). Next to it, the causal trace of the edit prompt
(`tracing.trace`), compared on the edited layers only: if localization informed editing, editing would work
best where the trace peaks.
"""

from __future__ import annotations

import copy
import random
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import ParameterError
from ..evaluate.stats import bootstrap_ci
from ..model.hooks import neuron_hooks
from ..model.loading import LoadedModel
from ..options import KEY_COVARIANCES
from ..progress import Progress, check_cancel, report
from ..provenance import stamp
from ..schema import in_file, result_kind
from .facts import Fact, FactSet, Paraphrase
from .keys import COVARIANCE_TOKENS, averaged_key, key_covariance
from .probe import answer_stats
from .tracing import subject_noise_std, subject_positions, trace

EDIT_LAYER_COUNT = 10


def edit_layers(n_layers: int, count: int = EDIT_LAYER_COUNT) -> list[int]:
    """`count` layers spread evenly from the first to the last (every layer when the model has no more)."""
    if count < 1:
        raise ParameterError("Edit at least one layer.")
    if count >= n_layers:
        return list(range(n_layers))
    if count == 1:
        return [n_layers // 2]
    return sorted({round(i * (n_layers - 1) / (count - 1)) for i in range(count)})


@dataclass(frozen=True)
class EditConfig:
    steps: int = 20
    lr: float = 0.5
    weight_decay: float = 0.01  # on |delta|^2 / |original output|^2
    clamp: float = 4.0  # |delta| at most this times |W k| (ROME's clamp_norm_factor)
    layers: tuple[int, ...] | None = None  # None: `layer_count` layers from the model's depth
    layer_count: int = EDIT_LAYER_COUNT
    key_covariance: str = KEY_COVARIANCES[0]
    covariance_tokens: int = COVARIANCE_TOKENS
    key_prefixes: int = 5  # contexts the key is averaged over besides the edit prompt (ROME: 10 generated)
    other_facts: int = 5  # per group: other facts of the same relation, and of other relations
    trace_draws: int = 3
    seed: int = 0
    bootstrap: int = 1000

    def __post_init__(self):
        if self.key_covariance not in KEY_COVARIANCES:
            raise ParameterError(f"The key covariance must be one of {', '.join(KEY_COVARIANCES)}.")

    def chosen_layers(self, n_layers: int) -> list[int]:
        layers = list(self.layers) if self.layers is not None else edit_layers(n_layers, self.layer_count)
        if not layers or min(layers) < 0 or max(layers) >= n_layers:
            raise ParameterError(f"Edit layers must be between 0 and {n_layers - 1}.")
        return layers


def _down_weight(lm: LoadedModel, layer: int) -> tuple[torch.nn.Parameter, bool]:
    """The down projection's weight and whether it is stored [in, out] (GPT-2's Conv1D); refuses quantized ones."""
    module = lm.ffn.down[layer]
    weight = getattr(module, "weight", None)
    if weight is None or not weight.is_floating_point() or lm.quantization != "none":
        raise ParameterError(
            "Editing needs the model's weights in float16, bfloat16 or float32; load it without "
            "8-bit or 4-bit quantization."
        )
    return weight, hasattr(module, "nf")


def _w(lm: LoadedModel, layer: int) -> torch.Tensor:
    """The down projection as [out, in] float32 (a copy)."""
    weight, transposed = _down_weight(lm, layer)
    w = weight.detach().float()
    return w.T if transposed else w


@contextmanager
def rank_one_edit(
    lm: LoadedModel, layer: int, key: torch.Tensor, delta: torch.Tensor, direction: torch.Tensor | None = None
) -> Iterator[None]:
    """W <- W + delta u^T / (u^T k) at `layer` for the block's life (u = `direction`, C^-1 k in ROME; None: k, the
    identity covariance), which maps k to W k + delta; the saved weight is put back on exit."""
    with lm.lock:
        weight, transposed = _down_weight(lm, layer)
        saved = weight.detach().clone()
        k = key.to(weight.device, torch.float32)
        u = k if direction is None else direction.to(weight.device, torch.float32)
        update = torch.outer(delta.to(weight.device, torch.float32), u) / (u @ k)
        try:
            with torch.no_grad():
                weight.add_((update.T if transposed else update).to(weight.dtype))
            yield
        finally:
            with torch.no_grad():
                weight.copy_(saved)


@dataclass(frozen=True)
class EditTarget:
    """What the edit optimizes: the tail of the edit prompt after its shared prefix, and where the subject ends."""

    prefix: object  # a KV cache of the tokens before the subject (or None)
    tail: torch.Tensor  # [1, tail tokens] ids: the rest of the prompt and the new answer
    position: int  # the subject's last token, in tail columns
    first: int  # the first new-answer token's column in the tail
    answer: list[int]


def _target(lm: LoadedModel, p: Paraphrase, new_answer: str) -> EditTarget:
    prompt, subj = subject_positions(lm, p)
    answer = lm.tokenizer(new_answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + answer], device=lm.input_device)
    cut = subj[0]
    with torch.no_grad():
        prefix = lm.model(input_ids=ids[:, :cut], use_cache=True).cache if cut else None
    return EditTarget(prefix, ids[:, cut:], subj[-1] - cut, len(prompt) - cut, answer)


def _new_logprob(lm: LoadedModel, t: EditTarget) -> torch.Tensor:
    cache = copy.deepcopy(t.prefix) if t.prefix is not None else None
    logits = lm.model(input_ids=t.tail, cache=cache, use_cache=cache is not None).logits[0].float()
    logp = torch.log_softmax(logits[t.first - 1 : t.first - 1 + len(t.answer)], -1)
    return logp.gather(-1, torch.tensor(t.answer, device=logp.device)[:, None]).sum()


def optimize_edit(lm: LoadedModel, layer: int, t: EditTarget, cfg: EditConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(key k, delta): the down projection's input at the subject's last token, and the output change to add."""
    seen: dict[str, torch.Tensor] = {}
    hidden = _w(lm, layer).shape[0]
    delta = torch.zeros(hidden, device=lm.ffn.down[layer].weight.device, requires_grad=True)

    def read(_layer, x):
        seen["key"] = x[0, t.position].detach().float().clone()

    def write(_layer, y):
        seen.setdefault("value", y[0, t.position].detach().float().clone())
        y = y.clone()
        y[0, t.position] = y[0, t.position] + delta.to(y.device, y.dtype)
        return y

    opt = torch.optim.Adam([delta], lr=cfg.lr)
    with neuron_hooks(lm.ffn, read, layers=[layer], output=write):
        for _ in range(cfg.steps):
            opt.zero_grad()
            loss = -_new_logprob(lm, t)
            norm = seen["value"].norm().clamp(min=1e-6)
            (loss + cfg.weight_decay * (delta.norm() / norm) ** 2).backward()
            opt.step()
            with torch.no_grad():
                limit = cfg.clamp * norm
                if delta.norm() > limit:
                    delta.mul_(limit / delta.norm())
    return seen["key"], delta.detach()


def rome_update(
    lm: LoadedModel,
    layer: int,
    p: Paraphrase,
    key_edit: torch.Tensor,
    delta: torch.Tensor,
    cfg: EditConfig,
    covariance: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(k*, residual v* - W k*, direction C^-1 k*): ROME's rank-one update for an optimized delta at the edit
    prompt's key (v* = W k_edit + delta; the bias cancels)."""
    k_star = averaged_key(lm, p, layer, cfg.key_prefixes) if cfg.key_prefixes else key_edit
    w = _w(lm, layer)
    residual = delta.float().to(w.device) + w @ (key_edit.to(w.device) - k_star.to(w.device))
    direction = None if covariance is None else torch.linalg.solve(covariance, k_star.cpu().float())
    return k_star, residual, direction


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
        target = _target(lm, edit, new_answer)
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
            change = (after.logprob[n:] - before.logprob[n:]).numpy()
            row = {
                "layer": layer,
                "p_new_edit": float(after.prob[0]),
                "success": bool(after.greedy[0]),
                "p_new_paraphrases": float(after.prob[1:n].mean()),
                "generalization": float(after.greedy[1:n].float().mean()),
                "other_facts_delta_logp": float(change.mean()) if change.size else 0.0,
                "delta_norm": float(delta.norm()),
            }
            for group, mask in zip(OTHER_GROUPS, (same, ~same)):
                row[f"{group}_delta_logp"] = float(change[mask].mean()) if mask.any() else None
            rows.append(row)
    return rows


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
    _down_weight(lm, layers[0])
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
        traces = {site: trace(lm, edit, std, cfg.trace_draws, cfg.seed + k, site=site) for site in ("hidden", "mlp")}
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
        for site in ("hidden", "mlp"):
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

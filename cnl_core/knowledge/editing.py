"""Editing one fact at each layer (the paper's Figure 2; Hase et al. 2023): does the located layer predict
where editing works?

At layer l, a rank-one update of the FFN down projection (ROME's form, with the identity in place of
ROME's key covariance): the key k is the down projection's input at the subject's last token of the edit
prompt; a vector delta, added to the down projection's output there, is optimized (Adam, a few steps, an
L2 penalty and ROME's norm clamp) to make a new answer likely; then W <- W + delta k^T / (k^T k), the
smallest change (in Frobenius norm) that maps k to W k + delta. The edit is applied to the weights inside
a context manager that holds the model lock and puts back a saved copy on exit, whatever happens.

Measured per layer: edit success (p(new answer) on the edit prompt, and whether greedy decoding gives it),
paraphrase generalization (the same on the fact's other paraphrases) and the change of other facts'
log p(true answer). Next to it, the causal trace of the edit prompt (`tracing.trace`): if localization
informed editing, editing would work best at the traced peak.
"""

from __future__ import annotations

import copy
import random
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import ParameterError
from ..evaluate.stats import bootstrap_ci
from ..model.loading import LoadedModel
from ..progress import Progress, check_cancel, report
from ..provenance import stamp
from .facts import Fact, FactSet, Paraphrase
from .probe import answer_stats
from .tracing import subject_embedding_std, subject_positions, trace


@dataclass(frozen=True)
class EditConfig:
    steps: int = 20
    lr: float = 0.5
    weight_decay: float = 0.01  # on |delta|^2 / |original output|^2
    clamp: float = 4.0  # |delta| at most this times |W k| (ROME's clamp_norm_factor)
    layers: tuple[int, ...] | None = None  # None: every layer
    other_facts: int = 5
    trace_draws: int = 3
    seed: int = 0
    bootstrap: int = 1000


def _down_weight(lm: LoadedModel, layer: int) -> tuple[torch.nn.Parameter, bool]:
    """The down projection's weight and whether it is stored [in, out] (GPT-2's Conv1D); refuses quantized ones."""
    module = lm.ffn.down[layer]
    weight = getattr(module, "weight", None)
    if weight is None or not weight.is_floating_point() or lm.quantization != "none":
        raise ParameterError("Editing needs the model's weights in float16, bfloat16 or float32; load it without "
                             "8-bit or 4-bit quantization.")
    return weight, hasattr(module, "nf")


@contextmanager
def rank_one_edit(lm: LoadedModel, layer: int, key: torch.Tensor, delta: torch.Tensor) -> Iterator[None]:
    """W <- W + delta k^T / (k^T k) at `layer` for the block's life; the saved weight is put back on exit."""
    with lm.lock:
        weight, transposed = _down_weight(lm, layer)
        saved = weight.detach().clone()
        k = key.to(weight.device, torch.float32)
        update = torch.outer(delta.to(weight.device, torch.float32), k) / (k @ k)
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
    logp = torch.log_softmax(logits[t.first - 1: t.first - 1 + len(t.answer)], -1)
    return logp.gather(-1, torch.tensor(t.answer, device=logp.device)[:, None]).sum()


def optimize_edit(lm: LoadedModel, layer: int, t: EditTarget, cfg: EditConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(key k, delta): the down projection's input at the subject's last token, and the output change to add."""
    down = lm.ffn.down[layer]
    seen: dict[str, torch.Tensor] = {}

    def read(_m, args):
        seen["key"] = args[0][0, t.position].detach().float().clone()

    def write(_m, _a, out):
        seen.setdefault("value", out[0, t.position].detach().float().clone())
        out = out.clone()
        out[0, t.position] = out[0, t.position] + delta.to(out.dtype)
        return out

    delta = torch.zeros(down.weight.shape[0] if not hasattr(down, "nf") else down.weight.shape[1],
                        device=down.weight.device, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=cfg.lr)
    hooks = [down.register_forward_pre_hook(read), down.register_forward_hook(write)]
    try:
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
    finally:
        for h in hooks:
            h.remove()
    return seen["key"], delta.detach()


@dataclass
class EditingResult:
    model: str
    facts: str
    config: EditConfig
    layers: list[int]
    per_fact: list[dict]  # fact, new answer, per-layer rows, the edit prompt's traces
    summary: list[dict]  # per layer: means and intervals over facts
    created: str | None = None
    versions: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        cfg = asdict(self.config)
        cfg["layers"] = self.layers
        return {"kind": "cnl.knowledge.editing", "model": self.model, "facts": self.facts, "config": cfg,
                "summary": self.summary, "per_fact": self.per_fact, "created": self.created,
                "versions": self.versions}


def _new_answer(f: Fact, facts: Sequence[Fact], rng: random.Random) -> str:
    """A counterfactual answer: another fact's answer of the same relation (as COUNTERFACT's targets)."""
    pool = sorted({g.answer for g in facts if g.relation == f.relation and g.answer != f.answer})
    if not pool:
        raise ParameterError(f"No other answer of relation '{f.relation}' to edit {f.id} towards.")
    return rng.choice(pool)


def edit_fact_by_layer(lm: LoadedModel, facts_set: FactSet, f: Fact, new_answer: str, others: list[Paraphrase],
                       layers: Sequence[int], cfg: EditConfig) -> list[dict]:
    """Edit `f` towards `new_answer` at each layer in turn (weights restored after each); one row per layer."""
    edit, *rest = facts_set.paraphrases(f)
    tests = [(edit.text, new_answer)] + [(p.text, new_answer) for p in rest] + [(p.text, p.answer) for p in others]
    with lm.lock:
        before = answer_stats(lm, tests)
        target = _target(lm, edit, new_answer)
        rows = []
        for layer in layers:
            with torch.enable_grad():
                key, delta = optimize_edit(lm, layer, target, cfg)
            with rank_one_edit(lm, layer, key, delta):
                after = answer_stats(lm, tests)
            n = 1 + len(rest)
            rows.append({"layer": layer, "p_new_edit": float(after.prob[0]), "success": bool(after.greedy[0]),
                         "p_new_paraphrases": float(after.prob[1:n].mean()),
                         "generalization": float(after.greedy[1:n].float().mean()),
                         "other_facts_delta_logp": float((after.logprob[n:] - before.logprob[n:]).mean()),
                         "delta_norm": float(delta.norm())})
    return rows


def run_editing(lm: LoadedModel, facts_set: FactSet, fact_ids: list[str] | None = None,
                cfg: EditConfig | None = None, *, progress: Progress | None = None,
                cancel: threading.Event | None = None) -> EditingResult:
    """Per-layer edits of each chosen fact, next to the causal traces of its edit prompt."""
    cfg = cfg or EditConfig()
    facts = facts_set.subset(fact_ids) if fact_ids is not None else list(facts_set.facts)
    if not facts:
        raise ParameterError("Choose at least one fact to edit.")
    layers = list(cfg.layers) if cfg.layers is not None else list(range(lm.grid.n_layers))
    if not layers or min(layers) < 0 or max(layers) >= lm.grid.n_layers:
        raise ParameterError(f"Edit layers must be between 0 and {lm.grid.n_layers - 1}.")
    _down_weight(lm, layers[0])
    rng = random.Random(cfg.seed)
    std = subject_embedding_std(lm, [facts_set.paraphrases(f)[0] for f in facts])
    per_fact = []
    for k, f in enumerate(facts):
        check_cancel(cancel, k, len(facts), "facts")
        new = _new_answer(f, facts_set.facts, rng)
        others = [rng.choice(facts_set.paraphrases(g)) for g in
                  rng.sample([g for g in facts_set.facts if g.id != f.id], min(cfg.other_facts, len(facts_set.facts) - 1))]
        rows = edit_fact_by_layer(lm, facts_set, f, new, others, layers, cfg)
        edit = facts_set.paraphrases(f)[0]
        traces = {site: trace(lm, edit, std, cfg.trace_draws, cfg.seed + k, site=site) for site in ("hidden", "mlp")}
        per_fact.append({"fact": f.id, "new_answer": new, "rows": rows,
                         "trace": {s: {"peak_layer": t.peak_layer, "effect": t.effect, "p_clean": t.p_clean,
                                       "p_corrupt": t.p_corrupt} for s, t in traces.items()}})
        report(progress, k + 1, len(facts), f"editing: {f.id} -> {new.strip()}")
    return EditingResult(lm.spec.name, facts_set.name, cfg, layers, per_fact, _summary(per_fact, layers, cfg), **stamp())


def _summary(per_fact: list[dict], layers: list[int], cfg: EditConfig) -> list[dict]:
    """Per layer: mean [interval over facts] of edit success and generalization, and the mean traced effect."""
    out = []
    for i, layer in enumerate(layers):
        row: dict = {"layer": layer}
        for key in ("p_new_edit", "success", "p_new_paraphrases", "generalization", "other_facts_delta_logp"):
            vals = np.array([float(f["rows"][i][key]) for f in per_fact])
            row[key] = float(vals.mean())
            row[f"{key}_ci"] = bootstrap_ci(vals, cfg.bootstrap, cfg.seed)
        for site in ("hidden", "mlp"):
            effects = [f["trace"][site]["effect"][layer] / max(f["trace"][site]["p_clean"] - f["trace"][site]["p_corrupt"], 1e-6)
                       for f in per_fact]
            row[f"traced_{site}"] = float(np.mean(effects))
        out.append(row)
    return out


def located_vs_best(result: EditingResult, site: str = "mlp") -> dict:
    """Does the traced peak predict the best edit layer? Per fact: the peak, the layer where paraphrase
    generalization is highest, and over facts the mean Pearson correlation of traced effect with generalization
    across layers (Hase et al.'s question)."""
    rows, corr = [], []
    for f in result.per_fact:
        gen = np.array([r["p_new_paraphrases"] for r in f["rows"]])
        effect = np.array([f["trace"][site]["effect"][r["layer"]] for r in f["rows"]])
        best = f["rows"][int(gen.argmax())]["layer"]
        rows.append({"fact": f["fact"], "traced_peak": f["trace"][site]["peak_layer"], "best_edit_layer": best})
        if gen.std() > 0 and effect.std() > 0:
            corr.append(float(np.corrcoef(effect, gen)[0, 1]))
    return {"site": site, "facts": rows, "mean_correlation": float(np.mean(corr)) if corr else None,
            "correlation_ci": bootstrap_ci(np.array(corr), result.config.bootstrap, result.config.seed),
            "peak_is_best": float(np.mean([r["traced_peak"] == r["best_edit_layer"] for r in rows]))}

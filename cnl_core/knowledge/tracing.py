"""Causal tracing (ROME, Meng et al. 2022): at which layer does the subject's hidden state carry the fact?

For one prompt: a clean run records every layer's hidden state; then the subject tokens' embeddings get
Gaussian noise (`noise` x the standard deviation of the subject tokens' embeddings, 3 as ROME), which
drops p(answer); then, one layer at a time, that layer's clean hidden state is put back at the subject's
last token (`restore="last"`) or at every subject token (`restore="subject"`). The layer whose restoring
brings p(answer) back most is the prompt's peak: where ROME says the fact sits.

Two sites: `hidden` restores the residual stream after layer l, as asked of causal tracing; with a
one-token subject, restoring it at an early layer undoes all the noise, so its curve is a plateau that
ends where the subject's information has moved on, and its arg-max falls anywhere on the plateau. `mlp`
restores the FFN outputs of a window of layers around l (ROME's MLP trace, which chose ROME's edit layer):
its peak says which layers' FFNs carry the fact, the question per-layer editing asks. Each noise draw runs the
corrupted prompt and the L restorations as one batch sharing that draw (paired); draws are seeded.

The tokens before the subject (the demonstrations and the template's head) are the same in every row and
untouched by noise or restoring, so they run once and their KV cache serves every row.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError
from ..evaluate.stats import bootstrap_ci
from ..model.loading import LoadedModel
from ..progress import Progress, check_cancel, report
from ..provenance import stamp
from .facts import FactSet, Paraphrase

RESTORE = ("last", "subject")
SITES = ("hidden", "mlp")  # a decoder layer's output (the residual stream), or its FFN's output (ROME's MLP trace)
MLP_WINDOW = 5  # ROME restores a window of MLP layers around each layer (10 of GPT-2 XL's 48); 5 of 30 here


def decoder_layers(lm: LoadedModel) -> list[nn.Module]:
    """The decoder layers, in order: the modules that hold each down projection (found through the adapter)."""
    names = {id(m): n for n, m in lm.model.named_modules()}
    modules = dict(lm.model.named_modules())
    suffix = "." + lm.ffn.adapter.down
    return [modules[names[id(down)].removesuffix(suffix)] for down in lm.ffn.down]


def subject_positions(lm: LoadedModel, p: Paraphrase) -> tuple[list[int], list[int]]:
    """(prompt token ids, positions of the tokens that overlap the subject's characters)."""
    enc = lm.tokenizer(p.text, return_offsets_mapping=True, add_special_tokens=True)
    where = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > p.subject_start and a < p.subject_end]
    if not where:
        raise ParameterError(f"The subject of {p.id} is not a token span of its prompt.")
    return list(enc["input_ids"]), where


def subject_embedding_std(lm: LoadedModel, paraphrases: Sequence[Paraphrase]) -> float:
    """Standard deviation of the subject tokens' input embeddings (ROME scales its noise by it)."""
    emb = lm.model.get_input_embeddings().weight
    ids = sorted({i for p in paraphrases for pos in [subject_positions(lm, p)] for i in (pos[0][k] for k in pos[1])})
    with torch.no_grad():
        return float(emb[torch.tensor(ids, device=emb.device)].float().std())


@dataclass(frozen=True)
class Trace:
    """One prompt's trace: p(answer) clean, corrupted, and with each layer restored (mean over noise draws)."""

    paraphrase: str
    p_clean: float
    p_corrupt: float
    p_restored: list[float]  # [layers]
    subject_tokens: int

    @property
    def peak_layer(self) -> int:
        return int(max(range(len(self.p_restored)), key=lambda l: self.p_restored[l]))

    @property
    def effect(self) -> list[float]:
        """Indirect effect per layer: p restored minus p corrupted."""
        return [p - self.p_corrupt for p in self.p_restored]

    @property
    def informative(self) -> bool:
        """The noise at least halved p(answer): otherwise nothing is left to restore and the peak is noise."""
        return self.p_corrupt <= 0.5 * self.p_clean


def _answer_logprob(logits: torch.Tensor, answer: list[int], first: int) -> torch.Tensor:
    """[rows] log p(answer tokens) from logits over positions first-1 .. (teacher-forced, the tail's columns)."""
    logp = torch.log_softmax(logits[:, first - 1: first - 1 + len(answer)].float(), -1)
    idx = torch.tensor(answer, device=logits.device)[None, :, None].expand(logits.shape[0], -1, 1)
    return logp.gather(-1, idx)[..., 0].sum(-1)


def trace(lm: LoadedModel, p: Paraphrase, noise_std: float, draws: int = 3, seed: int = 0, noise: float = 3.0,
          restore: str = "last", site: str = "hidden", window: int = MLP_WINDOW) -> Trace:
    """Causal trace of one prompt (see the module doc); the model is held for the whole trace."""
    if restore not in RESTORE:
        raise ParameterError(f"Restore must be one of {', '.join(RESTORE)}.")
    if site not in SITES:
        raise ParameterError(f"The traced site must be one of {', '.join(SITES)}.")
    prompt, subj = subject_positions(lm, p)
    answer = lm.tokenizer(p.answer, add_special_tokens=False)["input_ids"]
    ids = prompt + answer
    cut = subj[0]  # columns before the subject: shared by every row, run once into a KV cache
    layers = decoder_layers(lm) if site == "hidden" else list(lm.ffn.down)
    n_layers = len(layers)
    half = 0 if site == "hidden" else window // 2
    # rows that restore module j: those whose window (layer l +- half) holds j; row l + 1 restores around layer l
    restored_by = [torch.tensor([l + 1 for l in range(n_layers) if abs(l - j) <= half]) for j in range(n_layers)]
    where = [subj[-1]] if restore == "last" else subj
    tail_where = torch.tensor([w - cut for w in where])
    tail_subj = torch.tensor([s - cut for s in subj])
    device = lm.input_device
    rows = n_layers + 1  # row 0: corrupted; row l + 1: layer l restored
    with lm.lock, torch.no_grad():
        full = torch.tensor([ids], device=device)
        clean: list[torch.Tensor] = []  # after layer l, at the restored tokens

        def record(_m, _a, out):
            clean.append((out[0] if isinstance(out, tuple) else out)[0, where].clone())

        hooks = [layer.register_forward_hook(record) for layer in layers]
        try:
            clean_logits = lm.model(input_ids=full).logits
        finally:
            for h in hooks:
                h.remove()
        p_clean = float(_answer_logprob(clean_logits, answer, len(prompt)).exp()[0])
        prefix = lm.model(input_ids=full[:, :cut], use_cache=True).cache if cut else None
        tail = full[:, cut:].expand(rows, -1)
        gen = torch.Generator().manual_seed(seed)
        emb = lm.model.get_input_embeddings()
        totals = torch.zeros(rows)
        for _ in range(draws):
            shared = (torch.randn(len(subj), emb.weight.shape[1], generator=gen) * noise * noise_std)

            def add_noise(_m, _a, out, _n=shared):
                out = out.clone()
                out[:, tail_subj.to(out.device)] += _n.to(out.device, out.dtype)
                return out

            hooks = [emb.register_forward_hook(add_noise)]
            for l, layer in enumerate(layers):
                def put_back(_m, _a, out, _l=l):
                    h = out[0] if isinstance(out, tuple) else out
                    h = h.clone()
                    r = restored_by[_l].to(h.device)
                    h[r[:, None], tail_where.to(h.device)[None, :]] = clean[_l].to(h.device, h.dtype)
                    return (h, *out[1:]) if isinstance(out, tuple) else h

                hooks.append(layer.register_forward_hook(put_back))
            try:
                cache = None
                if prefix is not None:
                    cache = copy.deepcopy(prefix)
                    cache.batch_repeat_interleave(rows)
                logits = lm.model(input_ids=tail, cache=cache, use_cache=cache is not None).logits
            finally:
                for h in hooks:
                    h.remove()
            totals += _answer_logprob(logits, answer, len(prompt) - cut).exp().cpu()
        mean = (totals / draws).tolist()
    return Trace(p.id, p_clean, mean[0], mean[1:], len(subj))


@dataclass
class TracingResult:
    """Traces of every paraphrase of the chosen facts, and how often a fact's paraphrases peak at one layer."""

    model: str
    facts: str
    site: str
    restore: str
    noise: float
    noise_std: float
    draws: int
    seed: int
    traces: list[Trace]
    agreement: dict  # group -> {"share", "ci", "pairs", "facts"}; see peak_agreement
    created: str | None = None
    versions: dict = field(default_factory=dict)

    def peaks(self) -> dict[str, int]:
        return {t.paraphrase: t.peak_layer for t in self.traces}

    def mean_effect(self) -> list[float]:
        """Per layer, the mean over prompts of the restored share of what the noise took: (p_l - p*) / (p - p*)."""
        rows = [[e / (t.p_clean - t.p_corrupt) for e in t.effect] for t in self.traces if t.p_clean > t.p_corrupt]
        return [sum(r[l] for r in rows) / len(rows) for l in range(len(rows[0]))] if rows else []

    def to_json(self) -> dict:
        return {"kind": "cnl.knowledge.tracing", "model": self.model, "facts": self.facts, "site": self.site,
                "restore": self.restore, "noise": self.noise, "noise_std": self.noise_std, "draws": self.draws,
                "seed": self.seed, "agreement": self.agreement, "mean_effect": self.mean_effect(),
                "traces": [{**asdict(t), "peak_layer": t.peak_layer, "informative": t.informative}
                           for t in self.traces], "created": self.created, "versions": self.versions}


PEAK_GROUPS = ("same fact", "other fact, same relation")
TOLERANCES = (0, 2)  # layers: the same peak, or peaks at most 2 layers apart


def peak_agreement(traces: Sequence[Trace], fact_of: dict[str, str], relation_of: dict[str, str], draws: int = 1000,
                   seed: int = 0, informative_only: bool = False) -> dict:
    """Share of paraphrase pairs whose peaks agree (exactly, within 2 layers): of one fact, and of two facts of one
    relation (what agreement the layer profile alone gives: a null). Averaged per fact, intervals over facts."""
    kept = [t for t in traces if t.informative or not informative_only]
    out = {}
    for group in PEAK_GROUPS:
        for tol in TOLERANCES:
            per_fact: dict[str, list[float]] = {}
            for i, a in enumerate(kept):
                for b in kept[i + 1:]:
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
                "share": float(means.mean()) if means.size else None, "ci": bootstrap_ci(means, draws, seed),
                "pairs": int(sum(len(v) for v in per_fact.values())) // (1 if group == PEAK_GROUPS[0] else 2),
                "facts": len(per_fact)}
    out["prompts"] = len(kept)
    return out


def run_tracing(lm: LoadedModel, facts_set: FactSet, fact_ids: list[str] | None = None, *, site: str = "hidden",
                restore: str = "last", draws: int = 3, noise: float = 3.0, seed: int = 0,
                progress: Progress | None = None, cancel: threading.Event | None = None) -> TracingResult:
    """Trace every paraphrase of the chosen facts (default: all) and measure peak-layer agreement."""
    facts = facts_set.subset(fact_ids) if fact_ids is not None else list(facts_set.facts)
    paraphrases = [p for f in facts for p in facts_set.paraphrases(f)]
    if not paraphrases:
        raise ParameterError("No facts to trace.")
    std = subject_embedding_std(lm, paraphrases)
    traces = []
    for k, p in enumerate(paraphrases):
        check_cancel(cancel, k, len(paraphrases), "prompts")
        traces.append(trace(lm, p, std, draws, seed + k, noise, restore, site))
        report(progress, k + 1, len(paraphrases), f"causal tracing ({site}): {p.id}")
    fact_of = {p.id: p.fact_id for p in paraphrases}
    relation_of = {f.id: f.relation for f in facts}
    return TracingResult(lm.spec.name, facts_set.name, site, restore, noise, std, draws, seed, traces,
                         peak_agreement(traces, fact_of, relation_of, seed=seed), **stamp())

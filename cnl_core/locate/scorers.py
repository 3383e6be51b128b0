"""Per-sample neuron scores on the gold answer, teacher-forced; one registered function per method.

A scorer takes a batch of samples and returns (scores [batch, layers, width] float32 on CPU, gold
log-prob [batch]). Adding a method is one function here with `@register_scorer("name")`; the CLI,
the dashboard and the cache key pick it up. Methods (see shared paper notes):
- `activation`: mean activation over the answer positions (forward only).
- `grad_x_act`: activation x gradient of the gold-answer log-probability (one backward pass).
- `integrated_gradients`: Knowledge-Neurons style; one layer's activations at the answer positions
  are scaled by alpha = k/m (k = 1..m: the right-endpoint rule of Dai et al.; `ig_rule="midpoint"` uses
  (k - 1/2)/m, which is closer to the integral at small m), the gradients averaged and multiplied by
  the activation. `locate.completeness` says how far a layer's sum of IG is from the change it explains.
  The (layer, alpha) pairs of a sample are packed as rows of one batch, so a sample costs about
  layers x m / batch_rows passes instead of layers x m.

"Answer positions" are the positions whose next-token prediction is a gold answer token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

import torch

from .. import fields as F
from ..data.samples import DatasetSpec, Sample
from ..errors import ParameterError
from ..model.forward import EncodedBatch, encode_teacher_forced, encoded_length, gold_logprob, pass_groups
from ..model.hooks import neuron_hooks
from ..model.loading import LoadedModel
from ..options import IG_RULES
from .token_limits import CEILING, dataset_limits

Scorer = Callable[[LoadedModel, Sequence[Sample], "ScoreConfig"], tuple[torch.Tensor, torch.Tensor]]
_SCORERS: dict[str, tuple[Scorer, tuple[str, ...]]] = {}


def register_scorer(name: str, uses: tuple[str, ...] = ()) -> Callable[[Scorer], Scorer]:
    """Register a scoring method; `uses` names the ScoreConfig fields only it reads (part of its cache key)."""

    def add(fn: Scorer) -> Scorer:
        _SCORERS[name] = (fn, uses)
        return fn

    return add


def scorer_names() -> tuple[str, ...]:
    return tuple(_SCORERS)


_METHOD_ONLY_FIELDS = ("ig_steps", "ig_rule")  # fields that matter only to the scorers that declare them


@dataclass(frozen=True)
class ScoreConfig:
    """Everything about the score computation that changes its numbers (part of the cache key)."""

    method: str = "grad_x_act"
    ig_steps: int = 20
    ig_rule: str = IG_RULES[0]  # right: alpha = k/m, k = 1..m (Dai et al.); midpoint: alpha = (k - 1/2)/m
    max_prompt_tokens: int | None = None  # None: the length covering 99% of the dataset's prompts
    max_answer_tokens: int | None = None  # None: the length covering 99% of the dataset's gold answers

    def __post_init__(self):
        if self.method not in _SCORERS:
            raise ParameterError(f"Unknown scoring method '{self.method}'. Choose one of: {', '.join(_SCORERS)}.")
        F.IG_STEPS.typed(self.ig_steps)
        if self.ig_rule not in IG_RULES:
            raise ParameterError(f"The IG step rule must be one of {', '.join(IG_RULES)}.")
        F.MAX_PROMPT.typed(self.max_prompt_tokens)
        F.MAX_ANSWER.typed(self.max_answer_tokens)

    def resolved(self, tokenizer, dataset: DatasetSpec) -> "ScoreConfig":
        """These settings with automatic token limits replaced by the dataset's 99%-coverage lengths."""
        if self.max_prompt_tokens is not None and self.max_answer_tokens is not None:
            return self
        limits = dataset_limits(tokenizer, dataset)
        return replace(self, max_prompt_tokens=self.max_prompt_tokens or limits.prompt,
                       max_answer_tokens=self.max_answer_tokens or limits.answer)

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> "ScoreConfig":
        """Settings read back from a result file (missing fields take their defaults)."""
        known = {k: data[k] for k in ("method", "ig_steps", "ig_rule", "max_prompt_tokens", "max_answer_tokens")
                 if k in data}
        try:
            return ScoreConfig(**known)
        except TypeError as exc:
            raise ParameterError(f"The score settings are malformed ({exc}).") from exc

    def key_params(self) -> dict:
        """The fields that decide this method's numbers: what the cache key records."""
        uses = _SCORERS[self.method][1]
        return {k: v for k, v in asdict(self).items() if k not in _METHOD_ONLY_FIELDS or k in uses}

    def length(self, tokenizer, sample: Sample) -> int:
        """Tokens the sample takes in a teacher-forced batch under these limits."""
        return encoded_length(tokenizer, sample.prompt, sample.answer, self.max_prompt_tokens or CEILING,
                              self.max_answer_tokens or CEILING)

    def encode(self, lm: LoadedModel, samples: Sequence[Sample]) -> EncodedBatch:
        """A teacher-forced batch; an automatic limit not yet resolved cuts nothing below the ceiling."""
        return encode_teacher_forced(lm.tokenizer, [(s.prompt, s.answer) for s in samples],
                                     self.max_prompt_tokens or CEILING, self.max_answer_tokens or CEILING,
                                     lm.input_device)


def score_batch(lm: LoadedModel, samples: Sequence[Sample], cfg: ScoreConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [batch, layers, width] float32 on CPU, gold log-prob [batch]) of one batch, holding the model."""
    if not samples:
        raise ParameterError("No samples to score.")
    with lm.lock:
        return _SCORERS[cfg.method][0](lm, samples, cfg)


def _mask3(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(like.device, like.dtype).unsqueeze(-1)


def _grouped(one_pass: Callable[[LoadedModel, EncodedBatch], tuple[torch.Tensor, torch.Tensor]]) -> Scorer:
    """A batch scored one pass per group of `pass_groups` (rows of like length on a CPU)."""

    def scorer(lm: LoadedModel, samples: Sequence[Sample], cfg: ScoreConfig) -> tuple[torch.Tensor, torch.Tensor]:
        batch = cfg.encode(lm, samples)
        scores = torch.empty(len(samples), lm.grid.n_layers, lm.grid.width)
        gold = torch.empty(len(samples))
        for idx in pass_groups(lm, batch.attention_mask.sum(-1).tolist()):
            scores[idx], gold[idx] = one_pass(lm, batch.select(idx))
        return scores, gold

    return scorer


def _activation_pass(lm: LoadedModel, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    per_layer: list[torch.Tensor | None] = [None] * lm.grid.n_layers

    def hook(layer: int, x: torch.Tensor):
        weights = batch.answer_mask.to(x.device, x.dtype)
        weights = (weights / weights.sum(1, keepdim=True).clamp(min=1)).unsqueeze(1)  # [batch, 1, tokens]
        per_layer[layer] = torch.bmm(weights, x).squeeze(1).float().cpu()  # masked mean without a [b, t, w] temporary

    with neuron_hooks(lm.ffn, hook), torch.inference_mode():
        gold = gold_logprob(lm, batch)
    return torch.stack(per_layer, dim=1), gold.detach().cpu()


def _grad_x_act_pass(lm: LoadedModel, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    acts: list[torch.Tensor | None] = [None] * lm.grid.n_layers

    def hook(layer: int, x: torch.Tensor):
        if not x.requires_grad:
            x.requires_grad_(True)  # a leaf: nothing upstream needs gradients
        acts[layer] = x

    with neuron_hooks(lm.ffn, hook), torch.enable_grad():
        gold = gold_logprob(lm, batch)
        grads = torch.autograd.grad(gold.sum(), acts)
    per_layer = [(x.detach().float() * g.float() * _mask3(batch.answer_mask, x)).sum(1).cpu()
                 for x, g in zip(acts, grads)]
    return torch.stack(per_layer, dim=1), gold.detach().cpu()


register_scorer("activation")(_grouped(_activation_pass))
register_scorer("grad_x_act")(_grouped(_grad_x_act_pass))


def ig_rows_per_pass(cfg: ScoreConfig, n_layers: int) -> int:
    """Rows (one layer at one alpha) packed into one forward+backward: at least all steps of a layer."""
    return max(cfg.ig_steps, min(n_layers * cfg.ig_steps, 4 * cfg.ig_steps))


@register_scorer("integrated_gradients", uses=("ig_steps", "ig_rule"))
def integrated_gradients(lm: LoadedModel, samples: Sequence[Sample], cfg: ScoreConfig) -> tuple[torch.Tensor, torch.Tensor]:
    n_layers, width, m = lm.grid.n_layers, lm.grid.width, cfg.ig_steps
    scores = torch.zeros(len(samples), n_layers, width)
    golds = []
    rows_per_pass = ig_rows_per_pass(cfg, n_layers)
    offset = 0.5 if cfg.ig_rule == "midpoint" else 0.0
    alphas_all = (torch.arange(1, m + 1, dtype=torch.float32) - offset) / m
    for s_idx, sample in enumerate(samples):
        single = cfg.encode(lm, [sample])
        with torch.no_grad():
            golds.append(gold_logprob(lm, single)[0].cpu())
        plan = [(layer, a) for layer in range(n_layers) for a in alphas_all.tolist()]
        for start in range(0, len(plan), rows_per_pass):
            rows = plan[start : start + rows_per_pass]
            scores[s_idx] += _ig_rows(lm, single.repeat(len(rows)), rows, m)
    return scores, torch.stack(golds)


def _ig_rows(lm: LoadedModel, batch: EncodedBatch, rows: list[tuple[int, float]], m: int) -> torch.Tensor:
    """[layers, width] IG contributions of the rows, one (layer, alpha) per row of an identical batch."""
    row_layer = torch.tensor([r[0] for r in rows])
    row_alpha = torch.tensor([r[1] for r in rows])
    r = len(rows)
    targeted = sorted(set(row_layer.tolist()))
    scaled: dict[int, torch.Tensor] = {}
    originals: dict[int, torch.Tensor] = {}

    def hook(layer: int, x: torch.Tensor):
        if layer not in targeted:
            return None
        on = (row_layer == layer).to(x.device, x.dtype).view(r, 1, 1) * _mask3(batch.answer_mask, x)
        alpha = row_alpha.to(x.device, x.dtype).view(r, 1, 1)
        x_scaled = x * (1 + (alpha - 1) * on)
        if not x_scaled.requires_grad:
            x_scaled.requires_grad_(True)
        originals[layer] = x.detach()
        scaled[layer] = x_scaled
        return x_scaled

    with neuron_hooks(lm.ffn, hook), torch.enable_grad():
        gold = gold_logprob(lm, batch)
        grads = torch.autograd.grad(gold.sum(), [scaled[l] for l in targeted])
    out = torch.zeros(lm.grid.n_layers, lm.grid.width)
    for layer, g in zip(targeted, grads):
        sel = (row_layer == layer).nonzero().flatten().to(g.device)
        x0 = originals[layer].index_select(0, sel).float()
        mask = _mask3(batch.answer_mask, x0)[: len(sel)]
        out[layer] += ((x0 * g.index_select(0, sel).float() * mask).sum(dim=(0, 1)) / m).cpu()
    return out

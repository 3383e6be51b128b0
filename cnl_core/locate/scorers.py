"""Per-sample neuron scores on the gold answer, teacher-forced; one registered function per method.

A scorer takes a batch of samples and returns (scores [batch, layers, width] float32 on CPU, gold
log-prob [batch]). Adding a method is one function here with `@register_scorer("name")`; the CLI,
the dashboard and the cache key pick it up. Methods (see shared paper notes):
- `activation`: mean activation over the answer positions (forward only).
- `grad_x_act`: activation x gradient of the gold-answer log-probability (one backward pass).
- `integrated_gradients`: one layer's activations at the answer positions
  are scaled by alpha = k/m (k = 1..m: the right-endpoint rule of Dai et al.; `ig_rule="midpoint"` uses
  (k - 1/2)/m, which is closer to the integral at small m), the gradients averaged and multiplied by
  the activation. `locate.completeness` says how far a layer's sum of IG is from the change it explains.
  `locate.integrated_gradients` says how a sample's layers x m gradients share their work.
- `integrated_gradients_prob`: the same with the gradient of the gold answer's probability, not its
  log-probability: Knowledge Neurons' score as Dai et al. define it (the two weight low-alpha steps very
  differently; their sets share about half their neurons).

"Answer positions" are the positions whose next-token prediction is a gold answer token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import torch

from .. import fields as F
from ..data.samples import DatasetSpec, Sample
from ..errors import ParameterError
from ..model.forward import EncodedBatch, encode_teacher_forced, encoded_length, gold_logprob, pass_groups
from ..model.hooks import neuron_hooks
from ..model.loading import LoadedModel
from ..options import IG_RULES
from .integrated_gradients import integrated_gradients
from .token_limits import CEILING, dataset_limits

if TYPE_CHECKING:  # transformers is imported lazily (start-up time); the type is for mypy only
    from transformers import PreTrainedTokenizerBase

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

    def resolved(self, tokenizer: PreTrainedTokenizerBase, dataset: DatasetSpec) -> ScoreConfig:
        """These settings with automatic token limits replaced by the dataset's 99%-coverage lengths."""
        if self.max_prompt_tokens is not None and self.max_answer_tokens is not None:
            return self
        limits = dataset_limits(tokenizer, dataset)
        return replace(
            self,
            max_prompt_tokens=self.max_prompt_tokens or limits.prompt,
            max_answer_tokens=self.max_answer_tokens or limits.answer,
        )

    @staticmethod
    def from_inputs(method: str, ig_steps, ig_rule: str, max_prompt_tokens=None, max_answer_tokens=None) -> ScoreConfig:
        """From a form or the command line (the one conversion both use): numbers may be text; token limits 0
        (or empty, or None) mean the length covering 99% of the dataset's prompts and gold answers."""
        return ScoreConfig(
            method=method,
            ig_steps=int(F.IG_STEPS.check(ig_steps)),  # whole-number fields give ints; int() says so to mypy
            ig_rule=ig_rule,
            max_prompt_tokens=_whole(F.MAX_PROMPT.read(max_prompt_tokens)),
            max_answer_tokens=_whole(F.MAX_ANSWER.read(max_answer_tokens)),
        )

    def key_params(self) -> dict:
        """The fields that decide this method's numbers: what the cache key records."""
        uses = _SCORERS[self.method][1]
        return {k: v for k, v in asdict(self).items() if k not in _METHOD_ONLY_FIELDS or k in uses}

    def length(self, tokenizer: PreTrainedTokenizerBase, sample: Sample) -> int:
        """Tokens the sample takes in a teacher-forced batch under these limits."""
        return encoded_length(
            tokenizer,
            sample.prompt,
            sample.answer,
            self.max_prompt_tokens or CEILING,
            self.max_answer_tokens or CEILING,
        )

    def encode(self, lm: LoadedModel, samples: Sequence[Sample]) -> EncodedBatch:
        """A teacher-forced batch; an automatic limit not yet resolved cuts nothing below the ceiling."""
        return encode_teacher_forced(
            lm.tokenizer,
            [(s.prompt, s.answer) for s in samples],
            self.max_prompt_tokens or CEILING,
            self.max_answer_tokens or CEILING,
            lm.input_device,
        )


def _whole(value: int | float | None) -> int | None:
    """A whole-number field's reading as an int (fields.NumberField types every reading int | float)."""
    return None if value is None else int(value)


def score_batch(lm: LoadedModel, samples: Sequence[Sample], cfg: ScoreConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [batch, layers, width] float32 on CPU, gold log-prob [batch]) of one batch, holding the model."""
    if not samples:
        raise ParameterError("No samples to score.")
    with lm.lock:
        return _SCORERS[cfg.method][0](lm, samples, cfg)


def _grouped(one_pass: Callable[[LoadedModel, EncodedBatch], tuple[torch.Tensor, torch.Tensor]]) -> Scorer:
    """A batch scored one pass per group of `pass_groups` (rows of like length on a CPU)."""

    def scorer(lm: LoadedModel, samples: Sequence[Sample], cfg: ScoreConfig) -> tuple[torch.Tensor, torch.Tensor]:
        batch = cfg.encode(lm, samples)
        groups = pass_groups(lm, batch.attention_mask.sum(-1).tolist())
        if len(groups) == 1 and groups[0] == list(range(len(samples))):  # one pass in order (a GPU): nothing to place
            return one_pass(lm, batch)
        scores = torch.empty(len(samples), lm.grid.n_layers, lm.grid.width)
        gold = torch.empty(len(samples))
        for idx in groups:
            scores[idx], gold[idx] = one_pass(lm, batch.select(idx))
        return scores, gold

    return scorer


def _activation_pass(lm: LoadedModel, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    per_layer: list[torch.Tensor | None] = [None] * lm.grid.n_layers
    mean_weights: dict[tuple, torch.Tensor] = {}  # [batch, 1, tokens], once per device and dtype, not per layer

    def hook(layer: int, x: torch.Tensor):
        weights = mean_weights.get((x.device, x.dtype))
        if weights is None:
            weights = batch.answer_mask.to(x.device, x.dtype)
            weights = mean_weights[(x.device, x.dtype)] = (
                weights / weights.sum(1, keepdim=True).clamp(min=1)
            ).unsqueeze(1)
        per_layer[layer] = torch.bmm(weights, x)  # [b, 1, w] masked mean without a [b, t, w] temporary

    with neuron_hooks(lm.ffn, hook), torch.inference_mode():
        gold = gold_logprob(lm, batch)
    # One copy to the CPU after the pass: a copy inside a hook, or one per layer, makes a GPU wait each time.
    # clone: a plain tensor, not the pass's inference tensor
    return _to_cpu(_every_layer(per_layer)), gold.cpu().clone()


def _grad_x_act_pass(lm: LoadedModel, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    acts: list[torch.Tensor | None] = [None] * lm.grid.n_layers

    def hook(layer: int, x: torch.Tensor):
        if not x.requires_grad:
            x.requires_grad_(True)  # a leaf: nothing upstream needs gradients
        acts[layer] = x

    with neuron_hooks(lm.ffn, hook), torch.enable_grad():
        gold = gold_logprob(lm, batch)
        marked = _every_layer(acts)
        grads = torch.autograd.grad(gold.sum(), marked)
    weights: dict[torch.device, torch.Tensor] = {}  # [batch, 1, tokens] float32 answer mask, once per device

    def masked_sum(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """[batch, width] sum over the answer positions of x * g, in float32: one copy, one in-place product, one
        batched product with the mask (fewer passes over the [batch, tokens, width] tensors than mask-and-sum)."""
        w = weights.get(x.device)
        if w is None:
            w = weights[x.device] = batch.answer_mask.to(x.device, torch.float32).unsqueeze(1)
        return torch.bmm(w, x.detach().to(torch.float32, copy=True).mul_(g))  # [b, 1, w]

    per_layer = [masked_sum(x, g) for x, g in zip(marked, grads)]
    return _to_cpu(per_layer), gold.detach().cpu()


def _every_layer(per_layer: list[torch.Tensor | None]) -> list[torch.Tensor]:
    """What a pass's hooks kept, one tensor per layer: every layer's hook runs in a full pass."""
    kept = [t for t in per_layer if t is not None]
    if len(kept) != len(per_layer):
        raise RuntimeError("A scoring pass ran without reaching every layer's down projection.")
    return kept


def _to_cpu(per_layer: list[torch.Tensor]) -> torch.Tensor:
    """[batch, layers, width] float32 on the CPU from per-layer [batch, 1, width], in one copy: joined and cast on
    the first layer's device (layers on other GPUs move there without a wait), so the host waits once, not once
    per layer, and the hooks launch nothing but their product (at batch 8 a 7B pass on a GPU is launch-bound)."""
    first = per_layer[0].device
    return torch.cat([t.to(first) for t in per_layer], dim=1).float().cpu()


register_scorer("activation")(_grouped(_activation_pass))
register_scorer("grad_x_act")(_grouped(_grad_x_act_pass))


register_scorer("integrated_gradients", uses=("ig_steps", "ig_rule"))(integrated_gradients)


@register_scorer("integrated_gradients_prob", uses=("ig_steps", "ig_rule"))
def _integrated_gradients_prob(lm: LoadedModel, samples: Sequence[Sample], cfg: ScoreConfig):
    """Knowledge Neurons as Dai et al. publish it: integrated gradients of p(answer), not of its log."""
    return integrated_gradients(lm, samples, cfg, target="prob")

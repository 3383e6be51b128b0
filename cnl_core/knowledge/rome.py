"""ROME's rank-one edit of one FFN down projection (Meng et al. 2022): the value optimisation and the update.

At layer l a vector delta, added to the down projection's output at the subject's last token of the edit prompt, is
optimized (Adam, a few steps) to make a new answer likely; the value wanted there is v* = W k_edit + delta. Beside
the new answer's log-probability the loss holds ROME's two other terms:
- the essence-drift penalty (`kl_weight`, ROME's kl_factor 0.0625): the KL divergence of the next-token
  distribution after "{subject} is a" (`essence_prompt`) with delta added at its subject's last token from the
  same distribution without it, so the edit keeps what the model says the subject *is* while the fact changes;
- an L2 penalty on delta relative to the original output, and ROME's norm clamp.
The key k* is the down projection's input at the subject's last token averaged over several contexts (keys.py), and
C the keys' second moment on generic text (`key_covariance="text"`, ROME's form; `"identity"` drops it):
W <- W + (v* - W k*) (C^-1 k*)^T / ((C^-1 k*)^T k*), which maps k* to v* and changes the outputs of keys C says are
common least. Reading keys and adding delta go through `neuron_hooks` ([rows, tokens, width] on every
architecture, OPT's flattened FFN included). The edit is applied to the weights inside a context manager that
holds the model lock and puts back a saved copy on exit, whatever happens.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..errors import ParameterError
from ..model.hooks import neuron_hooks
from ..model.loading import LoadedModel
from ..options import KEY_COVARIANCES
from .facts import Paraphrase
from .keys import COVARIANCE_TOKENS, averaged_key
from .tracing import subject_positions

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
    kl_weight: float = 0.0625  # ROME's essence-drift penalty (kl_factor); 0 drops it (round two's measured edits)
    essence_prompt: str = "{subject} is a"  # whose next-token distribution the penalty keeps
    other_facts: int = 5  # per group: other facts of the same relation, and of other relations
    trace_draws: int = 3
    seed: int = 0
    bootstrap: int = 1000

    def __post_init__(self):
        if self.key_covariance not in KEY_COVARIANCES:
            raise ParameterError(f"The key covariance must be one of {', '.join(KEY_COVARIANCES)}.")
        if self.kl_weight < 0 or "{subject}" not in self.essence_prompt:
            raise ParameterError("The KL weight must be at least 0, and the essence prompt must hold {subject}.")

    def chosen_layers(self, n_layers: int) -> list[int]:
        layers = list(self.layers) if self.layers is not None else edit_layers(n_layers, self.layer_count)
        if not layers or min(layers) < 0 or max(layers) >= n_layers:
            raise ParameterError(f"Edit layers must be between 0 and {n_layers - 1}.")
        return layers


def down_weight(lm: LoadedModel, layer: int) -> tuple[torch.nn.Parameter, bool]:
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
    weight, transposed = down_weight(lm, layer)
    w = weight.detach().float()
    return w.T if transposed else w


@contextmanager
def rank_one_edit(
    lm: LoadedModel, layer: int, key: torch.Tensor, delta: torch.Tensor, direction: torch.Tensor | None = None
) -> Iterator[None]:
    """W <- W + delta u^T / (u^T k) at `layer` for the block's life (u = `direction`, C^-1 k in ROME; None: k, the
    identity covariance), which maps k to W k + delta; the saved weight is put back on exit."""
    with lm.lock:
        weight, transposed = down_weight(lm, layer)
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
    essence: torch.Tensor  # [1, tokens] ids of the essence prompt ("{subject} is a")
    essence_position: int  # its subject's last token


def essence_paraphrase(p: Paraphrase, essence_prompt: str) -> Paraphrase:
    """The essence prompt of p's subject (ROME's "{subject} is a"), as a prompt whose subject span is known."""
    subject = p.text[p.subject_start : p.subject_end]
    start = essence_prompt.index("{subject}")
    text = essence_prompt.replace("{subject}", subject)
    return Paraphrase(p.fact_id, -1, text, "", start, start + len(subject))


def edit_target(lm: LoadedModel, p: Paraphrase, new_answer: str, essence_prompt: str) -> EditTarget:
    """What optimize_edit needs for p edited towards `new_answer` (the tokens before the subject run once)."""
    essence_ids, essence_subj = subject_positions(lm, essence_paraphrase(p, essence_prompt))
    prompt, subj = subject_positions(lm, p)
    answer = lm.tokenizer(new_answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + answer], device=lm.input_device)
    cut = subj[0]
    with torch.no_grad():
        prefix = lm.model(input_ids=ids[:, :cut], use_cache=True).cache if cut else None
    essence = torch.tensor([essence_ids], device=lm.input_device)
    return EditTarget(prefix, ids[:, cut:], subj[-1] - cut, len(prompt) - cut, answer, essence, essence_subj[-1])


def _new_logprob(lm: LoadedModel, t: EditTarget) -> torch.Tensor:
    cache = copy.deepcopy(t.prefix) if t.prefix is not None else None
    logits = lm.model(input_ids=t.tail, cache=cache, use_cache=cache is not None).logits[0].float()
    logp = torch.log_softmax(logits[t.first - 1 : t.first - 1 + len(t.answer)], -1)
    return logp.gather(-1, torch.tensor(t.answer, device=logp.device)[:, None]).sum()


def optimize_edit(lm: LoadedModel, layer: int, t: EditTarget, cfg: EditConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(key k, delta): the down projection's input at the subject's last token, and the output change to add
    there (minimising -log p(new) + kl_weight x the essence prompt's drift + the L2 penalty, module doc)."""
    seen: dict[str, torch.Tensor] = {}
    hidden = _w(lm, layer).shape[0]
    delta = torch.zeros(hidden, device=down_weight(lm, layer)[0].device, requires_grad=True)
    at = {"position": t.position, "edit": True}  # where this forward adds delta; whether it is the edit prompt's

    def read(_layer, x):
        if at["edit"]:
            seen["key"] = x[0, t.position].detach().float().clone()

    def write(_layer, y):
        if at["edit"]:
            seen.setdefault("value", y[0, t.position].detach().float().clone())
        y = y.clone()
        y[0, at["position"]] = y[0, at["position"]] + delta.to(y.device, y.dtype)
        return y

    opt = torch.optim.Adam([delta], lr=cfg.lr)
    with neuron_hooks(lm.ffn, read, layers=[layer], output=write):
        reference = essence_logprobs(lm, t, at).detach() if cfg.kl_weight else None  # delta is 0 here
        for _ in range(cfg.steps):
            opt.zero_grad()
            loss = -_new_logprob(lm, t)
            norm = seen["value"].norm().clamp(min=1e-6)
            loss = loss + cfg.weight_decay * (delta.norm() / norm) ** 2
            if reference is not None:
                drift = essence_logprobs(lm, t, at)
                loss = loss + cfg.kl_weight * torch.sum(reference.exp() * (reference - drift))
            loss.backward()
            opt.step()
            with torch.no_grad():
                limit = cfg.clamp * norm
                if delta.norm() > limit:
                    delta.mul_(limit / delta.norm())
    return seen["key"], delta.detach()


def essence_logprobs(lm: LoadedModel, t: EditTarget, at: dict) -> torch.Tensor:
    """[vocab] log-probabilities of the token after the essence prompt, with whatever the hooks add at its
    subject's last token (`at` tells the write hook where this forward adds delta)."""
    at.update(position=t.essence_position, edit=False)
    try:
        logits = lm.model(input_ids=t.essence).logits[0, -1].float()
    finally:
        at.update(position=t.position, edit=True)
    return torch.log_softmax(logits, -1)


def rome_update(
    lm: LoadedModel,
    layer: int,
    p: Paraphrase,
    key_edit: torch.Tensor,
    delta: torch.Tensor,
    cfg: EditConfig,
    covariance: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(k*, residual v* - W k*, direction C^-1 k*, None without a covariance): ROME's rank-one update for an
    optimized delta at the edit prompt's key (v* = W k_edit + delta; the bias cancels)."""
    k_star = averaged_key(lm, p, layer, cfg.key_prefixes) if cfg.key_prefixes else key_edit
    w = _w(lm, layer)
    residual = delta.float().to(w.device) + w @ (key_edit.to(w.device) - k_star.to(w.device))
    direction = None if covariance is None else torch.linalg.solve(covariance, k_star.cpu().float())
    return k_star, residual, direction

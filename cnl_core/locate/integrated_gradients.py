"""Integrated gradients per neuron (Knowledge-Neurons style), computed without repeating shared work.

For one layer, the activations at the answer positions are scaled by alpha = k/m (k = 1..m; the
`midpoint` rule uses (k - 1/2)/m), the gradient of the gold answer's log-probability is taken at each
step, averaged, and multiplied by the activation. A sample needs layers x m such gradients. Two facts
make most of that work shared, so each (layer, alpha) row computes only what its scaling changes:

- The positions before the first answer position never see the scaling (attention is causal): the
  prompt (all but its last token) runs once, and its KV cache serves every row. Only the suffix, from
  the last prompt token on, runs per row.
- The layers below the scaled one see no scaling either: a pass for layer l runs one row up to layer l,
  and there the scaled activation of m rows (one per alpha) takes the place of the one-row activation.
  From then on the residual stream has m rows (a one-row residual plus an m-row FFN output broadcasts),
  so the layers below l run once per layer instead of once per row, and the backward pass stops at l.

A sample then costs about m x suffix x layers / 2 token-layers forward and as much backward, where
repeating the whole sequence in every row costs m x tokens x layers forward. Architectures that
flatten the rows inside a layer (OPT) cannot broadcast: there every row runs from the start, with the
shared prompt still run once. The result is the same up to float rounding (tests/unit/test_integrated_gradients.py
checks it against the plain one-pass-per-(layer, alpha) loop).
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers.cache_utils import DynamicCache

from ..data.samples import Sample
from ..model.forward import EncodedBatch, gold_logprob, prefix_cache
from ..model.hooks import neuron_hooks
from ..model.kv_cache import plain_dynamic
from ..model.loading import LoadedModel

ROWS_FROM_START = ("opt",)  # model types whose layers flatten rows: an m-row FFN output cannot join a one-row residual


def ig_rows_per_pass(ig_steps: int) -> int:
    """Rows (one layer at one alpha each) in one forward+backward: the m steps of one layer."""
    return ig_steps


def alphas(ig_steps: int, rule: str) -> torch.Tensor:
    offset = 0.5 if rule == "midpoint" else 0.0
    return (torch.arange(1, ig_steps + 1, dtype=torch.float32) - offset) / ig_steps


def integrated_gradients(lm: LoadedModel, samples: Sequence[Sample], cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [samples, layers, width] float32 on CPU, gold log-prob [samples]) by integrated gradients."""
    scores = torch.zeros(len(samples), lm.grid.n_layers, lm.grid.width)
    golds = torch.empty(len(samples))
    steps = alphas(cfg.ig_steps, cfg.ig_rule)
    for i, sample in enumerate(samples):
        single = cfg.encode(lm, [sample])
        prefix, suffix = _split(lm, single)
        with torch.no_grad():
            golds[i] = gold_logprob(lm, suffix, _cache(prefix, 1, 0)).cpu()[0]
        for layer in range(lm.grid.n_layers):
            scores[i, layer] = _layer_pass(lm, prefix, suffix, layer, steps)
    return scores, golds


def _split(lm: LoadedModel, single: EncodedBatch) -> tuple[list | None, EncodedBatch]:
    """(the prompt's KV cache before the first answer position, per layer (K, V); the batch after it).

    None and the whole batch where the cache cannot be cut by hand (sliding windows) or nothing precedes."""
    start = int(single.answer_mask[0].int().argmax())
    if start == 0:
        return None, single
    with torch.no_grad():
        cache = prefix_cache(lm, single.input_ids[0, :start].tolist())
    if not plain_dynamic(cache):
        return None, single
    return [(layer.keys, layer.values) for layer in cache.layers], single.after(start)


def _cache(prefix: list | None, rows: int, from_layer: int) -> DynamicCache | None:
    """A fresh cache holding the prompt: one row in the layers below `from_layer`, `rows` rows from it on."""
    if prefix is None:
        return None
    return DynamicCache([(k, v) if layer < from_layer else (k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
                         for layer, (k, v) in enumerate(prefix)])


def _layer_pass(lm: LoadedModel, prefix: list | None, suffix: EncodedBatch, layer: int,
                steps: torch.Tensor) -> torch.Tensor:
    """[width] integrated gradients of one layer: one row per alpha from that layer on, one backward pass."""
    r, m = len(steps), len(steps)
    from_start = lm.model_type in ROWS_FROM_START
    batch = suffix.repeat(r) if from_start else suffix
    tokens = suffix.input_ids.shape[1]
    scaled: list[torch.Tensor] = []
    original: list[torch.Tensor] = []

    def hook(_layer: int, x: torch.Tensor):
        rows = x.view(-1, tokens, x.shape[-1])  # [1 or r, tokens, width] (OPT hands its FFN rows x tokens flat)
        on = suffix.answer_mask[0].to(x.device, x.dtype).view(1, -1, 1)  # [1, tokens, 1]
        alpha = steps.to(x.device, x.dtype).view(r, 1, 1)
        x_scaled = (rows * (1 + (alpha - 1) * on)).requires_grad_(True)  # [r, tokens, width], one-row x broadcast
        original.append(rows.detach())
        scaled.append(x_scaled)
        return x_scaled if x.dim() == 3 else x_scaled.view(-1, x.shape[-1])

    cols = suffix.answer_mask[0].nonzero().flatten()
    head = lm.model.get_output_embeddings()
    taken: list[bool] = []

    def answers_only(_module, args):  # the LM head on the answer columns only: [r, answers, hidden]
        taken.append(True)
        return (args[0][:, cols.to(args[0].device)], *args[1:])

    cache = _cache(prefix, r, 0 if from_start else layer + 1)  # layer l attends before its FFN: one row
    handle = head.register_forward_pre_hook(answers_only) if head is not None else None
    try:
        with neuron_hooks(lm.ffn, hook, layers=[layer]), torch.enable_grad():
            logits = lm.model(input_ids=batch.input_ids, cache=cache, use_cache=cache is not None).logits
            chosen = (logits if taken else logits[:, cols.to(logits.device)]).float()  # [r, answers, vocab]
            targets = suffix.targets[0, cols].to(chosen.device).view(1, -1, 1).expand(chosen.shape[0], -1, 1)
            gold = (chosen.gather(-1, targets).squeeze(-1) - torch.logsumexp(chosen, dim=-1)).sum()
            (grad,) = torch.autograd.grad(gold, scaled)
    finally:
        if handle is not None:
            handle.remove()
    on = suffix.answer_mask[0].to(grad.device, torch.float32).view(1, -1, 1)
    return ((original[0].float() * grad.float() * on).sum(dim=(0, 1)) / m).cpu()

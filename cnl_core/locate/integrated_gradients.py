"""Integrated gradients per neuron (Knowledge-Neurons style), computed without repeating shared work.

For one layer, the activations at the answer positions are scaled by alpha = k/m (k = 1..m; the
`midpoint` rule uses (k - 1/2)/m), the gradient of the gold answer's log-probability (`integrated_gradients`)
or of its probability (`integrated_gradients_prob`: Dai et al.'s Knowledge Neurons, whose low-alpha steps,
where p is small, weigh little) is taken at each step, averaged, and multiplied by the activation. A sample
needs layers x m such gradients. Two facts make most of that work shared, so each (layer, alpha) row computes
little more than its scaling changes:

- The positions before the first answer position never see the scaling (attention is causal): the
  prompt (all but its last token) runs once, and its KV cache serves every row. Only the suffix, from
  the last prompt token on, runs per row.
- The layers below a scaled one see no scaling either. A pass covers a group of consecutive layers: it
  runs one row up to the group's first layer l, and there the rows take over, one per (layer of the
  group, alpha), each scaled at its own layer only (a one-row residual plus a many-row FFN output
  broadcasts). So the layers below l run once per pass instead of once per row, and the backward pass
  stops at l. A group of one layer wastes nothing but re-runs the one-row layers below it in every pass;
  a group of four runs rows through up to three layers they could skip, in a quarter as many passes
  (`layers_per_pass` weighs the two).

A sample then costs about m x suffix x layers / 2 token-layers forward and as much backward, where
repeating the whole sequence in every row costs m x tokens x layers forward. Architectures that
flatten the rows inside a layer (OPT, `Adapter.flat`) cannot broadcast: there every row runs from the
start, with the shared prompt still run once. The scaling is an `Edit` (model/hooks.py), applied by
the same function as every intervention; this module's hook only keeps what the gradients need. The result is
the same up to float rounding (tests/unit/test_integrated_gradients.py checks it against the plain
one-pass-per-(layer, alpha) loop). The prompt's keys and values are copied for every row of a pass, as the cache
appends each row's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
from transformers.cache_utils import DynamicCache

from ..data.samples import Sample
from ..model.forward import EncodedBatch, gold_logprob, prefix_cache
from ..model.fused import fused_elementwise
from ..model.hooks import Edit, activation_device, neuron_hooks
from ..model.kv_cache import plain_dynamic
from ..model.loading import LoadedModel
from ..model.positions import answer_start

MAX_LAYERS_PER_PASS = 4
ONE_ROW_COST = {"cpu": 1.0, "cuda": 10.0}  # one row through a layer, in rows of a many-row pass (see layers_per_pass)
FUSED = True  # compiled norms and gated activations on a GPU (model/fused.py), where the architecture has them


def ig_rows_per_pass(ig_steps: int) -> int:
    """The most rows (one layer at one alpha each) in one forward+backward: m for each layer of a group."""
    return MAX_LAYERS_PER_PASS * ig_steps


def layers_per_pass(lm: LoadedModel, ig_steps: int) -> int:
    """How many layers a pass covers: the k that makes the least work, 1 to MAX_LAYERS_PER_PASS.

    Over a model of L layers, passes of k layers re-run the one-row layers below each group (about c L^2 / 2k
    row-layers, c = what one row through a layer costs in rows of a many-row pass) and run each row through up
    to k - 1 layers it could skip (about m L (k - 1) / 2): least at k = sqrt(c L / m). On a CPU c is about 1
    (compute-bound); on a GPU one row is launch-bound, and the H100 run's profile (bench/RESULTS.md) puts a
    one-row layer at about 10 rows' worth of a 20-row one. With layers offloaded to RAM every pass streams
    their weights: as few passes as can be."""
    device_map = getattr(lm.model, "hf_device_map", None) or {}
    if {"cpu", "disk"} & set(map(str, device_map.values())) and lm.input_device.type != "cpu":
        return MAX_LAYERS_PER_PASS
    c = ONE_ROW_COST.get(lm.input_device.type, ONE_ROW_COST["cuda"])
    return max(1, min(MAX_LAYERS_PER_PASS, round((c * lm.grid.n_layers / ig_steps) ** 0.5)))


def alphas(ig_steps: int, rule: str) -> torch.Tensor:
    offset = 0.5 if rule == "midpoint" else 0.0
    return (torch.arange(1, ig_steps + 1, dtype=torch.float32) - offset) / ig_steps


TARGETS = ("logprob", "prob")  # what is integrated: log p(answer) (ours), p(answer) (Dai et al.)


def integrated_gradients(
    lm: LoadedModel, samples: Sequence[Sample], cfg, target: str = TARGETS[0]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [samples, layers, width] float32 on CPU, gold log-prob [samples]) by integrated gradients of the
    gold answer's log-probability or (`target="prob"`) probability."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}")
    n_layers = lm.grid.n_layers
    scores = torch.zeros(len(samples), n_layers, lm.grid.width)
    golds = torch.empty(len(samples))
    steps = alphas(cfg.ig_steps, cfg.ig_rule)
    per_pass = layers_per_pass(lm, cfg.ig_steps)
    with fused_elementwise(lm.model) if FUSED else nullcontext():
        for i, sample in enumerate(samples):
            prefix, suffix = _split(lm, cfg.encode(lm, [sample]))
            with torch.no_grad():
                golds[i] = gold_logprob(lm, suffix, _cache(prefix, 1, 0)).cpu()[0]
            for first in range(0, n_layers, per_pass):
                group = list(range(first, min(first + per_pass, n_layers)))
                scores[i, group] = _group_pass(lm, prefix, suffix, group, steps, target)
    return scores, golds


def _split(lm: LoadedModel, single: EncodedBatch) -> tuple[list | None, EncodedBatch]:
    """(the prompt's KV cache before the first answer position, per layer (K, V); the batch after it).

    None and the whole batch where the cache cannot be cut by hand (sliding windows) or nothing precedes."""
    start = int(answer_start(single.answer_mask)[0])
    if start == 0 or not plain_dynamic(DynamicCache(config=lm.model.config)):
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
    return DynamicCache(
        [
            (k, v) if layer < from_layer else (k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
            for layer, (k, v) in enumerate(prefix)
        ]
    )


def _group_pass(
    lm: LoadedModel,
    prefix: list | None,
    suffix: EncodedBatch,
    group: list[int],
    steps: torch.Tensor,
    target: str = TARGETS[0],
) -> torch.Tensor:
    """[layers of the group, width] integrated gradients: one row per (layer, alpha) from the group's first layer
    on, one backward pass. Row j * m + k is scaled by alpha k at the group's layer j and by 1 elsewhere."""
    m = len(steps)
    r = len(group) * m
    from_start = lm.ffn.adapter.flat  # a many-row FFN output cannot join a one-row residual there
    batch = suffix.repeat(r) if from_start else suffix
    on = suffix.answer_mask[0].view(1, -1, 1).float()  # [1, tokens, 1]
    # Each layer's [r, tokens, 1] factors, made before the pass (a copy from the host inside it is a wait): row
    # j * m + k is scaled by alpha k at answer positions of the group's layer j, by 1 elsewhere. float32, rounded
    # once to the activations' dtype.
    factors = {}
    for j, layer in enumerate(group):
        alpha = torch.ones(r)
        alpha[j * m : (j + 1) * m] = steps
        device = activation_device(lm, layer)
        factor = 1 + (alpha.to(device).view(r, 1, 1) - 1) * on.to(device)
        factors[layer] = factor if lm.model.dtype == torch.float32 else factor.to(lm.model.dtype)
    edit = Edit(factors, dict.fromkeys(group))  # whole layers
    scaled: list[torch.Tensor] = []
    original: list[torch.Tensor] = []

    def hook(layer: int, x: torch.Tensor):
        x_scaled = edit.apply(layer, x)  # [r, tokens, width]: a one-row x broadcasts
        if not x_scaled.requires_grad:  # the group's first layer: nothing upstream needs gradients
            x_scaled.requires_grad_(True)
        original.append(x.detach())
        scaled.append(x_scaled)
        return x_scaled

    cache = _cache(prefix, r, 0 if from_start else group[0] + 1)  # the first layer attends before its FFN: one row
    with neuron_hooks(lm.ffn, hook, layers=group), torch.enable_grad():
        gold = gold_logprob(lm, batch, cache, widen=None if from_start else r)  # [r]: each row's own
        gold = (gold.exp() if target == "prob" else gold).sum()
        grads = torch.autograd.grad(gold, scaled)
    out = torch.empty(len(group), lm.grid.width, device=original[0].device)
    for j, (x, g) in enumerate(zip(original, grads)):
        block = slice(j * m, (j + 1) * m)
        x = x if x.shape[0] == 1 else x[block]  # the group's first layer saw one row
        out[j] = (x.float() * g[block].float() * on.to(g.device)).sum(dim=(0, 1)) / m
    return out.cpu()

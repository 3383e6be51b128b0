"""Fine-tuning only the located neurons' weights (the paper's other proof).

A neuron's weights are its row in each up/gate projection and its column in the down
projection. Everything else is frozen: gradients outside those rows/columns are masked to
zero, and with no weight decay Adam then leaves those entries exactly unchanged. The original
weights are restored when the context ends, so the shared model is never left modified.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import cast

import torch
from torch import nn

from .. import fields as F
from ..data.samples import Sample
from ..errors import ParameterError
from ..locate.scorers import ScoreConfig
from ..model.forward import gold_logprob
from ..model.loading import LoadedModel
from ..model.neurons import NeuronSet


def _neuron_masks(lm: LoadedModel, neurons: NeuronSet) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """(weight, bool mask of the entries belonging to the neurons) for every touched projection."""
    width = lm.grid.width
    out = []
    for layer, idx in neurons.by_layer().items():
        idx_t = torch.from_numpy(idx)
        modules = [(lm.ffn.down[layer], "down")] + [(ups[layer], "up") for ups in lm.ffn.up.values()]
        for module, role in modules:
            w = cast(nn.Parameter, module.weight)
            if w.dtype not in (torch.float32, torch.float16, torch.bfloat16):
                raise ParameterError("Fine-tuning needs an unquantized model (load it without 8/4-bit).")
            mask = torch.zeros_like(w, dtype=torch.bool)
            conv1d = not isinstance(module, nn.Linear)  # transformers' Conv1D stores [in, out]
            neuron_dim = (1 if role == "down" else 0) ^ int(conv1d)
            rows = torch.cat([idx_t + k * width for k in range(w.shape[neuron_dim] // width)])
            mask.index_fill_(neuron_dim, rows.to(w.device), True)
            out.append((w, mask))
    return out


@contextmanager
def finetuned(
    lm: LoadedModel,
    neurons: NeuronSet,
    samples: Sequence[Sample],
    steps: int = 20,
    lr: float = 1e-3,
    batch_size: int = 4,
    cancel: threading.Event | None = None,
) -> Iterator[list[float]]:
    """Train only the given neurons on samples for `steps` steps; yields the losses; restores on exit."""
    F.FT_STEPS.typed(steps)
    F.FT_LR.typed(lr)
    if len(neurons) == 0:
        raise ParameterError("The neuron set is empty: nothing to fine-tune.")
    with lm.lock:
        masks = _neuron_masks(lm, neurons)
        originals = [w.detach().clone() for w, _ in masks]
        hooks = []
        try:
            for w, mask in masks:
                w.requires_grad_(True)
                hooks.append(w.register_hook(lambda g, m=mask: g * m.to(g.dtype)))
            opt = torch.optim.Adam([w for w, _ in masks], lr=lr, weight_decay=0.0)
            cfg = ScoreConfig()
            losses = []
            for step in range(steps):
                if cancel is not None and cancel.is_set():
                    break
                start = (step * batch_size) % len(samples)
                chunk = [samples[(start + j) % len(samples)] for j in range(min(batch_size, len(samples)))]
                batch = cfg.encode(lm, chunk)
                loss = -(gold_logprob(lm, batch) / batch.answer_mask.sum(-1).clamp(min=1)).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            for w, _ in masks:
                w.requires_grad_(False)
            yield losses
        finally:
            for h in hooks:
                h.remove()
            with torch.no_grad():
                for (w, _), orig in zip(masks, originals):
                    w.requires_grad_(False)
                    w.copy_(orig)
                    w.grad = None

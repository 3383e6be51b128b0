"""Hooks on the neurons: read them, or switch them off (zero) or up (amplify) while the model runs.

Every read and edit goes through a forward pre-hook on the FFN down projection, whose input is
the neuron vector. Hooks live only inside a context manager, so they are removed on exit, also
after an exception. An intervention also holds the model's lock for its whole life, so two
interventions (two visitors of the app, two threads) never overlap.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from .. import fields as F
from ..errors import ParameterError
from ..options import DEFAULTS, INTERVENTION_MODES, POSITIONS
from .architectures import FFNAccess
from .loading import LoadedModel
from .neurons import NeuronSet

HookFn = Callable[[int, torch.Tensor], torch.Tensor | None]


@contextmanager
def neuron_hooks(ffn: FFNAccess, fn: HookFn, layers: Sequence[int] | None = None) -> Iterator[None]:
    """Call fn(layer, x[batch, tokens, width]) before each down projection; a returned tensor replaces x.

    The hooks are removed on exit whatever happens inside the block.
    """
    handles = []
    try:
        for layer in range(ffn.grid.n_layers) if layers is None else layers:

            def hook(_module, args, _layer=layer):
                out = fn(_layer, args[0])
                return None if out is None else (out, *args[1:])

            handles.append(ffn.down[layer].register_forward_pre_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class Intervention:
    neurons: NeuronSet
    mode: str = "zero"
    factor: float = DEFAULTS.amplify_factor  # used by amplify
    positions: str = "all"  # all token positions, or only those that predict answer tokens

    def __post_init__(self):
        if self.mode not in INTERVENTION_MODES:
            raise ParameterError(f"Intervention must be one of {', '.join(INTERVENTION_MODES)}.")
        if self.positions not in POSITIONS:
            raise ParameterError(f"Positions must be one of {', '.join(POSITIONS)}.")
        if self.mode == "amplify":
            F.FACTOR.typed(self.factor)
            if self.factor == 0:
                raise ParameterError("Amplify factor 0 switches the neurons off: choose the 'zero' intervention instead.")

    @staticmethod
    def from_inputs(neurons: NeuronSet, mode: str, factor, positions: str = "all") -> "Intervention":
        """From a form or the command line: the factor may be text, and is read only when amplifying."""
        return Intervention(neurons, mode, F.FACTOR.check(factor) if mode == "amplify" else DEFAULTS.amplify_factor,
                            positions)

    @property
    def scale(self) -> float:
        return 0.0 if self.mode == "zero" else float(self.factor)

    def describe(self) -> dict:
        return {"mode": self.mode, "factor": self.scale, "positions": self.positions, "n_neurons": len(self.neurons)}


def _check_grid(lm: LoadedModel, iv: Intervention) -> None:
    if iv.neurons.grid != lm.grid:
        raise ParameterError("The neuron set was located on a different model grid.")


class InterventionHandle:
    """Lets the evaluator say which positions are answer positions for the next forward pass."""

    def __init__(self):
        self.answer_mask: torch.Tensor | None = None  # [batch, tokens] bool, or None


@contextmanager
def intervene(lm: LoadedModel, iv: Intervention | None) -> Iterator[InterventionHandle]:
    """Apply iv to every forward pass inside the block (None: run the unmodified model)."""
    handle = InterventionHandle()
    with lm.lock:
        if iv is None or len(iv.neurons) == 0:
            yield handle
            return
        _check_grid(lm, iv)
        index = {layer: torch.from_numpy(idx) for layer, idx in iv.neurons.by_layer().items()}
        scale = iv.scale

        def hook(layer: int, x: torch.Tensor):
            idx = index[layer].to(x.device)
            x = x.clone()
            if iv.positions == "all":
                x[..., idx] = x[..., idx] * scale
                return x
            if x.shape[1] == 1:  # a decoding step: the token it predicts is part of the answer
                where = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
            elif handle.answer_mask is not None:
                where = handle.answer_mask.to(x.device)
            else:  # generation prefill: only the last prompt position predicts an answer token
                where = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
                where[:, -1] = True
            sub = x[..., idx]
            x[..., idx] = torch.where(where.unsqueeze(-1), sub * scale, sub)
            return x

        with neuron_hooks(lm.ffn, hook, layers=sorted(index)):
            yield handle


class RowScales:
    """Per-row neuron factors for a batch whose rows run under different interventions, one layer each:
    [rows, width], 1 where nothing changes. Rows that leave the batch leave these too (`keep`)."""

    def __init__(self, by_layer: dict[int, torch.Tensor]):
        self.by_layer = by_layer

    def keep(self, rows: torch.Tensor) -> None:
        self.by_layer = {layer: t[rows.to(t.device)] for layer, t in self.by_layer.items()}


@contextmanager
def intervene_rows(lm: LoadedModel, ivs: Sequence[Intervention | None], sizes: Sequence[int]) -> Iterator[RowScales]:
    """Decoding steps where the first sizes[0] rows run under ivs[0], the next sizes[1] under ivs[1], and so on.

    Every position is changed, whatever the intervention's `positions`: a decoding step's token predicts
    an answer token. This is `intervene` for several interventions side by side in one batch.
    """
    with lm.lock:
        grid, rows = lm.grid, sum(sizes)
        scales: dict[int, torch.Tensor] = {}
        start = 0
        for iv, n in zip(ivs, sizes):
            if iv is not None and len(iv.neurons):
                _check_grid(lm, iv)
                for layer, idx in iv.neurons.by_layer().items():
                    if layer not in scales:
                        scales[layer] = torch.ones((rows, grid.width), device=lm.ffn.down[layer].weight.device)
                    scales[layer][start : start + n, torch.from_numpy(idx).to(scales[layer].device)] = iv.scale
            start += n
        state = RowScales(scales)
        if not scales:
            yield state
            return

        def hook(layer: int, x: torch.Tensor):
            # float32 factors (a bfloat16 1.3 would be 1.297); rows first, whatever the layer's shape (OPT flattens)
            factor = state.by_layer[layer]
            rows = x.reshape(factor.shape[0], -1, x.shape[-1])
            return (rows.float() * factor[:, None, :]).to(x.dtype).reshape(x.shape)

        with neuron_hooks(lm.ffn, hook, layers=sorted(scales)):
            yield state

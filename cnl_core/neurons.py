"""What a "neuron" is, per architecture, and how to read or edit neurons with hooks.

A neuron is one unit of the FFN intermediate activation: the *input* of the FFN's down
projection (after the non-linearity and gating). It is addressed as (layer, index). Every
read and edit goes through a forward pre-hook on the down projection; hooks live only inside
a context manager so they are removed on exit, also after an exception.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .errors import NeuronSetError, UnsupportedModelError


@dataclass(frozen=True)
class Adapter:
    """Where a model type keeps its FFN, relative to one decoder layer."""

    down: str  # module whose input is the neuron vector
    up: tuple[str, ...]  # modules whose outputs produce the neurons (rows/columns trained by fine-tuning)
    fused_up: bool = False  # phi3: gate and up stacked in one projection of 2 x width outputs


_LLAMA_LIKE = Adapter(down="mlp.down_proj", up=("mlp.gate_proj", "mlp.up_proj"))

ADAPTERS: dict[str, Adapter] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "gemma3": _LLAMA_LIKE,
    "gemma3_text": _LLAMA_LIKE,
    "phi3": Adapter(down="mlp.down_proj", up=("mlp.gate_up_proj",), fused_up=True),
    "gpt2": Adapter(down="mlp.c_proj", up=("mlp.c_fc",)),
    "gptj": Adapter(down="mlp.fc_out", up=("mlp.fc_in",)),
    "gpt_neox": Adapter(down="mlp.dense_4h_to_h", up=("mlp.dense_h_to_4h",)),
    "opt": Adapter(down="fc2", up=("fc1",)),
    "falcon": Adapter(down="mlp.dense_4h_to_h", up=("mlp.dense_h_to_4h",)),
}

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(ADAPTERS))


def neuron_definition(model_type: str) -> str:
    """A short, stable text naming the neuron vector; it is part of every cache key."""
    return f"input of {adapter_for(model_type).down}"


def adapter_for(model_type: str) -> Adapter:
    if model_type not in ADAPTERS:
        raise UnsupportedModelError(
            f"Model type '{model_type}' is not supported for neuron localization. "
            f"Supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}."
        )
    return ADAPTERS[model_type]


def _layer_modules(model: nn.Module, suffix: str) -> list[nn.Module]:
    pattern = re.compile(rf"^(?:.+\.)?(\d+)\.{re.escape(suffix)}$")
    found: dict[int, nn.Module] = {}
    for name, module in model.named_modules():
        m = pattern.match(name)
        if m:
            found[int(m.group(1))] = module
    return [found[i] for i in sorted(found)]


def _in_width(module: nn.Module) -> int:
    if hasattr(module, "in_features"):
        return int(module.in_features)
    if hasattr(module, "nf"):  # transformers' Conv1D: weight is [in, out]
        return int(module.weight.shape[0])
    raise UnsupportedModelError(f"Cannot tell the input width of {type(module).__name__}.")


@dataclass(frozen=True)
class NeuronGrid:
    """layers x width neurons; flat id = layer * width + index."""

    n_layers: int
    width: int

    @property
    def total(self) -> int:
        return self.n_layers * self.width

    def as_dict(self) -> dict:
        return {"n_layers": self.n_layers, "width": self.width, "total": self.total}


class FFNAccess:
    """The down projections (and up projections) of one model, in layer order."""

    def __init__(self, model: nn.Module, model_type: str):
        self.adapter = adapter_for(model_type)
        self.down = _layer_modules(model, self.adapter.down)
        if not self.down:
            raise UnsupportedModelError(
                f"No '{self.adapter.down}' modules found in this {model_type} model."
            )
        self.up = {s: _layer_modules(model, s) for s in self.adapter.up}
        widths = {_in_width(m) for m in self.down}
        if len(widths) != 1:
            raise UnsupportedModelError("FFN widths differ between layers; not supported.")
        self.grid = NeuronGrid(len(self.down), widths.pop())


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
class NeuronSet:
    """An immutable set of neurons on a grid, stored as sorted flat ids."""

    grid: NeuronGrid
    flat: np.ndarray  # int64, sorted, unique

    @staticmethod
    def from_flat(grid: NeuronGrid, flat: Sequence[int] | np.ndarray) -> "NeuronSet":
        arr = np.unique(np.asarray(flat, dtype=np.int64))
        if arr.size and (arr[0] < 0 or arr[-1] >= grid.total):
            raise NeuronSetError(f"Neuron ids out of range for a {grid.n_layers} x {grid.width} grid.")
        return NeuronSet(grid, arr)

    @staticmethod
    def from_pairs(grid: NeuronGrid, pairs: Sequence[Sequence[int]]) -> "NeuronSet":
        """Build from [layer, index] pairs, rejecting any the grid does not have."""
        flat = []
        for pair in pairs:
            if len(pair) != 2:
                raise NeuronSetError(f"A neuron must be a [layer, index] pair, got {pair!r}.")
            layer, index = (int(v) for v in pair)
            if not (0 <= layer < grid.n_layers):
                raise NeuronSetError(f"Layer {layer} does not exist (the model has layers 0..{grid.n_layers - 1}).")
            if not (0 <= index < grid.width):
                raise NeuronSetError(f"Neuron index {index} does not exist (layers have {grid.width} neurons).")
            flat.append(layer * grid.width + index)
        return NeuronSet.from_flat(grid, flat)

    @staticmethod
    def from_mask(mask: torch.Tensor) -> "NeuronSet":
        grid = NeuronGrid(*mask.shape)
        return NeuronSet(grid, torch.nonzero(mask.flatten()).flatten().cpu().numpy().astype(np.int64))

    def __len__(self) -> int:
        return int(self.flat.size)

    def pairs(self) -> list[list[int]]:
        return [[int(f // self.grid.width), int(f % self.grid.width)] for f in self.flat]

    def by_layer(self) -> dict[int, np.ndarray]:
        layers = self.flat // self.grid.width
        return {int(l): self.flat[layers == l] % self.grid.width for l in np.unique(layers)}

    def per_layer_counts(self) -> list[int]:
        return np.bincount(self.flat // self.grid.width, minlength=self.grid.n_layers).tolist()

    def mask(self) -> torch.Tensor:
        m = torch.zeros(self.grid.total, dtype=torch.bool)
        m[torch.from_numpy(self.flat)] = True
        return m.view(self.grid.n_layers, self.grid.width)

"""What a "neuron" is, per architecture: the adapter table, one line per model type.

A neuron is one unit of the FFN intermediate activation: the *input* of the FFN's down
projection (after the non-linearity and gating), addressed as (layer, index). Supporting a new
architecture is one line in `ADAPTERS`: where its down and up projections sit in a decoder layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from ..errors import UnsupportedModelError
from .neurons import NeuronGrid


@dataclass(frozen=True)
class Adapter:
    """Where a model type keeps its FFN, relative to one decoder layer."""

    down: str  # module whose input is the neuron vector
    up: tuple[str, ...]  # modules whose outputs produce the neurons (rows/columns trained by fine-tuning)
    fused_up: bool = False  # phi3: gate and up stacked in one projection of 2 x width outputs
    final_norm: str = "model.norm"  # the norm before the unembedding (a full module path, for vocabulary projection)
    flat: bool = False  # the layer flattens rows and tokens into one dimension before its FFN (hooks.neuron_hooks)


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
    "gpt2": Adapter(down="mlp.c_proj", up=("mlp.c_fc",), final_norm="transformer.ln_f"),
    "gptj": Adapter(down="mlp.fc_out", up=("mlp.fc_in",), final_norm="transformer.ln_f"),
    "gpt_neox": Adapter(down="mlp.dense_4h_to_h", up=("mlp.dense_h_to_4h",), final_norm="gpt_neox.final_layer_norm"),
    "opt": Adapter(down="fc2", up=("fc1",), final_norm="model.decoder.final_layer_norm", flat=True),
    "falcon": Adapter(down="mlp.dense_4h_to_h", up=("mlp.dense_h_to_4h",), final_norm="transformer.ln_f"),
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


def _layer_modules(model: nn.Module, suffix: str, holders: bool = False) -> list[nn.Module]:
    """The modules named `<...>.<layer number>.<suffix>`, in layer order; with `holders`, the decoder layers that
    hold them (`<...>.<layer number>`)."""
    pattern = re.compile(rf"^((?:.+\.)?(\d+))\.{re.escape(suffix)}$")
    modules = dict(model.named_modules())
    found: dict[int, nn.Module] = {}
    for name, module in modules.items():
        m = pattern.match(name)
        if m:
            found[int(m.group(2))] = modules[m.group(1)] if holders else module
    return [found[i] for i in sorted(found)]


def _in_width(module: nn.Module) -> int:
    if hasattr(module, "in_features"):
        return int(cast(int, module.in_features))
    if hasattr(module, "nf"):  # transformers' Conv1D: weight is [in, out]
        return int(cast(torch.Tensor, module.weight).shape[0])
    raise UnsupportedModelError(f"Cannot tell the input width of {type(module).__name__}.")


class FFNAccess:
    """The down projections (and up projections) of one model, in layer order."""

    def __init__(self, model: nn.Module, model_type: str):
        self.adapter = adapter_for(model_type)
        self.down = _layer_modules(model, self.adapter.down)
        if not self.down:
            raise UnsupportedModelError(f"No '{self.adapter.down}' modules found in this {model_type} model.")
        self.blocks = _layer_modules(model, self.adapter.down, holders=True)  # the decoder layers, in order
        self.up = {s: _layer_modules(model, s) for s in self.adapter.up}
        self.final_norm = dict(model.named_modules()).get(self.adapter.final_norm)
        widths = {_in_width(m) for m in self.down}
        if len(widths) != 1:
            raise UnsupportedModelError("FFN widths differ between layers; not supported.")
        self.grid = NeuronGrid(len(self.down), widths.pop())

    def down_weight(self, layer: int) -> torch.Tensor:
        """The weight of a layer's down projection (typed: torch types a module's attributes Tensor | Module)."""
        return cast(torch.Tensor, self.down[layer].weight)

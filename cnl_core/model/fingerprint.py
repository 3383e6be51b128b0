"""A cheap fingerprint of a model's weights: part of every score cache key, so changed weights never reuse scores."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ModelLoadError

if TYPE_CHECKING:  # transformers is imported lazily (start-up time); the type is for mypy only
    from transformers import PreTrainedModel


def weight_fingerprint(model: PreTrainedModel) -> str:
    """A cheap hash of the config and a strided sample of every weight: changes when the weights do.

    Layers offloaded by device_map='auto' hold empty (meta) tensors; their values wait in accelerate's weights
    map, and are read from there."""
    h = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    for name, tensor in list(model.state_dict().items()):
        if tensor.is_meta:
            tensor = _offloaded_value(model, name)
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // 257)
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(flat[::step].to("cpu", torch.float32 if flat.is_floating_point() else flat.dtype).numpy().tobytes())
    return h.hexdigest()[:16]


def _offloaded_value(model: nn.Module, name: str) -> torch.Tensor:
    """The value of an offloaded parameter or buffer: accelerate's hook on its module keeps it, by local name."""
    owner, _, local = name.rpartition(".")
    hook = getattr(model.get_submodule(owner), "_hf_hook", None)
    for one in [hook, *getattr(hook, "hooks", ())]:
        weights = getattr(one, "weights_map", None)
        if weights is not None and local in weights:
            return weights[local]
    raise ModelLoadError(f"'{name}' was offloaded to RAM or disk, and its values cannot be found there.")

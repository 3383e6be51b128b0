"""The neuron grid of a model from its config alone: a neuron the model does not have is refused in a second.

A load takes seconds (the built-in model) to many minutes (a 70B download); the layers x width grid is
known from the config. The model is built on the meta device (no memory, no weights) and measured by the
same adapter table the loaded model uses, so the grid is the loaded model's, not a guess from config
field names. The memory estimate builds it the same way (memory.model_size).
"""

from __future__ import annotations

import warnings

import torch

from .architectures import FFNAccess
from .build_lock import BUILD_LOCK
from .model_source import read_config
from .neurons import NeuronGrid
from .spec import ModelSpec


def config_grid(spec: ModelSpec) -> NeuronGrid:
    """layers x width of the model `spec` names, read from its config; ModelLoadError as load_model would."""
    from transformers import AutoModelForCausalLM

    config, model_type = read_config(spec)
    # the meta device is a per-thread default; BUILD_LOCK keeps other threads' real loads apart from it
    with BUILD_LOCK, torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(config)
    return FFNAccess(model, model_type).grid

"""Fused elementwise kernels for many-row passes on a GPU: the RMSNorms and the SiLU-gated activation of
Llama-family layers, each compiled once by torch.compile (Triton) into one kernel forward and one backward.

Why: integrated gradients runs 20 to 80 rows of a sample through every layer above the scaled one, forward and
backward. Its matrix products run near the card's peak; eager PyTorch runs each RMSNorm as six kernels (a
float32 copy, square, mean, rsqrt, product, cast) and the gated activation as two, each a full pass over memory,
and again in the backward pass (bench/RESULTS.md, the IG profile). The compiled versions compute the same
formulas, the norm in float32 as the eager one does; results agree to float rounding
(tests/gpu checks them against the eager model).

Only modules of the classes named below are swapped, and only while the context is open: the hooks on the down
projections (model/hooks.py) still see and edit the same neuron vector, since the down projection itself is not
touched. On a CPU, or for other architectures, nothing changes.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

NORMS = frozenset({"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm"})  # weight * norm(x).to(dtype)
GATED_MLPS = frozenset({"LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP"})  # down(act(gate(x)) * up(x))


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return nn.functional.silu(gate) * up


@functools.cache
def _compiled(fn: Callable) -> Callable:
    return torch.compile(fn, dynamic=True)


def _norm_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    return _compiled(_rms_norm)(hidden_states, self.weight, self.variance_epsilon)


def _mlp_forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.down_proj(_compiled(_silu_mul)(self.gate_proj(x), self.up_proj(x)))


def _swappable(module: nn.Module) -> Callable | None:
    if "forward" in vars(module):  # already wrapped (accelerate's hook that brings offloaded weights in): keep it
        return None
    name = type(module).__name__
    if name in NORMS and hasattr(module, "variance_epsilon"):
        return _norm_forward
    if name in GATED_MLPS and type(getattr(module, "act_fn", None)).__name__ in ("SiLUActivation", "SiLU"):
        return _mlp_forward
    return None


@contextmanager
def fused_elementwise(model: nn.Module) -> Iterator[int]:
    """Inside the block, the model's RMSNorms and SiLU-gated MLPs run compiled kernels (on CUDA; elsewhere nothing
    changes). Yields how many modules were swapped; they are restored on exit, also after an exception."""
    swapped: list[nn.Module] = []
    try:
        if next(model.parameters()).is_cuda:
            for module in model.modules():
                forward = _swappable(module)
                if forward is not None:
                    module.forward = types.MethodType(forward, module)
                    swapped.append(module)
        yield len(swapped)
    finally:
        for module in swapped:
            del module.forward  # the class's own forward again

"""Two fixes that make bitsandbytes models on a CPU do what quantization promises: gradients, and less RAM.

- nf4's packed CPU format is turned off. On a CPU with AVX512-BF16 the first forward pass without
  gradients converts an nf4 weight for good to a packed layout whose kernel computes in bfloat16 and
  has no backward: gradient scores (grad_x_act, integrated gradients) would fail after it, and scores
  would depend on whether a forward-only pass came first. (That kernel is fastest with the `kernels`
  package, which fetches it from the Hugging Face Hub at run time: not usable offline, so not used.)
- The weights file is let go. Layers bitsandbytes does not quantize (embeddings, norms) stay views of
  the memory-mapped safetensors file, which keeps the whole float32 file mapped and its pages counted
  against the process; and the float weights read for conversion leave freed heap behind. Copying the
  few unquantized tensors and trimming the heap took the built-in model in nf4 from more RSS than
  float32 to about two thirds of it (measured in bench/quantized.py).
"""

from __future__ import annotations

import ctypes
import gc
import logging

import torch
from torch import nn

# bitsandbytes warns at import, on every run, that the `kernels` package is missing for a kernel not used here.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    lambda record: "gemm_4bit_forward from kernels-community" not in record.getMessage()
)


def keep_4bit_differentiable(model: nn.Module) -> None:
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):  # bitsandbytes' 4-bit layers (a plain bool flag)
            module.support_avx512bf16_for_cpu = False  # type: ignore[assignment]  # torch types module attrs Tensor | Module


def release_weights_file(model: nn.Module) -> None:
    """Copy the unquantized CPU tensors out of the file mapping, then give freed heap back to the system."""
    with torch.no_grad():
        for param in model.parameters():  # a tied weight is one Parameter: copied once
            if type(param) is nn.Parameter and param.device.type == "cpu":
                param.data = param.data.clone()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the heap is left as it is
        pass

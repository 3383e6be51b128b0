"""How much memory a model run needs, estimated from the config before any weight loads.

Why: a model that does not fit should be refused (or quantized, or offloaded, or run in smaller
batches) in seconds, from its config, instead of after minutes of loading or with the operating
system killing the process. The estimate is weights (by dtype and bitsandbytes quantization) plus the
activation and gradient peak of one scoring pass (rows x tokens, with or without a backward pass),
against the free GPU memory or RAM. It is a rough figure (within about 2x of a measured peak): the
decisions it drives keep a 10% margin and the scorer still halves its batch on an out-of-memory error.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import ModelLoadError
from ..options import DEFAULTS
from .build_lock import BUILD_LOCK

if TYPE_CHECKING:  # transformers is imported lazily (start-up time); the type is for mypy only
    from transformers import PretrainedConfig

MARGIN = 0.9  # use at most this share of the free memory
GIB = 2**30
# Bytes per weight that bitsandbytes quantizes (the decoder's linear layers; embeddings, norms and the
# LM head keep the model's dtype): int8 + one float per row; nf4 packs two per byte + a float per 64.
QUANT_BYTES = {"8bit": 1.0, "4bit": 0.5 + 4 / 64}
QUANT_NAMES = {"none": "", "8bit": "8-bit", "4bit": "nf4"}


@dataclass(frozen=True)
class ModelSize:
    """The shape of a model as its config describes it (counted on the meta device: no memory used)."""

    params: int
    quantizable: int  # parameters in the decoder's linear layers: what 8/4-bit stores in fewer bytes
    n_layers: int
    hidden: int
    intermediate: int
    vocab: int
    heads: int


def model_size(config: PretrainedConfig) -> ModelSize:
    """Parameter counts and layer sizes of the model a config describes, without allocating weights.

    O(1) in the layer count: the model is built (on the meta device) with one and with two layers, and the
    second layer's parameters are counted once for every layer (a config of 100,000 layers once took minutes
    and gigabytes to build whole). Layers that differ from the second (a few mixture-of-experts layouts) make
    this an estimate, as the rest of this module is."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = int(getattr(text, "num_hidden_layers", 0) or getattr(text, "n_layer", 0))
    if layers <= 2:
        params, quantizable = _count(config)
    else:
        (p1, q1), (p2, q2) = _count(_with_layers(config, layers, 1)), _count(_with_layers(config, layers, 2))
        params, quantizable = p1 + (layers - 1) * (p2 - p1), q1 + (layers - 1) * (q2 - q1)
    hidden = int(getattr(text, "hidden_size", 0) or getattr(text, "n_embd", 0))
    return ModelSize(
        params=params,
        quantizable=quantizable,
        n_layers=layers,
        hidden=hidden,
        intermediate=int(getattr(text, "intermediate_size", 0) or getattr(text, "n_inner", 0) or 4 * hidden),
        vocab=int(getattr(text, "vocab_size", 0)),
        heads=int(getattr(text, "num_attention_heads", 0) or getattr(text, "n_head", 0) or 1),
    )


def _with_layers(config: PretrainedConfig, layers: int, keep: int) -> PretrainedConfig:
    """A copy of the config with only `keep` layers; per-layer lists (layer_types...) cut to match."""
    config = copy.deepcopy(config)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key, value in list(vars(text).items()):
        if isinstance(value, (list, tuple)) and len(value) == layers:
            setattr(text, key, type(value)(value[:keep]))
    text.num_hidden_layers = keep
    return config


def _count(config: PretrainedConfig) -> tuple[int, int]:
    """(parameters, parameters in the decoder's linear layers) of the model the config builds, on the meta device."""
    from torch import nn
    from transformers import AutoModelForCausalLM

    # torch.device("meta") is a per-thread default; accelerate's init_empty_weights patches nn.Module for every
    # thread, so a visitor's model loading beside this count would get weights without data.
    with BUILD_LOCK, torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(config)
    model.tie_weights()  # a tied LM head shares the embedding's memory
    head = model.get_output_embeddings()
    quantizable = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear) and m is not head)
    return sum(p.numel() for p in model.parameters()), quantizable


@dataclass(frozen=True)
class Workload:
    """The largest pass a run makes: rows x tokens, and whether it keeps activations for a backward pass."""

    method: str = "grad_x_act"
    rows: int = DEFAULTS.batch_size
    tokens: int = DEFAULTS.estimate_tokens
    backward: bool = True
    fixed_rows: bool = False  # the rows do not follow the batch size (integrated gradients)

    def smallest(self) -> Workload:
        """The least this run can do: one row per pass, unless its rows are fixed."""
        return self if self.fixed_rows else replace(self, rows=1)

    def describe(self) -> str:
        return f"{self.method}, {self.rows} x {self.tokens} tokens"


def weight_bytes(size: ModelSize, quantization: str, dtype_bytes: int) -> int:
    """Bytes of the weights in memory: quantized linear layers, everything else in the model's dtype."""
    if quantization not in QUANT_BYTES:
        return size.params * dtype_bytes
    rest = size.params - size.quantizable
    return int(size.quantizable * QUANT_BYTES[quantization] + rest * dtype_bytes)


def peak_bytes(size: ModelSize, work: Workload, dtype_bytes: int) -> int:
    """Activation (and gradient) peak of one pass above the weights.

    Forward only: one layer's temporaries at a time. With a backward pass every layer keeps about
    8 hidden-sized and 4 FFN-sized tensors per token and its attention weights, and the gradients of
    one layer exist at a time. The LM head runs on the answer positions only (taken as a quarter).
    """
    tokens = work.rows * work.tokens
    per_layer = tokens * (8 * size.hidden + 4 * size.intermediate) + work.rows * size.heads * work.tokens**2
    head = tokens // 4 * size.vocab * 4 * (3 if work.backward else 2)  # float32 logits, log-softmax, gradient
    if work.backward:
        return int(per_layer * dtype_bytes * (size.n_layers + 2) + head)
    return int(per_layer * dtype_bytes * 2 + head)


@dataclass(frozen=True)
class MemoryEstimate:
    """Weights and peak of a run against the free memory of the place it runs."""

    size: ModelSize
    quantization: str  # none / 8bit / 4bit
    dtype: str
    work: Workload
    weight_bytes: int
    peak_bytes: int
    free_bytes: int
    where: str  # "GPU", "RAM" or "GPU + RAM" (device_map='auto')

    @property
    def need_bytes(self) -> int:
        return self.weight_bytes + self.peak_bytes

    @property
    def fits(self) -> bool:
        return self.need_bytes <= self.free_bytes * MARGIN

    def describe(self) -> str:
        precision = QUANT_NAMES.get(self.quantization) or self.dtype
        verdict = "fits" if self.fits else "does NOT fit"
        return (
            f"{self.size.params / 1e6:,.0f}M parameters in {precision}: weights {_gib(self.weight_bytes)} + "
            f"peak {_gib(self.peak_bytes)} ({self.work.describe()}) = {_gib(self.need_bytes)} of "
            f"{_gib(self.free_bytes)} free {self.where}: {verdict}"
        )


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def estimate(
    size: ModelSize, quantization: str, dtype: str, dtype_bytes: int, work: Workload, free: int, where: str
) -> MemoryEstimate:
    return MemoryEstimate(
        size,
        quantization,
        dtype,
        work,
        weight_bytes(size, quantization, dtype_bytes),
        peak_bytes(size, work, dtype_bytes),
        free,
        where,
    )


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an error from a pass is the device running out of memory (CUDA, or a backend that says so)."""
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def release_cached_memory() -> None:
    """Give the GPU memory PyTorch holds unused back, before a retry in smaller batches."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def free_ram_bytes() -> int:
    """RAM this process can still use: MemAvailable, capped by a cgroup (container) limit if one is set."""
    free = None
    try:
        with open("/proc/meminfo") as fh:
            free = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        pass
    if free is None:
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(0, free)


def free_gpu_bytes(devices: Iterable[int] | None = None) -> int:
    """Free memory of these GPUs (default: every visible one), with what PyTorch's allocator holds unused
    (this process can reuse it)."""
    indices = range(torch.cuda.device_count()) if devices is None else devices
    return sum(
        torch.cuda.mem_get_info(i)[0] + torch.cuda.memory_reserved(i) - torch.cuda.memory_allocated(i) for i in indices
    )


def free_bytes_for(model: torch.nn.Module) -> int:
    """Free memory where a loaded model keeps its tensors: on the GPUs that hold its weights (not every GPU of
    the machine: under torchrun each process has one), else in RAM."""
    gpus = {p.device.index for p in model.parameters() if p.device.type == "cuda"}
    return free_gpu_bytes(sorted(gpus)) if gpus else free_ram_bytes()


def kv_bytes_per_token(config: PretrainedConfig, dtype_bytes: int) -> int:
    """Bytes of keys and values that one token keeps in a KV cache, over all layers (grouped-query attention:
    fewer key/value heads than query heads)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = int(getattr(text, "num_attention_heads", 0) or getattr(text, "n_head", 0) or 1)
    hidden = int(getattr(text, "hidden_size", 0) or getattr(text, "n_embd", 0))
    kv_heads = int(getattr(text, "num_key_value_heads", 0) or heads)
    head_dim = int(getattr(text, "head_dim", 0) or hidden // heads)
    layers = int(getattr(text, "num_hidden_layers", 0) or getattr(text, "n_layer", 0))
    return layers * 2 * kv_heads * head_dim * dtype_bytes


def largest_rows(size: ModelSize, work: Workload, dtype_bytes: int, free: int) -> int:
    """The most rows (up to work.rows, at least 1) whose peak fits in `free` bytes next to loaded weights."""
    rows = work.rows
    while (
        rows > 1
        and peak_bytes(size, Workload(work.method, rows, work.tokens, work.backward), dtype_bytes) > free * MARGIN
    ):
        rows //= 2
    return max(1, rows)


@dataclass(frozen=True)
class LoadPlan:
    """How a model will load: its quantization, whether layers wait in RAM, and the estimate behind it."""

    quantization: str  # none / 8bit / 4bit
    offload: bool  # device_map='auto': the layers that do not fit the GPU wait in RAM (CPU offload)
    estimate: MemoryEstimate
    max_memory: dict | None = None  # per-device caps for device_map='auto' that leave the GPU room for activations


def plan_load(
    name: str,
    size: ModelSize,
    requested: str,
    dtype: str,
    dtype_bytes: int,
    work: Workload,
    *,
    gpu_free: int | None,
    ram_free: int,
    spread: bool,
) -> LoadPlan:
    """The lightest precision the run fits in (requested='auto': none, then 8-bit, then nf4; else only the one
    asked for), on the GPU, or on the CPU when gpu_free is None: with the full batch if any precision allows
    it, else with one row. On a GPU where even that does not fit (auto or none), the model's dtype spread over
    GPU and RAM with device_map='auto'. ModelLoadError when nothing fits."""
    choices = ["none", "8bit", "4bit"] if requested == "auto" else [requested]
    if gpu_free is None:
        free, where = ram_free, "RAM"
    else:
        free, where = (gpu_free + ram_free, "GPU + RAM") if spread else (gpu_free, "GPU")
    # First the full batch in each precision, then one row (the batch size is lowered to fit after loading).
    for w in dict.fromkeys([work, work.smallest()]):
        for quant in choices:
            est = estimate(size, quant, dtype, dtype_bytes, w, free, where)
            if est.fits:
                return LoadPlan(quant, spread, est)
    if gpu_free is None or spread or requested not in ("auto", "none"):
        raise _too_big(name, est, gpu_free is not None)
    offload = estimate(
        size, "none", dtype, dtype_bytes, work.smallest(), gpu_free + ram_free, "GPU + RAM (CPU offload)"
    )
    gpu_for_weights = int(gpu_free * MARGIN) - offload.peak_bytes
    if not offload.fits or gpu_for_weights <= 0:
        raise _too_big(name, est, True)
    return LoadPlan("none", True, offload, {0: gpu_for_weights, "cpu": int(ram_free * MARGIN)})


def _too_big(name: str, est: MemoryEstimate, gpu: bool) -> ModelLoadError:
    lighter = "" if est.quantization == "4bit" else "quantization 'auto' (8-bit or nf4), "
    hint = (
        f"Try {lighter}a smaller batch, or a smaller model."
        if gpu
        else f"Try {lighter}a smaller batch, or a smaller model (on a CPU 8/4-bit saves memory, not time)."
    )
    return ModelLoadError(
        f"'{name}' has {est.size.params / 1e9:.2f}B parameters and needs about {_gib(est.need_bytes)} "
        f"({est.describe()}), but only {_gib(int(est.free_bytes * MARGIN))} is free to use. {hint}"
    )

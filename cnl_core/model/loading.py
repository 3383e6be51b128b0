"""Loading causal LMs for neuron work: the built-in offline model, a Hub id or a local folder.

Which weights a name means and its checked config come from model_source.py (in seconds, before any weight is
read), the built-in model's conversion from builtin_model.py. The memory estimate decides the precision and
placement (memory.py); weights load from safetensors only (unpickling runs code) unless the operator allows
pickled weights, and what a shared dashboard's visitors may name is decided by `shared_mode`.
"""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from .. import fields as F
from .. import shared_mode
from ..errors import ModelLoadError
from ..hub_status import hub_status
from ..options import DEFAULT_MODEL, DEVICES, DTYPES, QUANTIZATIONS
from ..progress import raise_if_cancelled
from .architectures import ADAPTERS, FFNAccess
from .build_lock import BUILD_LOCK
from .builtin_model import builtin_folder as _builtin_folder
from .fair_lock import FairLock
from .fingerprint import weight_fingerprint
from .memory import LoadPlan, Workload, free_gpu_bytes, free_ram_bytes, model_size, plan_load
from .model_source import check_architecture, first_line, load_config, resolve_source
from .neurons import NeuronGrid
from .quantized_cpu import keep_4bit_differentiable, release_weights_file
from .spec import ModelSpec

if TYPE_CHECKING:  # transformers is imported lazily (start-up time); the type is for mypy only
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# The import paths callers use: ModelSpec and weight_fingerprint live in their own modules now; tests and
# scripts find the built-in model's folder here.
__all__ = ["LoadedModel", "ModelSpec", "_builtin_folder", "load_model", "memory_plan", "weight_fingerprint"]

_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A model ready for CNL: its FFN neurons located, a lock for exclusive use."""

    spec: ModelSpec
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    model_type: str
    ffn: FFNAccess
    dtype: str
    quantization: str
    fingerprint: str
    plan: LoadPlan | None = None  # the memory estimate the load was planned with
    lock: FairLock = field(default_factory=FairLock, repr=False)  # first come, first served (fair_lock.py)

    @property
    def grid(self) -> NeuronGrid:
        return self.ffn.grid

    @cached_property
    def accepts_logits_to_keep(self) -> bool:
        """Whether forward() can run the LM head on chosen positions only (most current architectures)."""
        return "logits_to_keep" in inspect.signature(self.model.forward).parameters

    @property
    def input_device(self) -> torch.device:
        return cast(torch.Tensor, self.model.get_input_embeddings().weight).device

    def info(self) -> dict:
        """What the UI and result files show about the model."""
        return {
            "name": self.spec.name,
            "model_type": self.model_type,
            "architecture": type(self.model).__name__,
            "dtype": self.dtype,
            "quantization": self.quantization,
            "device": str(self.input_device),
            "n_layers": self.grid.n_layers,
            "neurons_per_layer": self.grid.width,
            "n_neurons": self.grid.total,
            "memory_mb": round(self.model.get_memory_footprint() / 2**20, 1),
            "fingerprint": self.fingerprint,
            "spec": asdict(self.spec),
        }


def memory_plan(spec: ModelSpec | str = DEFAULT_MODEL, work: Workload | None = None) -> LoadPlan:
    """How `spec` would load (quantization, CPU offload) and its memory estimate, read from the config only."""
    return _prepare(spec, work)[-1]


def _prepare(spec: ModelSpec | str, work: Workload | None) -> tuple[ModelSpec, str, str, bool, torch.dtype, LoadPlan]:
    spec = ModelSpec(name=spec) if isinstance(spec, str) else spec
    F.MODEL_NAME.check(spec.name)
    shared_mode.current().check_model(spec.name, spec.trust_remote_code)
    if spec.quantization not in QUANTIZATIONS:
        raise ModelLoadError(f"Quantization must be one of {', '.join(QUANTIZATIONS)}.")
    if spec.dtype not in DTYPES:
        raise ModelLoadError(f"dtype must be one of {', '.join(DTYPES)}.")
    source = resolve_source(spec)
    config = load_config(spec, source)
    model_type = check_architecture(config)
    cuda = _cuda_wanted(spec)
    dtype = _pick_dtype(spec.dtype, cuda)
    plan = plan_load(
        spec.name,
        model_size(config),
        spec.quantization,
        str(dtype).removeprefix("torch."),
        torch.finfo(dtype).bits // 8,
        work or Workload(),
        gpu_free=free_gpu_bytes() if cuda else None,
        ram_free=free_ram_bytes(),
        spread=spec.device_map_auto and cuda,
    )
    return spec, source, model_type, cuda, dtype, plan


def load_model(spec: ModelSpec | str = DEFAULT_MODEL, work: Workload | None = None) -> LoadedModel:
    """Load a causal LM for neuron work, or raise ModelLoadError with a plain reason.

    `work` (default: grad_x_act scoring in default batches) is the pass the memory estimate plans for:
    quantization 'auto' picks the lightest precision in which weights and that pass fit, on a GPU or a CPU.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec, source, model_type, cuda, dtype, plan = _prepare(spec, work)
    quant = plan.quantization
    safe_only = not shared_mode.current().allow_pickle
    if safe_only:  # a Hub repo without safetensors is refused, not sent to the Hub's conversion service
        os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")
    kwargs: dict = {
        "revision": spec.revision,
        "trust_remote_code": spec.trust_remote_code,
        "dtype": dtype,
        "local_files_only": not os.path.isdir(source) and not hub_status().reachable,
        "use_safetensors": True if safe_only else None,
        # transformers >= 5.25 swaps norms, activations and rotary embeddings for kernels fetched from
        # the Hub on a GPU by default: no download at load time, and the same numbers with or without
        # them (model/fused.py fuses what integrated gradients needs, under our own tests)
        "use_kernels": False,
    }
    if quant != "none":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_8bit=True)
            if quant == "8bit"
            else BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
        )
        if quant == "8bit":  # bitsandbytes says so on every 8-bit matmul fed float32 (the CPU's dtype)
            warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
    if plan.offload:
        kwargs["device_map"] = "auto"
        if plan.max_memory:
            kwargs["max_memory"] = plan.max_memory
    elif quant != "none":
        kwargs["device_map"] = {"": torch.cuda.current_device() if cuda else "cpu"}  # torchrun: this process's GPU
    try:
        with BUILD_LOCK:
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(
            source,
            revision=spec.revision,
            trust_remote_code=spec.trust_remote_code,
            local_files_only=kwargs["local_files_only"],
        )
    except (OSError, ValueError) as exc:
        if safe_only and "safetensors" in str(exc):
            raise ModelLoadError(
                f"'{spec.name}' has no safetensors weights (pickled files only, and unpickling can run code); this "
                "tool reads safetensors only. Pick a model with safetensors, or, on your own machine and for weights "
                "you trust, allow them: CNL_ALLOW_PICKLE=1."
            ) from exc
        raise ModelLoadError(f"Could not load the weights of '{spec.name}': {first_line(exc)}") from exc
    _add_cancel_points(model, ADAPTERS[model_type].down)
    if cuda and "device_map" not in kwargs:
        # transformers decorates PreTrainedModel.to with functools.wraps; the wrapper's type asks for `self` again
        model.to("cuda")  # type: ignore[arg-type]
    if quant != "none" and not cuda:
        keep_4bit_differentiable(model)
        release_weights_file(model)
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        spec=spec,
        model=model,
        tokenizer=tokenizer,
        model_type=model_type,
        ffn=FFNAccess(model, model_type),
        dtype=str(dtype).removeprefix("torch."),
        quantization=quant,
        fingerprint=weight_fingerprint(model),
        plan=plan,
    )


def _add_cancel_points(model: nn.Module, down: str) -> None:
    """Cancel (a button, a closed tab) stops a job at its next model step: the model and each decoder layer check
    the thread's cancel scope before they run (progress.py), so even one long forward pass stops within a layer."""
    modules = dict(model.named_modules())
    layers = [modules.get(name[: -len(down) - 1]) for name in modules if name.endswith("." + down)]
    for module in [model, *(m for m in layers if m is not None)]:
        module.register_forward_pre_hook(lambda _module, _args: raise_if_cancelled())


def _cuda_wanted(spec: ModelSpec) -> bool:
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("Device 'cuda' was asked for, but no CUDA GPU is available here. Use 'cpu' or 'auto'.")
    if spec.device not in DEVICES:
        raise ModelLoadError(f"Device must be one of {', '.join(DEVICES)}.")
    return spec.device == "cuda" or (spec.device == "auto" and torch.cuda.is_available())


def _pick_dtype(name: str, cuda: bool) -> torch.dtype:
    if name != "auto":
        return _TORCH_DTYPES[name]
    if not cuda:
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

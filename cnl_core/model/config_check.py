"""A model's config and weight files, checked before anything is built from them.

Why: a config is a stranger's file on a shared dashboard. Read as it was, a binary config.json was
called "holds no model config", a string hidden size or zero heads gave a traceback, and a config
of 100,000 layers took minutes and gigabytes before the memory estimate refused it. Here the file
is read with a size bound, every shape number is checked against `fields.py` (the sentence names
the key and the value), and a folder whose weights are pickled files only is refused: unpickling
runs code, and this tool reads safetensors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import fields as F
from ..errors import CNLError, ModelLoadError

# Each checked shape number and the names architectures give it (GPT-2's n_embd, OPT's ffn_dim...).
SHAPE_KEYS: tuple[tuple[F.NumberField, tuple[str, ...]], ...] = (
    (F.LAYERS, ("num_hidden_layers", "n_layer", "num_layers")),
    (F.HIDDEN, ("hidden_size", "n_embd", "d_model")),
    (F.INTERMEDIATE, ("intermediate_size", "n_inner", "ffn_dim")),
    (F.HEADS, ("num_attention_heads", "n_head")),
    (F.KV_HEADS, ("num_key_value_heads", "num_kv_heads")),
    (F.HEAD_DIM, ("head_dim",)),
    (F.VOCAB, ("vocab_size",)),
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def read_config_file(folder: str | os.PathLike, name: str) -> dict:
    """The folder's config.json as a dict, or ModelLoadError saying what the file is instead."""
    path = Path(folder) / "config.json"
    size = path.stat().st_size
    if size > F.CONFIG_BYTES:
        raise ModelLoadError(
            f"The config.json of '{name}' is {size / 2**20:.1f} MiB; a model config is a few "
            f"kilobytes (the limit is {F.CONFIG_BYTES // 2**20} MiB)."
        )
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ModelLoadError(f"The config.json of '{name}' is a binary file, not JSON text.")
    try:
        config = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ModelLoadError(
            f"The config.json of '{name}' is not UTF-8 text (bad byte at position {exc.start})."
        ) from exc
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"The config.json of '{name}' is not valid JSON: {exc.msg} at line {exc.lineno}.") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"The config.json of '{name}' must hold a JSON object, not a {type(config).__name__}.")
    check_shape(config.get, name)
    return config


def _text_config(config: Any):
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def config_values(config: Any) -> Callable[[str], Any]:
    """A getter of a config object's (text part's) values by key; None where it has none."""
    text = _text_config(config)
    return lambda key: getattr(text, key, None)


def check_shape(get: Callable[[str], Any], name: str) -> None:
    """Every shape number the config gives, checked: whole, positive, not absurd; the heads divide the width.

    `get(key)` reads one value (None: not given). Raises ModelLoadError naming the key and the value."""
    values = {}
    for field, keys in SHAPE_KEYS:
        key, value = next(((k, get(k)) for k in keys if get(k) is not None), (keys[0], None))
        if value is None:
            continue
        try:
            values[field.label] = field.typed(value)
        except CNLError as exc:
            raise ModelLoadError(
                f"The config of '{name}' is not a model shape this tool can build: "
                f"{str(exc).replace(field.label, key, 1)}"
            ) from None
    hidden, heads = values.get(F.HIDDEN.label), values.get(F.HEADS.label)
    kv_heads = values.get(F.KV_HEADS.label)
    if hidden and heads and values.get(F.HEAD_DIM.label) is None and hidden % heads:
        raise ModelLoadError(
            f"The config of '{name}' is not a model shape this tool can build: hidden_size {hidden} "
            f"is not a multiple of num_attention_heads {heads}."
        )
    if heads and kv_heads and heads % kv_heads:
        raise ModelLoadError(
            f"The config of '{name}' is not a model shape this tool can build: num_attention_heads "
            f"{heads} is not a multiple of num_key_value_heads {kv_heads}."
        )


def check_weight_files(folder: str | os.PathLike, name: str, allow_pickle: bool) -> None:
    """Refuse a folder whose weights are pickled files only (unless the operator allowed unpickling them)."""
    if allow_pickle:
        return
    files = [f.name for f in Path(folder).iterdir() if f.is_file()]
    if any(f.endswith(".safetensors") or f.endswith(".safetensors.index.json") for f in files):
        return
    pickles = sorted(f for f in files if f.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise ModelLoadError(
            f"The folder '{name}' holds its weights as pickled files only ({', '.join(pickles[:3])}); unpickling "
            "can run code, so this tool reads safetensors only. Convert them (model.save_pretrained(folder) saves "
            "safetensors), or, on your own machine and for weights you trust, allow them: CNL_ALLOW_PICKLE=1."
        )


def config_error(exc: BaseException, name: str) -> ModelLoadError:
    """A sentence from transformers' own config reading (its strict validation names the field and the value)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
    # "Validation error for field 'x':" / "TypeError: ... (value: ...)"
    strict = "StrictDataclass" in type(exc).__name__
    line = lines[-1] if strict else lines[0]
    for prefix in ("TypeError: ", "ValueError: "):
        line = line.removeprefix(prefix)
    return ModelLoadError(f"The config of '{name}' could not be read: {line[:300]}")

"""Which weights a model name means (the built-in model, a local folder, a Hub id) and its config, checked.

The config is read and checked (shape, architecture supported, a decoder-only causal LM) before any weight is
loaded, so a wrong choice fails in seconds with a plain message naming the model.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from .. import shared_mode
from ..errors import ModelLoadError
from ..hub_status import hub_status
from .architectures import ADAPTERS, SUPPORTED_MODEL_TYPES
from .builtin_model import BUILTIN_HUB, builtin_folder, is_builtin
from .config_check import check_shape, check_weight_files, config_error, config_values, read_config_file
from .spec import ModelSpec

if TYPE_CHECKING:  # transformers is imported lazily (start-up time); the type is for mypy only
    from transformers import PretrainedConfig

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


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (a library's can run to pages), or its type's name."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_config(spec: ModelSpec) -> tuple[PretrainedConfig, str]:
    """The config `spec` names and its model type, checked as load_model checks them (ModelLoadError), without
    loading any weights."""
    config = load_config(spec, resolve_source(spec))
    return config, check_architecture(config)


def resolve_source(spec: ModelSpec) -> str:
    if is_builtin(spec.name):
        try:
            return str(builtin_folder(spec.name))
        except ModelLoadError:
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                raise
            return BUILTIN_HUB[spec.name]  # if the Hub is out of reach too, reading its config says so
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


def load_config(spec: ModelSpec, source: str) -> PretrainedConfig:
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
        raise ModelLoadError(f"No model '{spec.name}' was found on the Hugging Face Hub: {first_line(exc)}") from exc
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


def check_architecture(config: PretrainedConfig) -> str:
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

"""What every result file records so a run can be reproduced: versions, time, parameters."""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from importlib import metadata

_PACKAGES = ("torch", "transformers", "accelerate", "safetensors", "numpy", "gradio", "bitsandbytes")


def versions() -> dict:
    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def stamp() -> dict:
    return {"created": datetime.now(UTC).isoformat(timespec="seconds"), "versions": versions()}

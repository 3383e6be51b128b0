"""What decides which weights are loaded and how: the one value the CLI, the dashboard and the model cache key on."""

from __future__ import annotations

from dataclasses import dataclass

from .. import fields as F
from ..options import DEFAULT_MODEL, DEVICES, DTYPES, QUANTIZATIONS


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

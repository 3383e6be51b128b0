"""Every figure `python -m bench` can measure, by name; modules other than figures.py load when their figure runs."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from bench import figures


def _lazy(module: str, function: str) -> Callable[[bool], list]:
    return lambda gpu: getattr(importlib.import_module(f"bench.{module}"), function)(gpu)


ALL: dict[str, Callable[[bool], list]] = {
    "model_load": figures.model_load,
    "collection": figures.collection_overhead,
    "batch_sizes": figures.batch_sizes,
    "integrated_gradients": _lazy("ig", "integrated_gradients"),
    "memory": figures.memory,
    "cache": figures.cache_speed,
    "generation": figures.generation,
    "alternatives": _lazy("alternatives", "alternatives"),
    "demo": _lazy("classroom", "demo_time"),
    "intervene": _lazy("classroom", "intervene_speed"),
    "dashboard": _lazy("classroom", "dashboard_overhead"),
    "bfloat16": _lazy("classroom", "bfloat16_speed"),
    "processes": _lazy("distributed", "scoring_processes"),
    "quantized": _lazy("quantized", "quantized_cpu"),
    "workshop": _lazy("workshop", "workshop"),
}

# What GPU mode measures: the model-side figures (loading, the cache and re-localizing are CPU work).
ON_GPU = ("collection", "batch_sizes", "integrated_gradients", "memory", "generation", "alternatives")

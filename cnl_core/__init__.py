"""Capability Neuron Lab: locate the FFN neurons that carry a capability (CNL) and test them.

The data flows one way: model -> per-sample scores (cached) -> located neuron sets ->
comparisons and interventions -> reports. The dashboard, the CLI and the tests all use these calls.
"""

from .errors import CNLError
from .evaluate_run import run_evaluate, run_finetune, run_matrix
from .evaluation import EvalConfig
from .localize import LocateParams
from .locate_run import located_sample_ids, neuron_set_from_result, run_locate
from .models import DEFAULT_MODEL, ModelSpec, load_model
from .scoring import ScoreConfig

__all__ = [
    "CNLError", "DEFAULT_MODEL", "EvalConfig", "LocateParams", "ModelSpec", "ScoreConfig", "load_model",
    "located_sample_ids", "neuron_set_from_result", "run_evaluate", "run_finetune", "run_locate", "run_matrix",
]

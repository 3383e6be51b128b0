"""Capability Neuron Lab: locate the FFN neurons that carry a capability (CNL) and test them.

The data flows one way, and the folders follow it:

    model/        load a model; what a neuron is per architecture; hooks; the forward passes
    data/         samples, datasets (built-in, Hub, uploads), disjoint seeded splits
    locate/       per-sample scores (registered scorers, on-disk cache) -> located neuron sets
    compare/      overlap, IoU and chance levels of located sets
    evaluate/     accuracy and log-likelihood under interventions; controls; fine-tuning
    experiments/  the pipelines a user runs, each returning a typed result (JSON in and out), and one typed
                  request per experiment (requests.py): its inputs, its result-cache key, its run
    report/       charts and downloadable tables from those results
    cli/          `python -m cnl_core ...`

Each folder imports only from those above it. The dashboard (dashboard.py, ui/) and the CLI use
the same calls as this public API.
"""

from .errors import Cancelled, CNLError, ParameterError
from .evaluate.accuracy import EvalConfig
from .evaluate.controls import control_seed
from .evaluate.harness import HarnessSettings
from .evaluate.steer import steer_conditions
from .experiments.baselines import BaselineRequest
from .experiments.eval_results import EvalResult, FinetuneResult, MatrixResult
from .experiments.evaluate import run_evaluate, run_matrix
from .experiments.finetune import run_finetune
from .experiments.harness_eval import HarnessEvalResult, run_harness_eval
from .experiments.locate import LocateRun, run_locate
from .experiments.locate_result import LocateResult
from .experiments.requests import DoseRequest, EvaluateRequest, Job, MatrixRequest, Request, SteerRequest
from .experiments.requests_knowledge import KnowledgeRequest, TraceConfig
from .experiments.requests_locate import LocateRequest, NullRequest, SpecificityRequest
from .experiments.requests_studies import DecoupleRequest, DemoRequest, InspectRequest
from .locate.scorers import ScoreConfig, register_scorer
from .locate.select import LocateParams
from .model.hooks import Intervention, intervene
from .model.loading import LoadedModel, ModelSpec, load_model
from .model.model_cache import MODELS
from .model.neurons import NeuronGrid, NeuronSet
from .options import DEFAULT_MODEL, DEFAULTS

__all__ = [
    "BaselineRequest",
    "KnowledgeRequest",
    "LocateRequest",
    "NullRequest",
    "SpecificityRequest",
    "TraceConfig",
    "CNLError",
    "Cancelled",
    "DEFAULTS",
    "DEFAULT_MODEL",
    "DecoupleRequest",
    "DemoRequest",
    "DoseRequest",
    "EvalConfig",
    "EvaluateRequest",
    "EvalResult",
    "FinetuneResult",
    "HarnessEvalResult",
    "HarnessSettings",
    "InspectRequest",
    "Intervention",
    "Job",
    "LoadedModel",
    "LocateParams",
    "LocateResult",
    "LocateRun",
    "MODELS",
    "MatrixRequest",
    "MatrixResult",
    "ModelSpec",
    "NeuronGrid",
    "NeuronSet",
    "ParameterError",
    "Request",
    "ScoreConfig",
    "SteerRequest",
    "control_seed",
    "intervene",
    "load_model",
    "register_scorer",
    "run_evaluate",
    "run_finetune",
    "run_locate",
    "run_harness_eval",
    "run_matrix",
    "steer_conditions",
]

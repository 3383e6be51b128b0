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

Each folder imports only from those above it. The dashboard (dashboard.py, ui/) imports only this public API:
the names in `__all__` and the modules in `PUBLIC_MODULES` (tests/unit/test_public_api.py checks every import);
the CLI makes the same calls.
"""

from .compare.overlap import comparison_matrix
from .data.samples import GENERATE_NUMBER, forget_datasets, get_dataset, list_datasets
from .data.splits import make_splits
from .data.tables import CSV_SUFFIXES, JSONL_SUFFIXES, open_records, scan_table
from .data.uploads import dataset_from_records, resolve_dataset
from .errors import Cancelled, CNLError, ParameterError
from .evaluate.accuracy import EvalConfig
from .evaluate.controls import control_seed
from .evaluate.harness import HarnessSettings, harness_available, parse_tasks, task_manager
from .evaluate.steer import steer_conditions, token_logprobs
from .evaluate.task_files import DATA_SUFFIXES, TASK_SUFFIXES, save_task_files
from .experiments.baselines import Baseline, BaselineRequest, baseline, stored_baseline
from .experiments.decouple import DEFAULT_FRACTIONS
from .experiments.demo import DEMO, DemoResult
from .experiments.dose import DEFAULT_FACTORS
from .experiments.empirical_null import NULL_KINDS
from .experiments.eval_results import EvalResult, FinetuneResult, MatrixResult
from .experiments.evaluate import run_evaluate, run_matrix
from .experiments.finetune import run_finetune
from .experiments.harness_eval import HarnessEvalResult, check_harness_positions, run_harness_eval
from .experiments.json_io import read_json, write_json
from .experiments.locate import LocateRun, run_locate, threshold_sweep
from .experiments.locate_result import LocateResult
from .experiments.requests import DoseRequest, EvaluateRequest, Job, MatrixRequest, Request, SteerRequest
from .experiments.requests_knowledge import KnowledgeRequest, TraceConfig
from .experiments.requests_locate import LocateRequest, NullRequest, SpecificityRequest
from .experiments.requests_studies import DecoupleRequest, DemoRequest, InspectRequest
from .experiments.result_cache import RESULTS, Served, model_identity
from .experiments.session_file import read_session, session_json
from .experiments.specificity import split_by_sharing
from .inspect.neuron import neuron_ranks, parse_neuron
from .knowledge.facts import BUILTIN_RELATIONS, builtin_facts, read_facts_csv
from .knowledge.facts import MAX_CSV_BYTES as MAX_FACTS_CSV_BYTES
from .knowledge.study import PARTS as STUDY_PARTS
from .knowledge.study import StudyConfig
from .knowledge.study import table as study_table
from .locate.scorers import ScoreConfig, register_scorer, scorer_names
from .locate.select import LocateParams
from .model.hooks import Intervention, intervene
from .model.loading import LoadedModel, ModelSpec, load_model, memory_plan
from .model.model_cache import MODELS
from .model.neurons import NeuronGrid, NeuronSet
from .options import DEFAULT_MODEL, DEFAULTS
from .paths import cache_root
from .progress import Progress, cancel_scope
from .progress import report as report_progress
from .visitor_space import VisitorSpace, visitors_root

# Besides the names in __all__, these modules are public as a whole (the dashboard imports only from them and
# from the names below; tests/unit/test_public_api.py checks it): every number's field, the choice lists and
# defaults, the errors, the shared lab's policy, and the reports (charts, exports, readings) of cnl_core.report.
PUBLIC_MODULES = ("cnl_core.fields", "cnl_core.options", "cnl_core.errors", "cnl_core.shared_mode", "cnl_core.report")


__all__ = [
    "BUILTIN_RELATIONS",
    "Baseline",
    "BaselineRequest",
    "CNLError",
    "CSV_SUFFIXES",
    "Cancelled",
    "DATA_SUFFIXES",
    "DEFAULTS",
    "DEFAULT_FACTORS",
    "DEFAULT_FRACTIONS",
    "DEFAULT_MODEL",
    "DEMO",
    "DecoupleRequest",
    "DemoRequest",
    "DemoResult",
    "DoseRequest",
    "EvalConfig",
    "EvalResult",
    "EvaluateRequest",
    "FinetuneResult",
    "GENERATE_NUMBER",
    "HarnessEvalResult",
    "HarnessSettings",
    "InspectRequest",
    "Intervention",
    "JSONL_SUFFIXES",
    "Job",
    "KnowledgeRequest",
    "LoadedModel",
    "LocateParams",
    "LocateRequest",
    "LocateResult",
    "LocateRun",
    "MAX_FACTS_CSV_BYTES",
    "MODELS",
    "MatrixRequest",
    "MatrixResult",
    "ModelSpec",
    "NULL_KINDS",
    "NeuronGrid",
    "NeuronSet",
    "NullRequest",
    "PUBLIC_MODULES",
    "ParameterError",
    "Progress",
    "RESULTS",
    "Request",
    "STUDY_PARTS",
    "ScoreConfig",
    "Served",
    "SpecificityRequest",
    "SteerRequest",
    "StudyConfig",
    "TASK_SUFFIXES",
    "TraceConfig",
    "VisitorSpace",
    "baseline",
    "builtin_facts",
    "cache_root",
    "cancel_scope",
    "check_harness_positions",
    "comparison_matrix",
    "control_seed",
    "dataset_from_records",
    "forget_datasets",
    "get_dataset",
    "harness_available",
    "intervene",
    "list_datasets",
    "load_model",
    "make_splits",
    "memory_plan",
    "model_identity",
    "neuron_ranks",
    "open_records",
    "parse_neuron",
    "parse_tasks",
    "read_facts_csv",
    "read_json",
    "read_session",
    "register_scorer",
    "report_progress",
    "resolve_dataset",
    "run_evaluate",
    "run_finetune",
    "run_harness_eval",
    "run_locate",
    "run_matrix",
    "save_task_files",
    "scan_table",
    "scorer_names",
    "session_json",
    "split_by_sharing",
    "steer_conditions",
    "stored_baseline",
    "study_table",
    "task_manager",
    "threshold_sweep",
    "token_logprobs",
    "visitors_root",
    "write_json",
]

"""The CLI's options, built from the library's defaults and choice lists, and turned into configs.

Every default here is read from `options.DEFAULTS` or from a config dataclass's own defaults, and
every choice list from `options` or a registry; options become configs through each config's own
`from_inputs`, the conversion the dashboard's forms use too, so the CLI and the dashboard cannot drift
apart. Everything a command needs is checked before any model is loaded.
"""

from __future__ import annotations

import argparse
from typing import overload

from .. import fields as F
from ..data.samples import DatasetSpec
from ..data.uploads import FileColumns, resolve_dataset
from ..errors import DatasetError
from ..evaluate.accuracy import EvalConfig
from ..experiments.locate_result import LocateResult
from ..locate.batch_fit import scoring_workload
from ..locate.scorers import ScoreConfig, scorer_names
from ..locate.select import LocateParams
from ..model.hooks import Intervention
from ..model.loading import ModelSpec
from ..model.memory import Workload
from ..model.neurons import NeuronSet
from ..options import (
    DEFAULTS,
    DEVICES,
    DTYPES,
    IG_RULES,
    INTERVENTION_MODES,
    POSITIONS,
    QUANTIZATION_NOTE,
    QUANTIZATIONS,
    RULES,
    SIGNS,
    UPLOAD_KINDS,
)
from ..output_files import check_output_file, check_output_folder

_SPEC, _SCORE, _LOCATE, _EVAL = ModelSpec(), ScoreConfig(), LocateParams(), EvalConfig()


def add_model(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=_SPEC.name, help="built-in name, Hub id or local folder")
    g.add_argument("--revision", default=_SPEC.revision)
    g.add_argument("--dtype", default=_SPEC.dtype, choices=DTYPES)
    g.add_argument("--device", default=_SPEC.device, choices=DEVICES)
    g.add_argument(
        "--quantization",
        default=_SPEC.quantization,
        choices=QUANTIZATIONS,
        help=f"bitsandbytes 8-bit or nf4, on a GPU or a CPU ({QUANTIZATION_NOTE}); auto: the lightest "
        "precision in which the memory estimate fits (printed before loading)",
    )
    g.add_argument("--device-map-auto", action="store_true", help="spread a large model over GPUs/CPU")
    g.add_argument(
        "--trust-remote-code", action="store_true", help="run the model repo's own code (only if you trust it)"
    )


def add_dataset_file(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("your own CSV/JSONL file as a dataset (give its path as the dataset)")
    g.add_argument("--prompt-column", help="column holding the prompt (default: prompt/question/text)")
    g.add_argument("--answer-column", help="column holding the gold answer (default: answer/label/target)")
    g.add_argument("--labels", help="comma-separated labels of a classification task")
    g.add_argument("--kind", default=UPLOAD_KINDS[0], choices=UPLOAD_KINDS, help="how accuracy is scored")


def add_splits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=DEFAULTS.dataset, help="dataset name or a CSV/JSONL file")
    p.add_argument("--n", type=F.N_SPLIT.arg, default=DEFAULTS.n, help="samples per split")
    p.add_argument("--splits", type=F.SPLITS.arg, default=DEFAULTS.splits)
    p.add_argument("--seed", type=F.SEED.arg, default=DEFAULTS.seed)
    add_scoring(p)
    add_dataset_file(p)


def add_scoring(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default=_SCORE.method, choices=scorer_names())
    p.add_argument("--ig-steps", type=F.IG_STEPS.arg, default=_SCORE.ig_steps)
    p.add_argument(
        "--ig-rule",
        default=_SCORE.ig_rule,
        choices=IG_RULES,
        help="IG steps: right = alpha k/m as Dai et al.; midpoint = (k - 1/2)/m",
    )
    p.add_argument(
        "--max-prompt-tokens",
        type=F.MAX_PROMPT.arg,
        default=_SCORE.max_prompt_tokens,
        help="default: the length that covers 99%% of the dataset's prompts",
    )
    p.add_argument(
        "--max-answer-tokens",
        type=F.MAX_ANSWER.arg,
        default=_SCORE.max_answer_tokens,
        help="default: the length that covers 99%% of the dataset's gold answers",
    )
    p.add_argument(
        "--batch-size",
        type=F.BATCH.arg,
        default=None,
        help=f"default: {DEFAULTS.batch_size}, or fewer where the memory estimate says it would not fit",
    )


def add_thresholds(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rule", default=_LOCATE.rule, choices=RULES)
    p.add_argument("--tau", type=F.TAU.arg, default=_LOCATE.tau)
    p.add_argument("--top-k", type=F.TOP_K.arg, default=_LOCATE.top_k)
    p.add_argument("--sigma", type=F.SIGMA.arg, default=_LOCATE.sigma)
    p.add_argument("--p", type=F.P.arg, default=_LOCATE.p)
    p.add_argument(
        "--sign",
        default=_LOCATE.sign,
        choices=SIGNS,
        help="select on positive scores (KN's convention), negative ones, or magnitudes",
    )


def add_evaluation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=F.EVAL_N.arg, default=DEFAULTS.eval_n, help="evaluation samples per dataset")
    p.add_argument("--seed", type=F.SEED.arg, default=DEFAULTS.seed)
    p.add_argument("--intervention", default=INTERVENTION_MODES[0], choices=INTERVENTION_MODES)
    p.add_argument("--factor", type=F.FACTOR.arg, default=DEFAULTS.amplify_factor, help="amplify factor")
    p.add_argument(
        "--fewshot", type=F.FEWSHOT.arg, default=_EVAL.num_fewshot, help="few-shot examples (default or -1: per task)"
    )
    p.add_argument("--max-new-tokens", type=F.MAX_NEW.arg, default=_EVAL.max_new_tokens, help="default or 0: per task")
    p.add_argument("--batch-size", type=F.BATCH.arg, default=_EVAL.batch_size)
    p.add_argument("--bootstrap", type=F.BOOTSTRAP.arg, default=_EVAL.bootstrap)
    p.add_argument("--out")


def add_positions(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--positions",
        default=POSITIONS[0],
        choices=POSITIONS,
        help="token positions changed: every one, or only those that predict an answer token",
    )


def check_outputs(args) -> None:
    """--out and --out-dir can be written: checked first, so no run's result waits for an unwritable path."""
    if getattr(args, "out", None) is not None:
        check_output_file(args.out, "--out")
    if getattr(args, "out_dir", None) is not None:
        check_output_folder(args.out_dir, "--out-dir")


def model_spec(args) -> ModelSpec:
    return ModelSpec.from_inputs(
        args.model,
        args.dtype,
        args.device,
        args.quantization,
        args.device_map_auto,
        args.trust_remote_code,
        args.revision,
    )


def workload(args) -> Workload:
    """The largest pass the command makes: what the memory estimate printed before loading plans for."""
    if hasattr(args, "ig_steps"):
        return scoring_workload(score_config(args), args.batch_size)
    rows = getattr(args, "batch_size", None) or _EVAL.batch_size
    return Workload(args.command, rows, DEFAULTS.estimate_tokens, backward=args.command == "finetune")


def score_config(args) -> ScoreConfig:
    return ScoreConfig.from_inputs(
        args.method, args.ig_steps, args.ig_rule, args.max_prompt_tokens, args.max_answer_tokens
    )


def locate_params(args) -> LocateParams:
    return LocateParams.from_inputs(args.rule, args.tau, args.p, args.top_k, args.sigma, args.sign)


def eval_config(args) -> EvalConfig:
    return EvalConfig.from_inputs(args.fewshot, args.max_new_tokens, args.batch_size, args.bootstrap)


def intervention(args, neurons: NeuronSet) -> Intervention:
    """The command's intervention on these neurons (its --positions where the command has the flag)."""
    return Intervention.from_inputs(neurons, args.intervention, args.factor, getattr(args, "positions", POSITIONS[0]))


def dataset(args, name: str | None = None, need: int = 0) -> DatasetSpec:
    """The dataset named by --dataset (or `name`): registered, or read from the user's file; checked for size."""
    columns = FileColumns(
        args.prompt_column,
        args.answer_column,
        tuple(x.strip() for x in (args.labels or "").split(",") if x.strip()),
        args.kind,
    )
    spec = resolve_dataset(name or args.dataset, columns)
    if not spec.hub:
        rows = len(spec.rows())
        if need > rows:
            raise DatasetError(f"'{spec.name}' has {rows} rows; this run needs {need}.")
    return spec


@overload
def neuron_file(path: str) -> LocateResult: ...
@overload
def neuron_file(path: None) -> None: ...
@overload
def neuron_file(path: str | None) -> LocateResult | None: ...
def neuron_file(path: str | None) -> LocateResult | None:
    """The locate result at `path` (a required --neurons flag gives one; an optional one may give None)."""
    return LocateResult.read(path) if path else None

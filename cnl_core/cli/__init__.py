"""Command line: `python -m cnl_core <command> ...`: the same library calls the dashboard makes.

The parser is built from the library's defaults and choice lists (arguments.py); the commands are
in commands.py, a config file's steps in run_config.py. A user error prints one line, `error: ...`, and
exits with status 2; output paths are checked before any command starts. Under
`torchrun --nproc_per_node N -m cnl_core -- locate|sweep|evaluate|matrix ...` the processes share the work
(cnl_core/parallel.py) and the main one prints and writes the result.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from .. import fields as F
from .. import parallel
from ..errors import CNLError, ParameterError
from ..experiments.decouple import DEFAULT_FRACTIONS
from ..experiments.demo import DEMO
from ..options import DEFAULTS, METRICS
from . import arguments as A
from . import harness_commands, knowledge_commands, neuron_commands
from .commands import cmd_compare, cmd_evaluate, cmd_export, cmd_finetune, cmd_locate, cmd_matrix, cmd_sweep
from .run_config import cmd_run
from .study_commands import add_null_parser, cmd_baselines, cmd_decouple, cmd_demo, cmd_specificity

SPREAD_COMMANDS = ("locate", "sweep", "evaluate", "matrix")  # the commands torchrun's processes can share


def cmd_cache(args) -> dict:
    from ..experiments.result_cache import RESULTS
    from ..locate.score_store import clear_cache, list_cache

    if args.action == "clear":
        if args.key is not None and RESULTS.remove(args.key):
            print(f"removed the stored result {args.key}")
            return {"removed": 1}
        n = clear_cache(args.key)
        if args.key is not None:
            print(f"removed {n} score cache folder(s)")
            return {"removed": n}
        removed = RESULTS.clear()
        print(f"removed {n} score cache folder(s) and {removed} stored result(s)")
        return {"removed": n, "results_removed": removed}
    entries = list_cache()
    for e in entries:
        size = f"{e['bytes'] / 2**20:.1f} MiB"
        print(f"{e['key']}  {e['model']}  {e['dataset']}  {e['method']}  {e['samples']} samples  {size}")
    print(f"{len(entries)} score entries, {sum(e['bytes'] for e in entries) / 2**20:.1f} MiB")
    results = RESULTS.entries()
    for r in results:
        print(f"{r['key']}  stored {r['kind']} result  {r['modified']}  {r['bytes'] / 1024:.1f} KiB")
    print(f"{len(results)} stored results (evaluations, demos, studies... served again without the model)")
    return {"entries": entries, "results": results}


def cmd_datasets(args) -> dict:
    from ..data.samples import list_datasets

    out = []
    for d in list_datasets():
        ok, why = d.available()
        rows = len(d.rows()) if ok and not d.hub else d.expected_rows
        out.append({"name": d.name, "kind": d.kind, "rows": rows, "available": ok, "source": d.source})
        print(
            f"{d.name:<16} {d.kind:<16} {rows if rows is not None else '?':>7} rows  {'yes' if ok else 'no ':<4} {why}"
        )
    return {"datasets": out}


def build_parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The CLI's parser; `parser_class` (its sub-parsers too) is run_config's raising one when checking configs."""
    parser = parser_class(
        prog="python -m cnl_core", description="Capability Neuron Lab: locate and test capability neurons."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("locate", help="locate the neurons of a dataset and compare splits")
    A.add_model(p)
    A.add_splits(p)
    A.add_thresholds(p)
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--out")
    p.set_defaults(func=cmd_locate)

    p = sub.add_parser("sweep", help="split agreement for a grid of thresholds (from cached scores)")
    A.add_model(p)
    A.add_splits(p)
    p.add_argument("--taus", type=F.TAU.arg, nargs="+", default=list(DEFAULTS.sweep_taus))
    p.add_argument("--ps", type=F.P.arg, nargs="+", default=list(DEFAULTS.sweep_ps))
    p.add_argument("--out")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("compare", help="overlap / IoU matrix of located sets")
    p.add_argument("files", nargs="+")
    p.add_argument("--out")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("evaluate", help="accuracy before/after an intervention, with a random control")
    A.add_model(p)
    A.add_evaluation(p)
    A.add_positions(p)
    A.add_dataset_file(p)
    p.add_argument("--dataset", default=DEFAULTS.dataset, help="dataset name or a CSV/JSONL file")
    p.add_argument("--neurons", help="locate result JSON")
    p.add_argument("--control-draws", type=F.CONTROL_DRAWS.arg, default=DEFAULTS.control_draws)
    p.add_argument("--allow-overlap", action="store_true", help="allow evaluation samples used for localization")
    p.add_argument(
        "--control-may-overlap",
        action="store_true",
        help="let the random control include located neurons (default: it avoids them)",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("matrix", help="cross-dataset matrix: neurons of each file x datasets tested")
    A.add_model(p)
    A.add_evaluation(p)
    A.add_positions(p)
    A.add_dataset_file(p)
    p.add_argument("--neurons", nargs="+", required=True)
    p.add_argument("--targets", nargs="+", required=True, help="dataset names or CSV/JSONL files")
    p.add_argument("--metric", default=METRICS[0], choices=METRICS, help="what each cell's change is of")
    p.add_argument("--no-controls", action="store_true", help="skip the random-control row under each set")
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("finetune", help="fine-tune only the located neurons vs random neurons")
    A.add_model(p)
    A.add_evaluation(p)
    A.add_dataset_file(p)
    p.add_argument("--dataset", default=DEFAULTS.dataset, help="dataset name or a CSV/JSONL file")
    p.add_argument("--neurons", required=True)
    p.add_argument("--steps", type=F.FT_STEPS.arg, default=DEFAULTS.finetune_steps)
    p.add_argument("--lr", type=F.FT_LR.arg, default=DEFAULTS.finetune_lr)
    p.add_argument(
        "--train-n",
        type=F.FT_TRAIN_N.arg,
        default=DEFAULTS.finetune_train_n,
        help="training samples when the neurons come from another dataset",
    )
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("demo", help="locate a capability the model has, then zero and amplify it (about a minute)")
    A.add_model(p)
    p.add_argument("--seed", type=F.SEED.arg, default=DEMO.seed, help="the preset was chosen on seed 1")
    p.add_argument(
        "--answer",
        default="whole",
        choices=("whole", "content", "both"),
        help="score the whole answer (' 7': a space token, then the digit), its digits only (the space in "
        "the prompt), or both with the format token's probability (a format control)",
    )
    p.add_argument("--out")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "decouple", help="the paper's decoupling curve: IoU as the shared part of two subsamples shrinks"
    )
    A.add_model(p)
    A.add_splits(p)
    A.add_thresholds(p)
    p.add_argument("--other", required=True, help="the dataset B's replaceable part comes from in the 'other' curve")
    p.add_argument("--fractions", type=F.FRACTION.arg, nargs="+", default=list(DEFAULT_FRACTIONS))
    p.add_argument("--repeats", type=F.REPEATS.arg, default=DEFAULTS.decouple_repeats)
    p.add_argument("--out")
    p.set_defaults(func=cmd_decouple)

    p = sub.add_parser("specificity", help="neurons shared by all located sets vs specific to one; specificity index")
    A.add_model(p)
    A.add_evaluation(p)
    p.add_argument("files", nargs="+", help="locate result JSON files, one per dataset")
    p.add_argument("--metric", default=METRICS[0], choices=METRICS, help="what an effect is measured on")
    p.add_argument("--no-eval", action="store_true", help="only split the sets (no model, no interventions)")
    p.set_defaults(func=cmd_specificity)

    neuron_commands.add_parsers(sub)
    harness_commands.add_parsers(sub)
    knowledge_commands.add_parsers(sub)
    add_null_parser(sub)

    p = sub.add_parser("export", help="CSV tables and charts from result files (as the dashboard's Export tab)")
    p.add_argument("files", nargs="+", help="locate or evaluate result JSON files")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("cache", help="list or clear the score cache and the stored results")
    p.add_argument("action", choices=["list", "clear"])
    p.add_argument("--key", help="one entry of the score cache, or one stored result, as `cache list` shows its key")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("datasets", help="list datasets and whether they are available")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("baselines", help="can the model do these tasks? unmodified accuracy, measured once and stored")
    p.add_argument("--dataset", nargs="+", help=f"datasets (default: {DEFAULTS.dataset})")
    A.add_model(p)
    p.set_defaults(func=cmd_baselines)

    p = sub.add_parser("run", help="run the steps of a JSON/TOML config file")
    p.add_argument("config")
    p.set_defaults(func=cmd_run)
    return parser


def _join_launch(args) -> parallel.Launch | None:
    """Under torchrun: check the command can be shared, then join the other processes."""
    launch = parallel.launched()
    if launch is None:
        return None
    if args.command not in SPREAD_COMMANDS:
        raise ParameterError(f"'{args.command}' runs as one process; torchrun can share {', '.join(SPREAD_COMMANDS)}.")
    if getattr(args, "no_cache", False):
        raise ParameterError(
            "--no-cache cannot be used under torchrun: the processes share their scores through the cache."
        )
    if args.device_map_auto:
        raise ParameterError(
            "--device-map-auto spreads one model over every GPU; under torchrun each process "
            "has its own GPU and its own copy of the model."
        )
    parallel.join(launch, cuda=args.device == "cuda" or args.device == "auto" and torch.cuda.is_available())
    return launch


def main(argv: Sequence[str] | None = None, exit_on_error: bool = True):
    args = build_parser().parse_args(argv)
    try:
        A.check_outputs(args)
        args.launch = _join_launch(args)
        try:
            return args.func(args)
        finally:
            parallel.leave()
    except CNLError as exc:
        if not exit_on_error:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

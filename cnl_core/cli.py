"""Command line: `python -m cnl_core <command> ...` — the same library calls the dashboard makes."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from .errors import CNLError, ParameterError

_MODELS: dict = {}


def _progress_bar(desc: str):
    bar = tqdm(total=0, desc=desc, unit="sample", dynamic_ncols=True, file=sys.stderr)

    def update(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return bar, update


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2-135m", help="built-in name, Hub id or local folder")
    p.add_argument("--revision", default=None)
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quantization", default="none", choices=["none", "8bit", "4bit", "auto"])
    p.add_argument("--device-map-auto", action="store_true", help="spread a large model over GPUs/CPU")
    p.add_argument("--trust-remote-code", action="store_true", help="run the model repo's own code (only if you trust it)")


def _model(args):
    from .models import ModelSpec, load_model

    spec = ModelSpec(args.model, args.revision, args.dtype, args.device, args.quantization, args.device_map_auto,
                     args.trust_remote_code)
    if spec.trust_remote_code:
        print("warning: trust_remote_code is on: code from the model's repository will run.", file=sys.stderr)
    if spec not in _MODELS:
        _MODELS[spec] = load_model(spec)
    return _MODELS[spec]


def _write(path: str | None, data: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2))
        print(f"wrote {path}")


def _fmt_ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def cmd_locate(args) -> dict:
    from .localize import LocateParams
    from .locate_run import run_locate
    from .scoring import ScoreConfig

    params = LocateParams(rule=args.rule, tau=args.tau, top_k=args.top_k, sigma=args.sigma, p=args.p)
    score_cfg = ScoreConfig(method=args.method, ig_steps=args.ig_steps)
    lm = _model(args)
    bar, update = _progress_bar("locate")
    with bar:
        run = run_locate(lm, args.dataset, args.n, args.splits, args.seed, score_cfg, params,
                         batch_size=args.batch_size, use_cache=not args.no_cache, progress=update)
    res = run.result()
    print(f"{res['model']} / {res['dataset']} / {res['method']}: {res['n_located']} neurons located "
          f"({100 * res['fraction_located']:.3f}% of {res['n_neurons_total']}); "
          f"{res['cache']['reused']} samples from cache, {res['cache']['computed']} computed")
    for pair in res["pairwise"]:
        print(f"  split {pair['a']} vs {pair['b']}: overlap {pair['overlap_rate']:.4f}  IoU {pair['iou']:.4f}  "
              f"(chance IoU {pair['chance_iou']:.6f}, p = {pair['p_value']:.3g}; sizes {pair['size_a']}/{pair['size_b']})")
    for note in res["cache"]["notes"]:
        print(f"  note: {note}")
    _write(args.out, res)
    return res


def cmd_sweep(args) -> dict:
    from .locate_run import run_locate, threshold_sweep
    from .scoring import ScoreConfig

    score_cfg = ScoreConfig(method=args.method, ig_steps=args.ig_steps)
    lm = _model(args)
    bar, update = _progress_bar("scores")
    with bar:
        run = run_locate(lm, args.dataset, args.n, args.splits, args.seed, score_cfg, batch_size=args.batch_size,
                         progress=update)
    rows = threshold_sweep(run, args.taus, args.ps)
    print("| tau | p | located | split overlap | split IoU | chance IoU |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tau']} | {r['p']} | {r['n_located']} | {r['overlap_rate']:.3f} | {r['iou']:.3f} | {r['chance_iou']:.5f} |")
    out = {"kind": "cnl.sweep", "dataset": args.dataset, "n": args.n, "splits": args.splits, "seed": args.seed,
           "method": args.method, "rows": rows}
    _write(args.out, out)
    return out


def cmd_compare(args) -> dict:
    from .compare import comparison_matrix
    from .locate_run import load_result, neuron_set_from_result

    if len(args.files) < 2:
        raise ParameterError("compare needs at least two result files.")
    results = [load_result(f) for f in args.files]
    names = [f"{Path(f).stem}" for f in args.files]
    mat = comparison_matrix({n: neuron_set_from_result(r) for n, r in zip(names, results)})
    width = max(len(n) for n in names) + 2
    for title, key in (("overlap rate", "overlap_rate"), ("IoU", "iou"), ("chance IoU", "chance_iou")):
        print(f"\n{title}")
        print(" " * width + "".join(f"{n[:10]:>12}" for n in names))
        for n, row in zip(names, mat[key]):
            print(f"{n:<{width}}" + "".join(f"{v:>12.4f}" for v in row))
    out = {"kind": "cnl.compare", "files": list(args.files), **mat}
    _write(args.out, out)
    return out


def _neurons_arg(args, lm):
    from .locate_run import load_result, located_sample_ids, neuron_set_from_result

    if not args.neurons:
        return None, []
    data = load_result(args.neurons)
    return neuron_set_from_result(data, lm.grid), located_sample_ids(data)


def _eval_cfg(args):
    from .evaluation import EvalConfig

    return EvalConfig(num_fewshot=args.fewshot, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                      bootstrap=args.bootstrap)


def cmd_evaluate(args) -> dict:
    from .evaluate_run import run_evaluate

    cfg = _eval_cfg(args)
    lm = _model(args)
    neurons, located = _neurons_arg(args, lm)
    bar, update = _progress_bar("evaluate")
    with bar:
        res = run_evaluate(lm, args.dataset, args.n, args.seed, neurons, mode=args.intervention, factor=args.factor,
                           positions=args.positions, control_draws=args.control_draws,
                           located_ids=[] if args.allow_overlap else located, cfg=cfg, progress=update)
    print(f"{res['dataset']} (n={res['n']}): accuracy / gold log-likelihood per token")
    for name in ("baseline", "intervened", "control"):
        if name in res:
            r = res[name]
            acc = "n/a" if r.get("accuracy") is None else f"{r['accuracy']:.3f} {_fmt_ci(r.get('accuracy_ci'))}"
            print(f"  {name:<10} acc {acc:<24} loglik {r['gold_loglik']:.4f} {_fmt_ci(r.get('gold_loglik_ci'))}")
    _write(args.out, res)
    return res


def cmd_matrix(args) -> dict:
    from .evaluate_run import run_matrix
    from .locate_run import load_result, located_sample_ids, neuron_set_from_result

    lm = _model(args)
    sources = {}
    for f in args.neurons:
        data = load_result(f)
        sources[data.get("dataset") or Path(f).stem] = (neuron_set_from_result(data, lm.grid), located_sample_ids(data))
    bar, update = _progress_bar("matrix")
    with bar:
        res = run_matrix(lm, sources, args.targets, args.n, args.seed, mode=args.intervention, factor=args.factor,
                         cfg=_eval_cfg(args), progress=update)
    metric = "delta_accuracy" if args.metric == "accuracy" else "delta_gold_loglik"
    print(f"\n{metric} (rows: neurons {args.intervention}, columns: dataset tested)")
    print(" " * 16 + "".join(f"{t[:12]:>14}" for t in res["targets"]))
    for s in res["sources"]:
        vals = [res["cells"][s][t][metric] for t in res["targets"]]
        print(f"{s[:15]:<16}" + "".join(f"{'n/a':>14}" if v is None else f"{v:>14.4f}" for v in vals))
    _write(args.out, res)
    return res


def cmd_finetune(args) -> dict:
    from .evaluate_run import run_finetune

    lm = _model(args)
    neurons, located = _neurons_arg(args, lm)
    if neurons is None:
        raise ParameterError("finetune needs --neurons FILE.json from a locate run.")
    same_dataset = [i for i in located if i.startswith(f"{args.dataset}/")] == located
    res = run_finetune(lm, args.dataset, neurons, located if same_dataset else None, args.n, args.seed,
                       n_train=args.train_n, steps=args.steps, lr=args.lr, cfg=_eval_cfg(args))
    for name in ("baseline", "located", "random"):
        print(f"  {name:<9} acc {res[name]['accuracy']}  loglik {res[name]['gold_loglik']:.4f}")
    _write(args.out, res)
    return res


def cmd_cache(args) -> dict:
    from .cache import clear_cache, list_cache

    if args.action == "clear":
        n = clear_cache(args.key)
        print(f"removed {n} cache folder(s)")
        return {"removed": n}
    entries = list_cache()
    for e in entries:
        print(f"{e['key']}  {e['model']}  {e['dataset']}  {e['method']}  {e['samples']} samples  {e['bytes'] / 2**20:.1f} MiB")
    print(f"{len(entries)} entries, {sum(e['bytes'] for e in entries) / 2**20:.1f} MiB")
    return {"entries": entries}


def cmd_datasets(args) -> dict:
    from .datasets import list_datasets

    out = []
    for d in list_datasets():
        ok, why = d.available()
        rows = len(d.rows()) if ok and not d.hub else d.expected_rows
        out.append({"name": d.name, "kind": d.kind, "rows": rows, "available": ok, "source": d.source})
        print(f"{d.name:<16} {d.kind:<16} {rows if rows is not None else '?':>7} rows  {'yes' if ok else 'no ':<4} {why}")
    return {"datasets": out}


def cmd_run(args) -> list:
    """Run the steps of a JSON or TOML config file in order, sharing one loaded model."""
    path = Path(args.config)
    try:
        text = path.read_text(encoding="utf-8")
        config = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ParameterError(f"Could not read config {path}: {exc}") from exc
    model = config.get("model", {})
    outputs = []
    for i, step in enumerate(config.get("steps", [])):
        step = dict(step)
        command = step.pop("command", None)
        if command not in ("locate", "sweep", "compare", "evaluate", "matrix", "finetune"):
            raise ParameterError(f"Step {i + 1}: unknown command {command!r}.")
        argv = [command] + _to_argv({**model, **step} if command != "compare" else step)
        print(f"\n== step {i + 1}: {' '.join(argv)}")
        outputs.append(main(argv, exit_on_error=False))
    return outputs


def _to_argv(options: dict) -> list[str]:
    argv: list[str] = []
    for key, value in options.items():
        if key == "files":
            argv += [str(v) for v in value]
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            argv += [flag] + [str(v) for v in value]
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    return argv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cnl_core", description="Capability Neuron Lab: locate and test capability neurons.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("locate", help="locate the neurons of a dataset and compare splits")
    _add_model_args(p)
    p.add_argument("--dataset", default="gsm8k")
    p.add_argument("--n", type=int, default=20, help="samples per split")
    p.add_argument("--splits", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="grad_x_act", choices=["activation", "grad_x_act", "integrated_gradients"])
    p.add_argument("--ig-steps", type=int, default=20)
    p.add_argument("--rule", default="relative", choices=["relative", "topk", "zscore"])
    p.add_argument("--tau", type=float, default=0.2)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--sigma", type=float, default=3.0)
    p.add_argument("--p", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--out")
    p.set_defaults(func=cmd_locate)

    p = sub.add_parser("sweep", help="split agreement for a grid of thresholds (from cached scores)")
    _add_model_args(p)
    p.add_argument("--dataset", default="gsm8k")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--splits", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="grad_x_act", choices=["activation", "grad_x_act", "integrated_gradients"])
    p.add_argument("--ig-steps", type=int, default=20)
    p.add_argument("--taus", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    p.add_argument("--ps", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("compare", help="overlap / IoU matrix of located sets")
    p.add_argument("files", nargs="+")
    p.add_argument("--out")
    p.set_defaults(func=cmd_compare)

    def eval_args(p):
        p.add_argument("--n", type=int, default=20)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--intervention", default="zero", choices=["zero", "amplify"])
        p.add_argument("--factor", type=float, default=2.0)
        p.add_argument("--fewshot", type=int, default=None)
        p.add_argument("--max-new-tokens", type=int, default=256)
        p.add_argument("--batch-size", type=int, default=8)
        p.add_argument("--bootstrap", type=int, default=1000)
        p.add_argument("--out")

    p = sub.add_parser("evaluate", help="accuracy before/after an intervention, with a random control")
    _add_model_args(p)
    p.add_argument("--dataset", default="gsm8k")
    p.add_argument("--neurons", help="locate result JSON")
    p.add_argument("--positions", default="all", choices=["all", "answer"])
    p.add_argument("--control-draws", type=int, default=3)
    p.add_argument("--allow-overlap", action="store_true", help="allow evaluation samples used for localization")
    eval_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("matrix", help="cross-dataset matrix: neurons of each file x datasets tested")
    _add_model_args(p)
    p.add_argument("--neurons", nargs="+", required=True)
    p.add_argument("--targets", nargs="+", required=True)
    p.add_argument("--metric", default="gold_loglik", choices=["accuracy", "gold_loglik"])
    eval_args(p)
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("finetune", help="fine-tune only the located neurons vs random neurons")
    _add_model_args(p)
    p.add_argument("--dataset", default="gsm8k")
    p.add_argument("--neurons", required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train-n", type=int, default=16, help="training samples when the neurons come from another dataset")
    eval_args(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("cache", help="list or clear the score cache")
    p.add_argument("action", choices=["list", "clear"])
    p.add_argument("--key")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("datasets", help="list datasets and whether they are available")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("run", help="run the steps of a JSON/TOML config file")
    p.add_argument("config")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None, exit_on_error: bool = True):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CNLError as exc:
        if not exit_on_error:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

"""What each CLI command does: check every input, then load the model, run, print, write JSON.

Each command reads its whole input (configs, datasets, neuron files, output paths) before the model
loads, and checks neurons against the grid the model's config describes, so a typo fails in a second,
not after a minute of loading. Results are written atomically: a failed write keeps the earlier file.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from tqdm import tqdm

from ..compare.overlap import comparison_matrix
from ..errors import ParameterError
from ..experiments.eval_results import EvalResult
from ..experiments.finetune import run_finetune
from ..experiments.json_io import parse_result, read_json, write_json
from ..experiments.locate import threshold_sweep
from ..experiments.locate_result import UNNAMED, LocateResult
from ..experiments.requests import EvaluateRequest, Job, MatrixRequest
from ..experiments.requests_locate import LocateRequest
from ..inspect.neuron import check_neuron
from ..model.config_grid import config_grid
from ..model.loading import LoadedModel, memory_plan
from ..model.model_cache import MODELS
from ..model.neurons import NeuronGrid, NeuronSet
from ..report.exports import write_exports
from ..serialize import to_data
from . import arguments as A


def command_model(args, sets: Sequence[LocateResult] = (), neuron: tuple[int, int] | None = None) -> LoadedModel:
    """The model of the command, once the neuron sets and the neuron it will use are on its grid."""
    spec = A.model_spec(args)
    if sets or neuron is not None:
        loaded = MODELS.peek(spec)
        grid = loaded.grid if loaded is not None else config_grid(spec)
        for located in sets:
            _on_grid(located, grid)
        if neuron is not None:
            check_neuron(grid, *neuron)
    if spec.trust_remote_code:
        print("warning: trust_remote_code is on: code from the model's repository will run.", file=sys.stderr)
    work = A.workload(args)
    if spec not in MODELS.loaded():
        print(f"memory estimate: {memory_plan(spec, work).estimate.describe()}", file=sys.stderr)
    return MODELS.get(spec, work)


def progress_bar(desc: str, args=None) -> tuple:
    """A tqdm bar and its Progress callback; no bar in the processes torchrun started besides the main one."""
    if _helper(args):
        return nullcontext(), None
    bar = tqdm(total=0, desc=desc, unit="sample", dynamic_ncols=True, file=sys.stderr)

    def update(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return bar, update


def _helper(args) -> bool:
    """True in a process torchrun started that only helps: it does its share and returns without output."""
    launch = getattr(args, "launch", None)
    return launch is not None and not launch.is_main


def write_result(path: str | None, data: dict) -> None:
    """A command's JSON result, where --out asks for one."""
    if path:
        write_json(path, data)
        print(f"wrote {path}")


def format_ci(ci) -> str:
    """A 95% interval as [low, high], or nothing where there is none."""
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def locate_request(args) -> LocateRequest:
    """The locate the command's flags name, checked before the model loads (the dashboard's Locate builds the same)."""
    params, score_cfg = A.locate_params(args), A.score_config(args)
    spec = A.dataset(args, need=args.n * args.splits)
    return LocateRequest(
        spec.name, args.n, args.splits, args.seed, score_cfg, params, args.batch_size, use_cache=not args.no_cache
    )


def cmd_locate(args) -> dict:
    request = locate_request(args)
    lm = command_model(args)
    bar, update = progress_bar("locate", args)
    with bar:
        run = request.run(lm, Job(update), launch=args.launch)
    if _helper(args):
        return {}
    res = run.result()
    print(
        f"{res.model} / {res.dataset} / {res.method}: {res.n_located} neurons located "
        f"({100 * res.fraction_located:.3f}% of {res.grid.total}); "
        f"{res.cache.reused} samples from cache, {res.cache.computed} computed"
    )
    for pair in res.pairwise:
        s = pair.stats
        print(
            f"  split {pair.a} vs {pair.b}: overlap {s.overlap_rate:.4f}  IoU {s.iou:.4f}  "
            f"(chance IoU {s.chance_iou:.6f}, p = {s.p_value:.3g}; sizes {s.size_a}/{s.size_b})"
        )
    print(
        f"  token limits: prompts {res.score.max_prompt_tokens}, answers {res.score.max_answer_tokens} "
        f"({res.truncated_prompts} prompts and {res.truncated_answers} answers cut); sign: {res.params.sign}"
    )
    for note in [*res.cache.notes, *res.warnings()]:
        print(f"  note: {note}")
    out = to_data(res)
    write_result(args.out, out)
    return out


def cmd_sweep(args) -> dict:
    spec = A.dataset(args, need=args.n * args.splits)
    request = LocateRequest(spec.name, args.n, args.splits, args.seed, A.score_config(args), batch_size=args.batch_size)
    lm = command_model(args)
    bar, update = progress_bar("scores", args)
    with bar:
        run = request.run(lm, Job(update), launch=args.launch)
    if _helper(args):
        return {}
    rows = threshold_sweep(run, args.taus, args.ps)
    print("| tau | p | located | split overlap | split IoU | chance IoU |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.tau} | {r.p} | {r.n_located} | {r.overlap_rate:.3f} | {r.iou:.3f} | {r.chance_iou:.5f} |")
    out = {
        "kind": "cnl.sweep",
        "dataset": spec.name,
        "n": args.n,
        "splits": args.splits,
        "seed": args.seed,
        "method": args.method,
        "rows": [vars(r) for r in rows],
    }
    write_result(args.out, out)
    return out


def cmd_compare(args) -> dict:
    if len(args.files) < 2:
        raise ParameterError("compare needs at least two result files.")
    results = [LocateResult.read(f) for f in args.files]
    names = [Path(f).stem for f in args.files]
    mat = comparison_matrix({n: r.neurons for n, r in zip(names, results)})
    width = max(len(n) for n in names) + 2
    for title, values in (("overlap rate", mat.overlap_rate), ("IoU", mat.iou), ("chance IoU", mat.chance_iou)):
        print(f"\n{title}")
        print(" " * width + "".join(f"{n[:10]:>12}" for n in names))
        for n, row in zip(names, values):
            print(f"{n:<{width}}" + "".join(f"{v:>12.4f}" for v in row))
    out = {"kind": "cnl.compare", "files": list(args.files), **to_data(mat)}
    write_result(args.out, out)
    return out


def cmd_evaluate(args) -> dict:
    cfg = A.eval_config(args)
    located = A.neuron_file(args.neurons)
    spec = A.dataset(args)
    lm = command_model(args, [located] if located else [])
    iv = None
    if located is not None:
        iv = A.intervention(args, on_model(located, lm))
    request = EvaluateRequest(
        spec.name,
        iv,
        args.n,
        args.seed,
        args.control_draws,
        args.control_may_overlap,
        tuple([] if args.allow_overlap or located is None else located.located_sample_ids()),
        cfg,
    )
    bar, update = progress_bar("evaluate", args)
    with bar:
        res = request.run(lm, Job(update), launch=args.launch)
    if _helper(args):
        return {}
    print(f"{res.dataset} (n={res.n}): accuracy / gold log-likelihood per token")
    for name, r in res.conditions().items():
        acc = "n/a" if r.accuracy is None else f"{r.accuracy:.3f} {format_ci(r.accuracy_ci)}"
        print(f"  {name:<10} acc {acc:<24} loglik {r.gold_loglik:.4f} {format_ci(r.gold_loglik_ci)}")
    out = to_data(res)
    write_result(args.out, out)
    return out


def on_model(located: LocateResult, lm: LoadedModel) -> NeuronSet:
    """The located set, refused when it was located on a model of another shape."""
    return _on_grid(located, lm.grid)


def _on_grid(located: LocateResult, grid: NeuronGrid):
    located.grid.check_on(grid)
    return located.neurons


def cmd_matrix(args) -> dict:
    cfg = A.eval_config(args)
    files = [(f, LocateResult.read(f)) for f in args.neurons]
    targets = [A.dataset(args, t).name for t in args.targets]
    lm = command_model(args, [r for _, r in files])
    rows = {
        r.dataset if r.dataset != UNNAMED else Path(f).stem: (
            A.intervention(args, on_model(r, lm)),
            r.located_sample_ids(),
        )
        for f, r in files
    }
    request = MatrixRequest(rows, tuple(targets), args.n, args.seed, with_controls=not args.no_controls, eval=cfg)
    bar, update = progress_bar("matrix", args)
    with bar:
        res = request.run(lm, Job(update), launch=args.launch)
    if _helper(args):
        return {}
    metric = f"delta_{args.metric}"
    print(f"\n{metric} (rows: neurons {args.intervention}, columns: dataset tested)")
    print(" " * 16 + "".join(f"{t[:12]:>14}" for t in res.targets))
    for s in res.sources:
        vals = [res.cell(s, t, metric) for t in res.targets]
        print(f"{s[:15]:<16}" + "".join(f"{'n/a':>14}" if v is None else f"{v:>14.4f}" for v in vals))
    out = to_data(res)
    write_result(args.out, out)
    return out


def cmd_finetune(args) -> dict:
    cfg = A.eval_config(args)
    located = A.neuron_file(args.neurons)
    spec = A.dataset(args)
    lm = command_model(args, [located])
    ids = located.located_sample_ids()
    same_dataset = all(i.startswith(f"{spec.name}/") for i in ids)
    res = run_finetune(
        lm,
        spec.name,
        on_model(located, lm),
        ids if same_dataset else None,
        args.n,
        args.seed,
        n_train=args.train_n,
        steps=args.steps,
        lr=args.lr,
        cfg=cfg,
    )
    for name, s in (("baseline", res.baseline), ("located", res.located), ("random", res.random)):
        print(f"  {name:<9} acc {s.accuracy}  loglik {s.gold_loglik:.4f}")
    out = to_data(res)
    write_result(args.out, out)
    return out


def cmd_export(args) -> dict:
    """The dashboard's Export files, from result files: located sets and evaluations."""
    located, evals = {}, []
    for f in args.files:
        data, name = read_json(f, allow_list=True), Path(f).name
        if isinstance(data, list):  # the dashboard's evaluation.json: a list of evaluations
            evals += [parse_result(d, EvalResult, f"{name}[{i}]") for i, d in enumerate(data)]
        elif data.get("kind") == "cnl.evaluate":
            evals.append(parse_result(data, EvalResult, name))
        elif data.get("kind", "cnl.locate") == "cnl.locate":
            res = parse_result(data, LocateResult, name)
            located[f"{res.model}_{res.dataset}_{Path(f).stem}"] = (res, None)
        else:
            raise ParameterError(
                f"{Path(f).name} is a {str(data.get('kind'))[:40]} file; export takes locate and evaluate results."
            )
    files = write_exports(args.out_dir, located, evals)
    for f in files:
        print(f"wrote {f}")
    return {"files": [str(f) for f in files]}

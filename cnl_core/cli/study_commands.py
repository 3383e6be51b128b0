"""The CLI's studies beyond locate/evaluate: the demo, the paper's decoupling curve, and specificity."""

from __future__ import annotations

from pathlib import Path

from .. import fields as F
from ..experiments.demo import CONDITIONS
from ..experiments.empirical_null import NULL_KINDS
from ..experiments.format_control import FormatControlResult
from ..experiments.locate_result import UNNAMED, LocateResult
from ..experiments.requests import Job
from ..experiments.requests_locate import NullRequest, SpecificityRequest
from ..experiments.requests_studies import DecoupleRequest, DemoRequest
from ..experiments.specificity import split_by_sharing
from ..options import DEFAULTS
from ..serialize import to_data
from . import arguments as A
from .commands import command_model, format_ci, progress_bar, write_result


def cmd_decouple(args) -> dict:
    params, score_cfg = A.locate_params(args), A.score_config(args)
    spec = A.dataset(args, need=2 * args.n)
    other = A.dataset(args, args.other, need=args.n)
    lm = command_model(args)
    request = DecoupleRequest(
        spec.name, other.name, args.n, tuple(args.fractions), args.repeats, args.seed, score_cfg, params
    )
    bar, update = progress_bar("decouple")
    with bar:
        res = request.run(lm, Job(update))
    print(f"{res.dataset} vs {res.other}, n = {res.n}, {res.repeats} repeat(s): IoU of the two subsamples' sets")
    print("| shared fraction | replaceable from | IoU (mean) | IoU range | chance IoU |\n|---|---|---|---|---|")
    for p in res.mean_curve():
        source = res.dataset if p["replaceable"] == "same" else res.other
        print(
            f"| {p['fraction']:.2f} | {source} | {p['iou']:.3f} | {p['iou_min']:.3f}-{p['iou_max']:.3f} | "
            f"{p['chance_iou']:.5f} |"
        )
    null = res.empirical_null()
    if null["iou"] is not None:
        print(
            f"empirical null ({null['what']}): IoU {null['iou']:.3f} (range {null['iou_min']:.3f}-"
            f"{null['iou_max']:.3f} over {null['repeats']} repeat(s))"
        )
    for w in res.warnings():
        print(f"  warning: {w}")
    out = to_data(res)
    write_result(args.out, out)
    return out


def cmd_specificity(args) -> dict:
    cfg = A.eval_config(args)
    located = {}
    for f in args.files:
        r = LocateResult.read(f)
        located[r.dataset if r.dataset != UNNAMED and r.dataset not in located else Path(f).stem] = r
    split = split_by_sharing({k: r.neurons for k, r in located.items()})
    print(
        f"shared by all {len(split.names)} sets: {len(split.shared_by_all)} neurons; specific: "
        + ", ".join(f"{k} {len(v)}" for k, v in split.specific.items())
    )
    for combo, count in split.counts.items():
        print(f"  {count:>6}  {combo}")
    if args.no_eval:
        out = {"kind": "cnl.specificity", **to_data(split)}
        write_result(args.out, out)
        return out
    request = SpecificityRequest(located, args.n, args.seed, args.intervention, args.factor, args.metric, cfg)
    lm = command_model(args, list(located.values()))
    bar, update = progress_bar("specificity")
    with bar:
        res = request.run(lm, Job(update))
    print(
        f"\nspecificity index ({args.metric}, {args.intervention} the specific neurons): own effect - mean effect "
        "on the others"
    )
    for name, ix in res.index.items():
        value = "n/a" if ix["value"] is None else f"{ix['value']:+.4f} {format_ci(ix['ci'])}"
        print(f"  {name:<20} {value}")
    out = to_data(res)
    write_result(args.out, out)
    return out


def cmd_demo(args) -> dict:
    request = DemoRequest(args.answer, args.seed)
    lm = command_model(args)
    bar, update = progress_bar("demo")
    with bar:
        res = request.run(lm, Job(update))
    if isinstance(res, FormatControlResult):
        _print_demo(res.with_format)
        _print_demo(res.content_only)
        print("p(' ') after the prompt (the format token), 95% interval over the test prompts:")
        for name, v in res.format_token.items():
            print(f"  {name:<16} {v['p']:.3f} {format_ci(v['ci'])}")
        print(f"neurons in both located sets: {res.shared_neurons}")
    else:
        _print_demo(res)
    out = to_data(res)
    write_result(args.out, out)
    return out


def _print_demo(res) -> None:
    print(res.headline())
    print("| condition | accuracy | 95% interval | gold log-likelihood / token |\n|---|---|---|---|")
    for key in CONDITIONS:
        s = res.conditions[key]
        print(f"| {key} | {s.accuracy:.3f} | {format_ci(s.accuracy_ci)} | {s.gold_loglik:.3f} |")
    print(f"({res.seconds:.0f} s)")


def add_null_parser(sub) -> None:
    p = sub.add_parser("null", help="empirical null: IoU of sets located on unrelated data or on shuffled answers")
    A.add_model(p)
    A.add_splits(p)
    A.add_thresholds(p)
    p.add_argument("--null", default=NULL_KINDS[0], choices=NULL_KINDS, help="unrelated data, or shuffled answers")
    p.add_argument("--other", default=DEFAULTS.null_other, help="the unrelated dataset (kind unrelated)")
    p.add_argument("--draws", type=F.NULL_DRAWS.arg, default=DEFAULTS.null_draws, help="subsamples per side")
    p.add_argument("--out")
    p.set_defaults(func=cmd_null)


def cmd_null(args) -> dict:
    spec = A.dataset(args, need=args.n * args.draws * (2 if args.null == "shuffled" else 1))
    if args.null == "unrelated":
        A.dataset(args, args.other, need=args.n * args.draws)
    request = NullRequest(
        spec.name,
        args.null,
        args.other,
        args.n,
        args.draws,
        args.seed,
        A.score_config(args),
        A.locate_params(args),
        args.batch_size,
    )
    lm = command_model(args)
    bar, update = progress_bar("null")
    with bar:
        res = request.run(lm, Job(update))
    print(res.describe())
    out = to_data(res)
    write_result(args.out, out)
    return out


def cmd_baselines(args) -> dict:
    """Each dataset's unmodified accuracy for the model, stored once (the dashboard's Data tab reads the same)."""
    from ..data.samples import get_dataset
    from ..experiments.baselines import BaselineRequest, baseline

    names = args.dataset or [DEFAULTS.dataset]
    for name in names:
        get_dataset(name)  # every name is checked before the model is loaded
    lm = command_model(args)
    out = {}
    for name in names:
        bar, update = progress_bar(f"baseline {name}")
        with bar:
            b = baseline(lm, BaselineRequest(name), progress=update)
        print(b.reading().replace("**", ""))
        out[name] = {"accuracy": b.accuracy, "verdict": b.verdict, "n": b.n}
    return {"baselines": out}

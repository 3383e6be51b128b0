"""The CLI's studies beyond locate/evaluate: the demo, the paper's decoupling curve, and specificity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..experiments.decouple import run_decouple
from ..experiments.demo import CONDITIONS, DEMO, run_demo
from ..experiments.locate_result import UNNAMED, LocateResult
from ..experiments.specificity import run_specificity, split_by_sharing
from . import arguments as A
from .commands import command_model, format_ci, progress_bar, write_result


def cmd_decouple(args) -> dict:
    params, score_cfg = A.locate_params(args), A.score_config(args)
    spec = A.dataset(args, need=2 * args.n)
    other = A.dataset(args, args.other, need=args.n)
    lm = command_model(args)
    bar, update = progress_bar("decouple")
    with bar:
        res = run_decouple(lm, spec.name, other.name, args.n, args.fractions, args.repeats, args.seed, score_cfg,
                           params, batch_size=args.batch_size, progress=update)
    print(f"{res.dataset} vs {res.other}, n = {res.n}, {res.repeats} repeat(s): IoU of the two subsamples' sets")
    print("| shared fraction | replaceable from | IoU (mean) | IoU range | chance IoU |\n|---|---|---|---|---|")
    for p in res.mean_curve():
        source = res.dataset if p["replaceable"] == "same" else res.other
        print(f"| {p['fraction']:.2f} | {source} | {p['iou']:.3f} | {p['iou_min']:.3f}-{p['iou_max']:.3f} | "
              f"{p['chance_iou']:.5f} |")
    out = res.to_json()
    write_result(args.out, out)
    return out


def cmd_specificity(args) -> dict:
    cfg = A.eval_config(args)
    located = {}
    for f in args.files:
        r = LocateResult.read(f)
        located[r.dataset if r.dataset != UNNAMED and r.dataset not in located else Path(f).stem] = r
    split = split_by_sharing({k: r.neurons for k, r in located.items()})
    print(f"shared by all {len(split.names)} sets: {len(split.shared_by_all)} neurons; specific: "
          + ", ".join(f"{k} {len(v)}" for k, v in split.specific.items()))
    for combo, count in split.counts.items():
        print(f"  {count:>6}  {combo}")
    if args.no_eval:
        out = {"kind": "cnl.specificity", **split.to_json()}
        write_result(args.out, out)
        return out
    lm = command_model(args)
    bar, update = progress_bar("specificity")
    with bar:
        res = run_specificity(lm, located, args.n, args.seed, mode=args.intervention, factor=args.factor,
                              metric=args.metric, cfg=cfg, progress=update)
    print(f"\nspecificity index ({args.metric}, {args.intervention} the specific neurons): own effect - mean effect "
          "on the others")
    for name, ix in res.index.items():
        value = "n/a" if ix["value"] is None else f"{ix['value']:+.4f} {format_ci(ix['ci'])}"
        print(f"  {name:<20} {value}")
    out = res.to_json()
    write_result(args.out, out)
    return out


def cmd_demo(args) -> dict:
    preset = replace(DEMO, seed=args.seed)
    lm = command_model(args)
    bar, update = progress_bar("demo")
    with bar:
        res = run_demo(lm, preset, progress=update)
    print(res.headline())
    print("| condition | accuracy | 95% interval | gold log-likelihood / token |\n|---|---|---|---|")
    for key in CONDITIONS:
        s = res.conditions[key]
        print(f"| {key} | {s.accuracy:.3f} | {format_ci(s.accuracy_ci)} | {s.gold_loglik:.3f} |")
    print(f"({res.seconds:.0f} s)")
    out = res.to_json()
    write_result(args.out, out)
    return out

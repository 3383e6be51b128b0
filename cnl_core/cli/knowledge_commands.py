"""The CLI's `knowledge` commands: the paper's first half (individual facts do not localize, or do they?).

`python -m cnl_core knowledge facts|fidelity|trace|reliability|edit|study`: each reads the built-in facts
(or --facts-csv), checks which the model knows, and runs one part of the study on the known ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .. import fields as F
from ..errors import DatasetError, ParameterError
from ..experiments.requests import Job
from ..experiments.requests_knowledge import KnowledgeRequest, PartConfig, TraceConfig
from ..knowledge.editing import TRACED_SITES, EditConfig, EditingResult, located_vs_best
from ..knowledge.facts import BUILTIN_RELATIONS, FactSet, builtin_facts, read_facts_csv
from ..knowledge.fidelity import FidelityConfig
from ..knowledge.intervals import INTERVALS
from ..knowledge.probe import MAX_ANSWER_TOKENS, check_known
from ..knowledge.reliability import ReliabilityConfig
from ..knowledge.study import PARTS, KnowledgeStudy, StudyConfig, table
from ..knowledge.tracing import SITES
from ..locate.scorers import scorer_names
from ..options import SCORE_POSITIONS, SIGNS
from ..serialize import to_data
from . import arguments as A
from .commands import command_model, progress_bar, write_result

ACTIONS = ("facts", "fidelity", "trace", "reliability", "edit", "study")
PLANNED_PROMPT_TOKENS = 96
_FID, _STUDY = FidelityConfig(), StudyConfig()
KL_WEIGHT = F.NumberField("KL weight", 0.0, 1000.0, whole=False)  # ROME's essence-drift penalty (0: without it)


def add_parsers(sub) -> None:
    p = sub.add_parser("knowledge", help="facts with paraphrases: fidelity, causal tracing, reliability, editing")
    p.add_argument("action", choices=ACTIONS)
    A.add_model(p)
    p.add_argument("--facts-csv", help="your facts: CSV with subject, relation, answer, templates (' | '-separated)")
    p.add_argument("--relations", nargs="+", choices=[r.name for r in BUILTIN_RELATIONS], help="built-in relations")
    p.add_argument("--shots", type=F.FEWSHOT.arg, default=2, help="demonstrations before each prompt (0 to 8)")
    p.add_argument(
        "--facts-per-relation",
        type=F.FACTS_PER_RELATION.arg,
        default=None,
        help="first N known facts of each relation (default: the study's size: all for fidelity, "
        f"{_STUDY.trace_facts} traced, {_STUDY.reliability_facts} for reliability, "
        f"{_STUDY.edit_facts} edited)",
    )
    p.add_argument("--method", default=_FID.method, choices=scorer_names())
    p.add_argument("--ig-steps", type=F.IG_STEPS.arg, default=_FID.ig_steps)
    p.add_argument(
        "--batch-size",
        type=F.BATCH.arg,
        default=None,
        help="prompts scored together (default: 8, or fewer where the memory estimate says so)",
    )
    p.add_argument("--tau", type=F.TAU.arg, default=_FID.tau)
    p.add_argument("--p", type=F.P.arg, default=_FID.p)
    p.add_argument("--sign", default=_FID.sign, choices=SIGNS)
    p.add_argument(
        "--position",
        default=_FID.position,
        choices=SCORE_POSITIONS,
        help="fidelity, reliability: score fact prompts at the answer or at the subject's last token",
    )
    p.add_argument("--capability", default=_FID.capability, help="dataset whose CNL split agreement is compared")
    p.add_argument(
        "--capability-shots",
        type=F.FEWSHOT.arg,
        default=None,
        help="demonstrations before each capability prompt (default: as many as the fact prompts: like for like)",
    )
    p.add_argument(
        "--capability-draws",
        type=F.REPEATS.arg,
        default=_STUDY.capability_draws,
        help="fidelity, study: independent capability splits (each on samples of its own: 6 samples a draw)",
    )
    p.add_argument(
        "--match-sizes",
        type=F.TOP_K.arg,
        nargs="*",
        default=list(_FID.match_sizes),
        help="fidelity, study: the split groups again with every set capped at each of these sizes (like for like)",
    )
    p.add_argument(
        "--site", default=SITES[0], choices=SITES, help="trace: hidden state, MLP window or attention window"
    )
    p.add_argument("--draws", type=F.REPEATS.arg, default=2, help="trace: noise draws per prompt")
    p.add_argument(
        "--layers",
        type=F.LAYER.arg,
        nargs="+",
        help=f"edit: layers (default: {_STUDY.edit_layer_count} spread over the model's depth)",
    )
    p.add_argument(
        "--kl-weight",
        type=KL_WEIGHT.arg,
        default=_STUDY.edit_kl_weight,
        help="edit: weight of ROME's essence-drift KL term in the value optimisation (0: without it)",
    )
    p.add_argument("--seed", type=F.SEED.arg, default=_STUDY.seed, help="the study's preset was chosen on seed 0")
    p.add_argument("--no-edit", action="store_true", help="study: skip the per-layer editing (the slowest part)")
    p.add_argument("--out")
    # what the memory estimate plans for: a fact prompt with its demonstrations is 30 to 60 tokens, not 256
    p.set_defaults(
        func=cmd_knowledge,
        ig_rule="right",
        max_prompt_tokens=PLANNED_PROMPT_TOKENS,
        max_answer_tokens=MAX_ANSWER_TOKENS,
    )


def _facts(args) -> FactSet:
    if args.shots is None or args.shots > 8:
        raise ParameterError("--shots: give a whole number from 0 to 8.")
    if args.facts_csv:
        try:
            text = Path(args.facts_csv).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"Could not read the facts file {args.facts_csv}: {exc}") from exc
        return read_facts_csv(text, args.shots, Path(args.facts_csv).stem)
    return builtin_facts(args.shots, tuple(args.relations) if args.relations else None)


def cmd_knowledge(args) -> dict:
    request = knowledge_request(args, _facts(args))
    lm = command_model(args)
    known = check_known(lm, request.facts)
    print(
        f"{len(known.known)} of {len(known.share)} facts known ({request.facts.shots}-shot, greedy decoding gives "
        f"the answer on at least half of their paraphrases)"
    )
    bar, update = progress_bar(f"knowledge {args.action}")
    with bar:
        if args.action == "facts":
            for fact_id, share in known.share.items():
                print(f"  {'known' if fact_id in known.known else '     '}  {share:.2f}  {fact_id}")
        # every finished part of a study is written at once: a later part that fails leaves the earlier ones on disk
        res = request.run(lm, Job(update), known=known, on_part=lambda s: write_result(args.out, to_data(s)))
    out = to_data(res)
    if isinstance(res, EditingResult):
        out["located_vs_best"] = {s: located_vs_best(res, s) for s in TRACED_SITES}
    if isinstance(res, KnowledgeStudy):
        print("\n".join(table(res)))
    write_result(args.out, out)  # first: the file is kept whatever the printing does
    if args.action in ("fidelity", "reliability", "trace", "edit"):
        _print_part(args.action, out)
    return out


def knowledge_request(args, facts_set: FactSet) -> KnowledgeRequest:
    """The request the command's flags name: the action's part with its config (checked before the model loads)."""
    if args.layers is not None and not args.layers:
        raise ParameterError("--layers: give at least one layer.")
    configs: dict[str, Callable[[], PartConfig]] = {
        "fidelity": lambda: FidelityConfig(
            args.method,
            args.ig_steps,
            args.tau,
            args.sign,
            args.p,
            args.position,
            args.capability,
            seed=args.seed,
            draws=args.capability_draws,
            capability_shots=args.capability_shots,
            match_sizes=tuple(args.match_sizes),
        ),
        "trace": lambda: TraceConfig(args.site, args.draws, args.seed),
        "reliability": lambda: ReliabilityConfig(
            args.method, args.ig_steps, args.tau, args.p, args.sign, args.position, seed=args.seed
        ),
        "edit": lambda: replace(
            EditConfig(),
            layers=tuple(args.layers) if args.layers else _STUDY.edit_layers,
            layer_count=_STUDY.edit_layer_count,
            seed=args.seed,
            kl_weight=args.kl_weight,
        ),
        "study": lambda: replace(
            _STUDY,
            seed=args.seed,
            method=args.method,
            position=args.position,
            tau=args.tau,
            p=args.p,
            edit_layers=tuple(args.layers) if args.layers else _STUDY.edit_layers,
            capability_draws=args.capability_draws,
            capability_shots=args.capability_shots,
            match_sizes=tuple(args.match_sizes),
            edit_kl_weight=args.kl_weight,
        ),
    }
    make = configs.get(args.action)
    return KnowledgeRequest(
        facts_set,
        args.action,
        make() if make is not None else None,
        args.facts_per_relation,
        tuple(x for x in PARTS if x != "editing" or not args.no_edit),
        args.batch_size,
    )


def _print_part(action: str, out: dict) -> None:
    if action == "fidelity":
        for g in out["pairs"] + out["splits"] + out.get("matched", []):
            cap = "" if g.get("size_cap") is None else f", sets capped at {g['size_cap']}"
            iou = "n/a" if g["iou"] is None else f"{g['iou']:.3f} [{g['ci'][0]:.3f}, {g['ci'][1]:.3f}]"
            print(
                f"  {g['name'] + cap:<48} IoU {iou} over {INTERVALS.get(g.get('interval', 'facts'))}; "
                f"mean size {g['mean_size']:.1f}, chance {g['chance_iou'] or 0:.5f}"
                + ("" if not g.get("ci_crossed") else f"; crossed [{g['ci_crossed'][0]:.3f}, {g['ci_crossed'][1]:.3f}]")
            )
    elif action == "trace":
        print(f"  {out['informative']} of {len(out['traces'])} traces informative; peak agreement ({out['site']}):")
        for k, v in out["agreement"].items():
            if isinstance(v, dict):
                print(f"    {k:<36} {v['share']} {v['ci']}")
        com = out["centre_of_mass"]
        for group in ("same fact", "other fact, same relation"):
            if com.get(group):
                g = com[group]
                print(
                    f"    centre of mass, mean distance, {group:<26} {g['mean_distance']} {g['ci']} "
                    f"(facts, then wordings: {g.get('ci_facts_and_prompts')})"
                )
        print(f"    permutation p (a fact's paraphrases closer than its relation's facts): {com.get('p_value')}")
    elif action == "reliability":
        for r in out["summary"]:
            if r["delta_logp"] is not None:
                print(f"  {r['mode']:<8} {r['neurons']:<20} {r['target']:<28} {r['delta_logp']:+.3f} {r['ci']}")
    else:
        for r in out["summary"]:
            print(
                f"  layer {r['layer']:>2}: p(new) edit {r['p_new_edit']:.3f}, paraphrases {r['p_new_paraphrases']:.3f}"
            )

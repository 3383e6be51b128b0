"""The CLI's `lm-eval` command: lm-evaluation-harness tasks with the located neurons zeroed or amplified.

Everything a user can get wrong (harness missing, unknown task, bad neuron file, bad factor) is
checked before the model is loaded.
"""

from __future__ import annotations

from .. import fields as F
from ..evaluate.harness import HarnessSettings, require_harness, task_manager
from ..experiments.harness_eval import HarnessEvalResult, run_harness_eval
from ..options import DEFAULTS, HARNESS, INTERVENTION_MODES
from ..serialize import to_data
from . import arguments as A
from .commands import command_model, on_model, progress_bar, write_result


def cmd_lm_eval(args) -> dict:
    require_harness()
    settings = HarnessSettings.from_inputs(
        args.tasks,
        args.include_path,
        args.limit,
        args.num_fewshot,
        args.max_gen_toks,
        args.batch_size,
        args.bootstrap_iters,
    )
    located = A.neuron_file(args.neurons)
    A.intervention(args, located.neurons)  # a bad factor fails before the model loads
    manager = task_manager(settings)
    lm = command_model(args, [located])
    iv = A.intervention(args, on_model(located, lm))
    bar, update = progress_bar("lm-eval runs")
    with bar:
        res = run_harness_eval(
            lm,
            settings,
            iv,
            control_draws=args.control_draws,
            control_may_overlap=args.control_may_overlap,
            seed=args.seed,
            manager=manager,
            located_on=f"{located.model}:{located.dataset}",
            progress=update,
        )
    print(markdown_table(res))
    out = to_data(res)
    write_result(args.out, out)
    return out


def _pm(value: float, stderr: float | None, signed: bool = False) -> str:
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    return text if stderr is None else f"{text} ± {stderr:.3f}"


def markdown_table(res: HarnessEvalResult) -> str:
    """Every task and metric: unmodified, intervened and control mean, with the harness's standard errors."""
    iv = to_data(res.intervention) or {}
    how = "zeroed" if iv.get("mode") == "zero" else f"amplified x{iv.get('factor', 0):g}"
    k = len(res.controls)
    lines = [
        f"| task | metric | unmodified | {iv.get('n_neurons', 0)} located neurons {how} | change | "
        f"random control (mean of {k}) | change |",
        "|---|---|---|---|---|---|---|",
    ]
    diffs = res.differences()
    for task, base in res.baseline.items():
        for key, b in base.metrics.items():
            after = (res.intervened or {}).get(task)
            d = diffs.get(task, {}).get(key, {})
            a = after.metrics.get(key) if after else None
            ctrl = d.get("control_minus_unmodified")
            lines.append(
                " | ".join(
                    [
                        f"| {task}",
                        key.replace(",none", ""),
                        _pm(b.value, b.stderr),
                        _pm(a.value, a.stderr) if a else "",
                        _pm(d["intervened_minus_unmodified"], d.get("stderr_unpaired"), signed=True) if a else "",
                        f"{b.value + ctrl:.3f} (sd {d['control_draws_sd']:.3f})" if ctrl is not None else "",
                        f"{ctrl:+.3f}" if ctrl is not None else "",
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "lm-eval",
        help="lm-evaluation-harness tasks: unmodified, neurons zeroed/amplified, random "
        "controls (optional extra: " + HARNESS.install + ")",
    )
    A.add_model(p)
    p.add_argument("--tasks", required=True, help="harness task names, comma-separated (e.g. arc_easy,hellaswag)")
    p.add_argument("--include-path", help="a folder of your own task YAML files (the harness's --include_path)")
    p.add_argument("--neurons", required=True, help="a locate result JSON")
    p.add_argument("--intervention", default=INTERVENTION_MODES[0], choices=INTERVENTION_MODES)
    p.add_argument("--factor", type=F.FACTOR.arg, default=DEFAULTS.amplify_factor, help="amplify factor")
    p.add_argument(
        "--control-draws",
        type=F.HARNESS_DRAWS.arg,
        default=HARNESS.control_draws,
        help="random same-size controls (each is one more full harness run)",
    )
    p.add_argument(
        "--control-may-overlap",
        action="store_true",
        help="let the random controls include located neurons (default: they avoid them)",
    )
    p.add_argument("--limit", type=F.HARNESS_LIMIT.arg, help="samples per task (default: all; the harness's --limit)")
    p.add_argument("--num-fewshot", type=F.HARNESS_FEWSHOT.arg, help="few-shot examples (default: each task's own)")
    p.add_argument(
        "--max-gen-toks", type=F.HARNESS_GEN_TOKS.arg, help="new tokens for generation tasks (default: each task's own)"
    )
    p.add_argument("--batch-size", type=F.BATCH.arg, default=HARNESS.batch_size)
    p.add_argument(
        "--bootstrap-iters",
        type=F.BOOTSTRAP_ITERS.arg,
        default=HARNESS.bootstrap_iters,
        help="the harness's bootstrap draws for stderrs without a closed form (0: no stderr)",
    )
    p.add_argument("--seed", type=F.SEED.arg, default=DEFAULTS.seed, help="the random controls' draws")
    p.add_argument("--out")
    p.set_defaults(func=cmd_lm_eval)

"""One line beside each result number saying what it means, for a class that cannot read a table yet.

Why: students saw "split IoU 0.37", "accuracy 10% -> 0% amplified" and "n/a" without a word of what to conclude;
the tab said amplifying "may rise" while it fell, and two baselines of one task (the demo's 48%, Intervene's 90%)
differed unexplained. Each function here takes a typed result and gives sentences with the number, the
comparison that makes it mean something (chance, the empirical null, the random control) and the verdict; the
dashboard shows them under the result and the CLI may print them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..experiments.demo import DEMO, DemoResult
from ..experiments.dose import DosePoint
from ..experiments.eval_results import EvalResult
from ..knowledge.fidelity import FidelityResult

LOCALIZED_X_NULL = 3.0  # split IoU this many times the empirical null (or, without one, 100x chance): localized
LOCALIZED_X_CHANCE = 100.0


def settings_line(tau: float, p: float, n: int, k: int, seed: int, method: str, shots: int | None = None) -> str:
    """The settings a result was computed with, as one line ('tau 0.1 · p 0.5 · n 12 x 2 · seed 2 · grad_x_act')."""
    shots_text = f" · {shots}-shot" if shots is not None else ""
    return f"tau {tau:g} · p {p:g} · n {n} x {k} · seed {seed} · {method}{shots_text}"


def iou_reading(iou: float, chance: float, null: float | None = None) -> str:
    """What a split IoU says: against the empirical null when measured, else against the hypergeometric chance."""
    if null is not None and null > 0:
        times = iou / null
        verdict = (
            "localized"
            if times >= LOCALIZED_X_NULL
            else "weakly localized"
            if times >= 1.5
            else "not localized (no better than sets from unrelated data)"
        )
        return f"split IoU {iou:.2f} = {times:.1f}x the empirical null ({null:.2f}): {verdict}"
    if chance <= 0:
        return f"split IoU {iou:.2f}: chance is 0 here (empty sets), no verdict"
    times = iou / chance
    verdict = (
        "the splits agree far beyond chance; measure the empirical null (Compare tab) for the stricter test"
        if times >= LOCALIZED_X_CHANCE
        else "little beyond chance: mostly noise"
    )
    return f"split IoU {iou:.2f} = {times:,.0f}x chance ({chance:.4f}): {verdict}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def evaluation_readings(results: Sequence[EvalResult]) -> list[str]:
    """One line per tested dataset: what the intervention did against the random control, and why it may surprise."""
    lines = []
    for r in results:
        base, after, control = r.baseline, r.intervened, r.control
        shots = r.eval_config.shots_for(r.task_kind)
        where = f"{r.dataset} ({r.n} samples, {shots}-shot, seed {r.seed})"
        if base.accuracy is None:
            lines.append(
                f"{where}: accuracy n/a: this task is scored by the gold answer's log-likelihood only; read "
                "the log-likelihood chart."
            )
            continue
        if after is None or after.accuracy is None or r.intervention is None:
            lines.append(f"{where}: unmodified accuracy {_pct(base.accuracy)}.")
            continue
        mode, factor, count = r.intervention["mode"], r.intervention["factor"], r.intervention["n_neurons"]
        what = "zeroing" if mode == "zero" else f"amplifying x{factor:g}"
        spread = max(0.05, 2 * (getattr(control, "accuracy_std", None) or 0.0))
        moved = after.accuracy - base.accuracy
        beyond = (
            control is not None and control.accuracy is not None and abs(after.accuracy - control.accuracy) > spread
        )
        verdict = (
            "a larger change than as many random neurons: these neurons carry it"
            if beyond
            else "no larger change than as many random neurons: not specific to these neurons"
        )
        line = (
            f"{where}: {what} the {count} located neurons takes accuracy {_pct(base.accuracy)} -> "
            f"{_pct(after.accuracy)} (random control {_pct(control.accuracy if control else None)}): {verdict}."
        )
        if base.accuracy == 0:
            line += (
                " The model cannot do this task (0% unmodified): no intervention can lower it; pick a task it can do."
            )
        if mode == "amplify" and moved < 0:
            line += (
                f" Amplifying x{factor:g} lowers accuracy here: a small model's answer path saturates when its "
                "neurons are pushed past their usual range (the paper's gains are on 7B models); the "
                "dose-response below shows where it turns."
            )
        if r.dataset == DEMO.dataset and (shots, r.n, r.seed) != (DEMO.fewshot, DEMO.eval_n, DEMO.seed):
            line += (
                f" The demo's baseline on {DEMO.dataset} used {DEMO.fewshot}-shot prompts, {DEMO.eval_n} problems "
                f"and seed {DEMO.seed}; here {shots}-shot, {r.n}, seed {r.seed}: more shots and other problems "
                "give another baseline (\"Use the demo's settings\" sets the boxes to the demo's)."
            )
        lines.append(line)
    return lines


def demo_reading(res: DemoResult) -> str:
    """The demo's takeaway: localized or not, and what zeroing and amplifying did against random neurons."""
    c = res.conditions
    base, zero, ctrl_zero, amp = (c[k].accuracy for k in ("baseline", "zeroed", "control_zeroed", "amplified"))
    lines = [iou_reading(res.split_iou, res.chance_iou) + "."]
    if base is not None and zero is not None and ctrl_zero is not None:
        drop, ctrl = base - zero, base - ctrl_zero
        lines.append(
            f"Zeroing: {base:.0%} -> {zero:.0%}, random neurons {base:.0%} -> {ctrl_zero:.0%}: "
            + ("the located neurons carry the skill." if drop > ctrl + 0.1 else "no clearer than random.")
        )
    if amp is not None and base is not None and amp < base:
        lines.append(
            f"Amplifying x{res.preset.factor:g} lowers accuracy ({base:.0%} -> {amp:.0%}): a small model's "
            "answer path saturates; see the dose-response on the Intervene tab."
        )
    p = res.preset
    lines.append(
        "Settings: "
        + settings_line(p.tau, p.p, p.n, 2, p.seed, "grad_x_act", p.fewshot)
        + f" · {p.eval_n} held-out problems."
    )
    return "\n".join(f"- {x}" for x in lines)


def knowledge_takeaway(fidelity: FidelityResult) -> str:
    """The knowledge study's one-line answer, with the scoring method it depends on (a FidelityResult)."""
    method = (fidelity.score.get("facts") or {}).get("method", "?")
    names = {g.name: g for g in [*fidelity.pairs, *fidelity.splits]}
    same, other = names.get("same fact, other wording"), names.get("other fact, same wording")
    cap = names.get("capability split")
    if same is None or other is None or same.iou is None or other.iou is None:
        return (
            "**Takeaway:** too few known facts to compare paraphrases (n/a rows); add relations or facts per relation."
        )
    capability = f"; CNL's split agreement on a capability: {cap.iou:.2f}" if cap is not None and cap.iou else ""
    if same.iou < other.iou:
        verdict = (
            "the neurons follow the wording, not the fact: individual knowledge does not localize here "
            "(the paper's fidelity failure)"
        )
    else:
        verdict = (
            "a fact's neurons survive a change of wording here; the paper's failure depends on the score "
            "(with integrated_gradients paraphrases share less: docs/knowledge.md)"
        )
    return (
        f"**Takeaway ({method} scores):** a fact's paraphrases share IoU {same.iou:.2f}, different facts in one "
        f"wording {other.iou:.2f}: {verdict}{capability}."
    )


def dose_reading(points: Sequence[DosePoint]) -> str:
    """What the dose-response says: where accuracy (or the gold log-likelihood) peaks, and whether it turns."""
    use_acc = all(p.accuracy is not None for p in points)
    value = (lambda p: p.accuracy) if use_acc else (lambda p: p.delta_gold_loglik)
    show = (lambda v: f"{v:.0%}") if use_acc else (lambda v: f"{v:+.2f}")
    what = "accuracy" if use_acc else "change of gold log-likelihood"
    curve = ", ".join(f"x{p.factor:g} {show(value(p))}" for p in points)
    best = max(points, key=value)
    if best.factor == 1:
        verdict = (
            "the unmodified model is best: changing these neurons either way costs accuracy (a small "
            "model's answer path saturates when they are pushed up)"
        )
    elif best.factor > 1:
        verdict = f"amplifying helps up to x{best.factor:g}, as the paper reports for larger models"
    else:
        verdict = f"weakening them to x{best.factor:g} helps: these neurons do not carry the skill"
    return f"{what}: {curve}; best at x{best.factor:g}: {verdict}."

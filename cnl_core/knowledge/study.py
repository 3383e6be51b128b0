"""The whole first-half study in one call: known facts, fidelity, causal tracing, reliability, editing.

The paper's title has two halves; CNL's split agreement shows the second. This runs the first on the
loaded model: which facts it knows, whether a fact's paraphrases localize together (against the
capability agreement CNL reaches, and two nulls), whether the traced layer agrees across paraphrases,
whether switching a fact's neurons moves that fact only, and whether the traced layer is where editing
works. Tracing and editing cost the most, so they run on the first few known facts of each relation.
`table` writes the measured rows as the README shows them. A part that fails does not take the parts that
finished with it: `run_study` records the failure and hands the study so far to `on_part` after every part (the
CLI writes the result file there), then raises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..model.loading import LoadedModel
from ..options import SCORE_POSITIONS
from ..progress import Progress
from ..schema import OMIT, in_file, result_kind
from .editing import EDIT_LAYER_COUNT, EditConfig, EditingResult, located_vs_best, run_editing
from .facts import FactSet
from .fidelity import FidelityConfig, FidelityResult, run_fidelity
from .intervals import INTERVALS
from .probe import KnownCheck, check_known
from .reliability import NEURONS, TARGETS, ReliabilityConfig, ReliabilityResult, contrasts, run_reliability
from .tracing import TracingResult, run_tracing


@dataclass(frozen=True)
class StudyConfig:
    """Sizes of the parts (per relation: facts traced and edited) and the seed every part draws with."""

    seed: int = 1  # the reporting seed: the preset was chosen on seed 0
    method: str = "grad_x_act"
    position: str = SCORE_POSITIONS[0]
    tau: float = 0.2
    p: float = 0.5
    known_share: float = 0.5
    fidelity_facts: int | None = None  # per relation; None: every known fact
    capability_draws: int = 20  # independent capability splits (each on samples of its own)
    capability_shots: int | None = None  # None: as many demonstrations as the fact prompts (like for like)
    match_sizes: tuple[int, ...] = FidelityConfig.match_sizes  # the split groups again at these set sizes
    trace_facts: int = 6  # per relation
    trace_draws: int = 2
    reliability_facts: int = 8  # per relation
    edit_facts: int = 2  # per relation
    edit_layers: tuple[int, ...] | None = None  # None: `edit_layer_count` layers spread over the model's depth
    edit_layer_count: int = EDIT_LAYER_COUNT
    edit_steps: int = 20
    edit_kl_weight: float = EditConfig.kl_weight  # ROME's essence-drift penalty (0: without it)


PARTS = ("fidelity", "tracing", "reliability", "editing")


def _located_vs_best(study: KnowledgeStudy) -> dict | object:
    if study.editing is None:
        return OMIT
    return {s: located_vs_best(study.editing, s) for s in ("mlp", "hidden")}


@result_kind(
    "cnl.knowledge.study",
    computed={"located_vs_best": _located_vs_best},  # for readers of the file, never read back
    order=("known", "failed", "fidelity", "tracing", "reliability", "editing", "located_vs_best"),
)
@dataclass
class KnowledgeStudy:
    known: KnownCheck
    fidelity: FidelityResult | None = field(default=None, metadata=in_file(omit="none"))
    tracing: dict[str, TracingResult] | None = field(default=None, metadata=in_file(omit="none"))  # by site
    reliability: ReliabilityResult | None = field(default=None, metadata=in_file(omit="none"))
    editing: EditingResult | None = field(default=None, metadata=in_file(omit="none"))
    # {"part", "error"}: the part that raised; the parts before it are kept
    failed: dict | None = field(default=None, metadata=in_file(omit="none"))


def first_known(facts_set: FactSet, known: list[str], per_relation: int | None) -> list[str]:
    """The first `per_relation` known facts of each relation, in the set's order (None: every known fact)."""
    if per_relation is None:
        return list(known)
    out: list[str] = []
    count: dict[str, int] = {}
    for f in facts_set.facts:
        if f.id in known and count.get(f.relation, 0) < per_relation:
            out.append(f.id)
            count[f.relation] = count.get(f.relation, 0) + 1
    return out


def run_study(
    lm: LoadedModel,
    facts_set: FactSet,
    cfg: StudyConfig | None = None,
    *,
    parts: tuple[str, ...] = PARTS,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    on_part: Callable[[KnowledgeStudy], None] | None = None,
) -> KnowledgeStudy:
    """The parts asked for, each on the first known facts of each relation (see StudyConfig). After each part (and
    after a part that raises, with `failed` set, before the error goes on) the study so far goes to `on_part`."""
    cfg = cfg or StudyConfig()
    study = KnowledgeStudy(check_known(lm, facts_set, cfg.known_share))
    known = study.known.known
    steps = {
        "fidelity": lambda: setattr(
            study,
            "fidelity",
            run_fidelity(
                lm,
                facts_set,
                first_known(facts_set, known, cfg.fidelity_facts),
                FidelityConfig(
                    method=cfg.method,
                    tau=cfg.tau,
                    p=cfg.p,
                    seed=cfg.seed,
                    position=cfg.position,
                    draws=cfg.capability_draws,
                    capability_shots=cfg.capability_shots,
                    match_sizes=cfg.match_sizes,
                ),
                progress=progress,
                cancel=cancel,
            ),
        ),
        "tracing": lambda: setattr(
            study,
            "tracing",
            {
                site: run_tracing(
                    lm,
                    facts_set,
                    first_known(facts_set, known, cfg.trace_facts),
                    site=site,
                    draws=cfg.trace_draws,
                    seed=cfg.seed,
                    progress=progress,
                    cancel=cancel,
                )
                for site in ("hidden", "mlp")
            },
        ),
        "reliability": lambda: setattr(
            study,
            "reliability",
            run_reliability(
                lm,
                facts_set,
                first_known(facts_set, known, cfg.reliability_facts),
                ReliabilityConfig(method=cfg.method, tau=cfg.tau, p=cfg.p, seed=cfg.seed, position=cfg.position),
                progress=progress,
                cancel=cancel,
            ),
        ),
        "editing": lambda: setattr(
            study,
            "editing",
            run_editing(
                lm,
                facts_set,
                first_known(facts_set, known, cfg.edit_facts),
                replace(
                    EditConfig(),
                    layers=cfg.edit_layers,
                    layer_count=cfg.edit_layer_count,
                    steps=cfg.edit_steps,
                    seed=cfg.seed,
                    kl_weight=cfg.edit_kl_weight,
                ),
                progress=progress,
                cancel=cancel,
            ),
        ),
    }
    for part in PARTS:
        if part not in parts:
            continue
        try:
            steps[part]()
        except Exception as exc:
            study.failed = {"part": part, "error": str(exc) or type(exc).__name__}
            if on_part is not None:
                on_part(study)
            raise
        if on_part is not None:
            on_part(study)
    return study


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def table(study: KnowledgeStudy) -> list[str]:
    """The measured rows, as markdown: what the README shows."""
    k = study.known
    lines = [
        f"known facts ({k.shots}-shot, greedy, >= {k.min_share:.0%} of paraphrases): {len(k.known)} of {len(k.share)}"
    ]
    if study.fidelity is not None:
        lines += _fidelity_rows(study.fidelity)
    if study.tracing is not None:
        lines += _tracing_rows(study.tracing)
    if study.reliability is not None:
        lines += _reliability_rows(study.reliability)
    if study.editing is not None:
        lines += _editing_rows(study.editing)
    return lines


def _fidelity_rows(fid: FidelityResult) -> list[str]:
    """Every group with what its interval resamples; then the split groups at matched set sizes, side by side."""
    score = fid.score.get("facts", {})
    lines = [
        "",
        f"fidelity: {score.get('method', '?')} at the {score.get('position', 'answer')}, fact prompts "
        f"{fid.shots}-shot, capability prompts {fid.score.get('capability_shots', 0)}-shot",
        "",
        "| sets compared (KN rule, tau x max) | mean IoU [95% CI] | interval over | crossed: facts and each "
        "relation's templates | chance IoU | pairs | units | mean set size |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in [*fid.pairs, *fid.splits]:
        iou = _na(g) if g.iou is None else f"{g.iou:.3f} {_ci(g.ci)}"
        chance = "" if g.chance_iou is None else f"{g.chance_iou:.5f}"
        lines.append(
            f"| {g.name} | {iou} | {INTERVALS.get(g.interval, g.interval)} | {_ci(g.ci_crossed)} | {chance} "
            f"| {g.pairs} | {g.units} | {g.mean_size:.1f} |"
        )
    caps = sorted({g.size_cap for g in fid.matched if g.size_cap is not None})
    if caps:
        names = [g.name for g in fid.splits]
        lines += [
            "",
            "| like for like: sets capped at k top-scored neurons (mean size) | "
            + " | ".join(f"k = {k}" for k in caps)
            + " |",
            "|---|" + "---|" * len(caps),
        ]
        for name in names:
            cells = []
            for k in caps:
                g = fid.group(name, k)
                cells.append("n/a" if g.iou is None else f"{g.iou:.3f} {_ci(g.ci)} ({g.mean_size:.1f})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _na(g) -> str:
    """Why a group has no IoU, in the cell itself."""
    if g.undefined:
        return f"n/a: its {g.undefined} pairs were two empty sets (nothing selected at this tau)"
    return "n/a: no pair to compare (too few known facts in this group)"


def _tracing_rows(tracing: dict[str, TracingResult]) -> list[str]:
    h, m = tracing["hidden"], tracing["mlp"]
    lines = [
        "",
        f"causal tracing: informative traces (noise left <= half of p(answer)): hidden {len(h.informative)} "
        f"of {len(h.traces)}, MLP {len(m.informative)} of {len(m.traces)}; noise 3 x sigma = {h.noise_std:.4f} "
        "(first decoder layer's input at the subject tokens)",
        "",
        "| causal tracing, informative traces only, [CI over facts] [over facts, then wordings] | hidden state | "
        "MLP window |",
        "|---|---|---|",
    ]

    def cell(stat: dict | None, key: str) -> str:
        if not stat or stat.get(key) is None:
            return "n/a: no two informative traces of this kind to compare"
        two = "" if stat.get("ci_facts_and_prompts") is None else f" {_ci(stat['ci_facts_and_prompts'])}"
        return f"{stat[key]:.3f} {_ci(stat.get('ci'))}{two}"

    for key, a in h.agreement.items():
        if isinstance(a, dict):
            lines.append(f"| peaks agree: {key} | {cell(a, 'share')} | {cell(m.agreement[key], 'share')} |")
    for group in ("same fact", "other fact, same relation"):
        lines.append(
            f"| centre of mass, mean distance (layers): {group} | "
            f"{cell(h.centre_of_mass.get(group), 'mean_distance')} | "
            f"{cell(m.centre_of_mass.get(group), 'mean_distance')} |"
        )
    p = [t.centre_of_mass.get("p_value") for t in (h, m)]
    lines.append(
        "| permutation p (paraphrases of a fact closer than facts of its relation) | "
        + " | ".join("n/a" if v is None else f"{v:.3f}" for v in p)
        + " |"
    )
    for site, t in (("hidden", h), ("MLP", m)):
        c = t.effect_curve
        if c.get("mean"):
            two = c.get("ci_facts_and_prompts") or [None] * len(c["mean"])  # files from before it: none
            curve = ", ".join(
                f"{layer}: {v:.2f} {_ci(ci)}" + ("" if t is None else f" {_ci(t)}")
                for layer, (v, ci, t) in enumerate(zip(c["mean"], c["ci"], two))
            )
            lines.append(
                f"\naverage indirect effect ({site}, restored share, {c['facts']} facts; [CI over facts] "
                f"[over facts, then wordings]): {curve}"
            )
    return lines


def _reliability_rows(rel: ReliabilityResult) -> list[str]:
    lines = [
        "",
        "| reliability: change of log p(answer) [95% CI over facts] | neurons | "
        + " | ".join(TARGETS)
        + " | share erased (held-out) |",
        "|---|---|" + "---|" * len(TARGETS) + "---|",
    ]
    for mode in rel.config.modes:
        for who in NEURONS:
            rows = [r for r in rel.summary if (r["mode"], r["neurons"]) == (mode, who)]
            if not rows or rows[0]["delta_logp"] is None:
                continue
            cells = ["n/a" if r["delta_logp"] is None else f"{r['delta_logp']:+.3f} {_ci(r['ci'])}" for r in rows]
            lines.append(
                f"| {mode} | {who} ({rows[0]['facts']} facts) | " + " | ".join(cells) + f" | {rows[0]['erased']:.2f} |"
            )
    lines += ["", "| paired per fact, change of log p | neurons | difference [95% CI over facts] |", "|---|---|---|"]
    for c in contrasts(rel.per_fact, "zero", rel.config.bootstrap, rel.config.seed):
        value = "n/a" if c["delta_logp"] is None else f"{c['delta_logp']:+.3f} {_ci(c['ci'])}"
        lines.append(f"| zero: {c['contrast']} | {c['neurons']} | {value} |")
    return lines


def _editing_rows(editing: EditingResult) -> list[str]:
    lines = [
        "",
        "| edit layer | p(new) on the edit prompt | p(new) on paraphrases [95% CI] | paraphrases switched | "
        "change of log p, other facts of the relation [95% CI] | other relations [95% CI] | "
        f"essence drift, KL after '{editing.config.essence_prompt}' (KL weight {editing.config.kl_weight:g}) | "
        "traced effect (hidden / MLP) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def signed(r: dict, key: str) -> str:
        return "n/a" if r.get(key) is None else f"{r[key]:+.3f} {_ci(r.get(key + '_ci'))}"

    for r in editing.summary:
        lines.append(
            f"| {r['layer']} | {r['p_new_edit']:.3f} | {r['p_new_paraphrases']:.3f} "
            f"{_ci(r['p_new_paraphrases_ci'])} | {r['generalization']:.2f} | "
            f"{signed(r, 'same relation_delta_logp')} | {signed(r, 'other relations_delta_logp')} | "
            f"{signed(r, 'essence_kl')} | "
            f"{r['traced_hidden']:.2f} / {r['traced_mlp']:.2f} |"
        )
    for site in ("mlp", "hidden"):
        lv = located_vs_best(editing, site)
        corr = "n/a" if lv["mean_correlation"] is None else f"{lv['mean_correlation']:+.2f} {_ci(lv['correlation_ci'])}"
        lines.append(
            f"\ntraced peak ({site}, among the edited layers) is the best edit layer for "
            f"{lv['peak_is_best']:.0%} of the edited facts; correlation of traced effect with paraphrase "
            f"p(new) across layers: {corr}"
        )
    return lines

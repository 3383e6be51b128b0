"""The whole first-half study in one call: known facts, fidelity, causal tracing, reliability, editing.

The paper's title has two halves; CNL's split agreement shows the second. This runs the first on the
loaded model: which facts it knows, whether a fact's paraphrases localize together (against the
capability agreement CNL reaches, and two nulls), whether the traced layer agrees across paraphrases,
whether switching a fact's neurons moves that fact only, and whether the traced layer is where editing
works. Tracing and editing cost the most, so they run on the first few known facts of each relation.
`table` writes the measured rows as the README shows them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from ..model.loading import LoadedModel
from ..progress import Progress
from .editing import EditConfig, EditingResult, located_vs_best, run_editing
from .facts import FactSet
from .fidelity import FidelityConfig, FidelityResult, run_fidelity
from .probe import KnownCheck, check_known
from .reliability import ReliabilityConfig, ReliabilityResult, run_reliability
from .tracing import TracingResult, run_tracing


@dataclass(frozen=True)
class StudyConfig:
    """Sizes of the parts (per relation: facts traced and edited) and the seed every part draws with."""

    seed: int = 1  # the reporting seed: the preset was chosen on seed 0
    method: str = "grad_x_act"
    tau: float = 0.2
    p: float = 0.5
    known_share: float = 0.5
    fidelity_facts: int | None = None  # per relation; None: every known fact
    trace_facts: int = 6  # per relation
    trace_draws: int = 2
    reliability_facts: int = 8  # per relation
    edit_facts: int = 2  # per relation
    edit_layers: tuple[int, ...] | None = tuple(range(0, 30, 3))
    edit_steps: int = 20


PARTS = ("fidelity", "tracing", "reliability", "editing")


@dataclass
class KnowledgeStudy:
    known: KnownCheck
    fidelity: FidelityResult | None = None
    tracing: dict[str, TracingResult] | None = None  # by site
    reliability: ReliabilityResult | None = None
    editing: EditingResult | None = None

    def to_json(self) -> dict:
        out: dict = {"kind": "cnl.knowledge.study", "known": self.known.to_json()}
        if self.fidelity is not None:
            out["fidelity"] = self.fidelity.to_json()
        if self.tracing is not None:
            out["tracing"] = {k: v.to_json() for k, v in self.tracing.items()}
        if self.reliability is not None:
            out["reliability"] = self.reliability.to_json()
        if self.editing is not None:
            out["editing"] = self.editing.to_json()
            out["located_vs_best"] = {s: located_vs_best(self.editing, s) for s in ("mlp", "hidden")}
        return out


def first_known(facts_set: FactSet, known: list[str], per_relation: int | None) -> list[str]:
    """The first `per_relation` known facts of each relation, in the set's order (None: every known fact)."""
    if per_relation is None:
        return list(known)
    out, count = [], {}
    for f in facts_set.facts:
        if f.id in known and count.get(f.relation, 0) < per_relation:
            out.append(f.id)
            count[f.relation] = count.get(f.relation, 0) + 1
    return out


def run_study(lm: LoadedModel, facts_set: FactSet, cfg: StudyConfig | None = None, *, parts: tuple[str, ...] = PARTS,
              progress: Progress | None = None, cancel: threading.Event | None = None) -> KnowledgeStudy:
    """The parts asked for, each on the first known facts of each relation (see StudyConfig)."""
    cfg = cfg or StudyConfig()
    study = KnowledgeStudy(check_known(lm, facts_set, cfg.known_share))
    known = study.known.known
    if "fidelity" in parts:
        chosen = first_known(facts_set, known, cfg.fidelity_facts)
        study.fidelity = run_fidelity(lm, facts_set, chosen, FidelityConfig(method=cfg.method, tau=cfg.tau, p=cfg.p,
                                      seed=cfg.seed), progress=progress, cancel=cancel)
    if "tracing" in parts:
        traced = first_known(facts_set, known, cfg.trace_facts)
        study.tracing = {site: run_tracing(lm, facts_set, traced, site=site, draws=cfg.trace_draws, seed=cfg.seed,
                                           progress=progress, cancel=cancel) for site in ("hidden", "mlp")}
    if "reliability" in parts:
        study.reliability = run_reliability(lm, facts_set, first_known(facts_set, known, cfg.reliability_facts),
                                            ReliabilityConfig(method=cfg.method, tau=cfg.tau, p=cfg.p, seed=cfg.seed),
                                            progress=progress, cancel=cancel)
    if "editing" in parts:
        study.editing = run_editing(lm, facts_set, first_known(facts_set, known, cfg.edit_facts),
                                    replace(EditConfig(), layers=cfg.edit_layers, steps=cfg.edit_steps, seed=cfg.seed),
                                    progress=progress, cancel=cancel)
    return study


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def table(study: KnowledgeStudy) -> list[str]:
    """The measured rows, as markdown: what the README shows."""
    k = study.known
    lines = [f"known facts ({k.shots}-shot, greedy, >= {k.min_share:.0%} of paraphrases): {len(k.known)} of "
             f"{len(k.share)}"]
    if study.fidelity is not None:
        lines += ["", "| sets compared (KN rule, tau x max) | mean IoU [95% CI] | chance IoU | pairs | units | "
                  "mean set size |", "|---|---|---|---|---|---|"]
        for g in [*study.fidelity.pairs, *study.fidelity.splits]:
            iou = _na(g) if g.iou is None else f"{g.iou:.3f} {_ci(g.ci)}"
            chance = "" if g.chance_iou is None else f"{g.chance_iou:.5f}"
            lines.append(f"| {g.name} | {iou} | {chance} | {g.pairs} | {g.units} | {g.mean_size:.1f} |")
    if study.tracing is not None:
        lines += _tracing_rows(study.tracing)
    if study.reliability is not None:
        lines += _reliability_rows(study.reliability)
    if study.editing is not None:
        lines += _editing_rows(study.editing)
    return lines


def _na(g) -> str:
    """Why a group has no IoU, in the cell itself."""
    if g.undefined:
        return f"n/a: its {g.undefined} pairs were two empty sets (nothing selected at this tau)"
    return "n/a: no pair to compare (too few known facts in this group)"


def _tracing_rows(tracing: dict[str, TracingResult]) -> list[str]:
    lines = ["", "| causal tracing: paraphrase pairs whose peak layers agree | hidden state | MLP window |",
             "|---|---|---|"]
    for key in tracing["hidden"].agreement:
        if key == "prompts":
            continue
        cells = []
        for site in ("hidden", "mlp"):
            a = tracing[site].agreement[key]
            cells.append("n/a: no two known paraphrases of one fact to compare" if a["share"] is None else
                         f"{a['share']:.3f} {_ci(a['ci'])}")
        lines.append(f"| {key} | {cells[0]} | {cells[1]} |")
    return lines


def _reliability_rows(rel: ReliabilityResult) -> list[str]:
    lines = ["", "| reliability: change of log p(answer) | neurons | held-out paraphrases [95% CI] | other facts "
             "[95% CI] | share erased (held-out) |", "|---|---|---|---|---|"]
    for mode in rel.config.modes:
        for who in ("located", "random"):
            h, o = rel.row(mode, who, "held-out paraphrases"), rel.row(mode, who, "other facts")
            if h["delta_logp"] is None:
                continue
            lines.append(f"| {mode} | {who} | {h['delta_logp']:+.3f} {_ci(h['ci'])} | {o['delta_logp']:+.3f} "
                         f"{_ci(o['ci'])} | {h['erased']:.2f} |")
    return lines


def _editing_rows(editing: EditingResult) -> list[str]:
    lines = ["", "| edit layer | p(new) on the edit prompt | p(new) on paraphrases [95% CI] | paraphrases switched | "
             "other facts' change of log p | traced effect (hidden / MLP) |", "|---|---|---|---|---|---|"]
    for r in editing.summary:
        lines.append(f"| {r['layer']} | {r['p_new_edit']:.3f} | {r['p_new_paraphrases']:.3f} "
                     f"{_ci(r['p_new_paraphrases_ci'])} | {r['generalization']:.2f} | "
                     f"{r['other_facts_delta_logp']:+.3f} | {r['traced_hidden']:.2f} / {r['traced_mlp']:.2f} |")
    for site in ("mlp", "hidden"):
        lv = located_vs_best(editing, site)
        corr = "n/a" if lv["mean_correlation"] is None else f"{lv['mean_correlation']:+.2f} {_ci(lv['correlation_ci'])}"
        lines.append(f"\ntraced peak ({site}) is the best edit layer for {lv['peak_is_best']:.0%} of the edited "
                     f"facts; correlation of traced effect with paraphrase p(new) across layers: {corr}")
    return lines

"""The knowledge study's request: one part (or the whole study) over a set of facts (see requests.py for why
requests exist).

The parts are the CLI's `knowledge` actions: `facts` (which facts the model knows), `fidelity`, `trace`,
`reliability`, `edit`, and `study` (the chosen parts one after the other, each on the first known facts of each
relation). One request type holds them all: they share their inputs (the facts, how many known facts per
relation, a batch size) and differ only in their part's config, which the request checks is the part's own.
`key()` is built from every field; `run(lm, job)` asks which facts are known (or takes the check already made)
and makes the part's one library call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from .. import fields as F
from ..errors import ParameterError
from ..knowledge.editing import EditingResult, run_editing
from ..knowledge.facts import FactSet
from ..knowledge.fidelity import FidelityConfig, FidelityResult, run_fidelity
from ..knowledge.probe import KnownCheck, check_known
from ..knowledge.reliability import ReliabilityConfig, ReliabilityResult, run_reliability
from ..knowledge.rome import EditConfig
from ..knowledge.study import PARTS, KnowledgeStudy, StudyConfig, first_known, run_study
from ..knowledge.tracing import SITES, TracingResult, run_tracing
from ..model.loading import LoadedModel
from ..serialize import to_data
from .requests import NO_JOB, Job, canonical

KNOWLEDGE_PARTS = ("facts", "fidelity", "trace", "reliability", "edit", "study")  # the CLI's actions


@dataclass(frozen=True)
class TraceConfig:
    """Causal tracing's settings: the site restored, noise draws per prompt, the seed."""

    site: str = SITES[0]
    draws: int = 2
    seed: int = StudyConfig.seed

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise ParameterError(f"The traced site must be one of {', '.join(SITES)}.")
        F.REPEATS.typed(self.draws)
        F.SEED.typed(self.seed)


PartConfig = FidelityConfig | TraceConfig | ReliabilityConfig | EditConfig | StudyConfig
_CONFIGS: dict[str, type | None] = {
    "facts": None,
    "fidelity": FidelityConfig,
    "trace": TraceConfig,
    "reliability": ReliabilityConfig,
    "edit": EditConfig,
    "study": StudyConfig,
}
_RESULTS: dict[str, type] = {
    "facts": KnownCheck,
    "fidelity": FidelityResult,
    "trace": TracingResult,
    "reliability": ReliabilityResult,
    "edit": EditingResult,
    "study": KnowledgeStudy,
}
_STUDY = StudyConfig()
# the known facts per relation a part runs on when the request names no number (fidelity: every known fact)
PART_SIZES: dict[str, int | None] = {
    "fidelity": _STUDY.fidelity_facts,
    "trace": _STUDY.trace_facts,
    "reliability": _STUDY.reliability_facts,
    "edit": _STUDY.edit_facts,
}


def facts_identity(facts: FactSet) -> str:
    """A fact set in a key: a hash of its name, demonstrations and every relation's templates and pairs."""
    rels = [[r.name, list(r.templates), [list(p) for p in r.pairs]] for r in facts.relations]
    text = json.dumps([facts.name, facts.shots, rels])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class KnowledgeRequest:
    """One part of the knowledge study (`part`, one of KNOWLEDGE_PARTS) on the first `facts_per_relation` known
    facts of each relation (None: the part's own size, PART_SIZES; the study: its config's sizes), with the part's
    config (None: its defaults). `study_parts`: the parts a `study` runs."""

    kind: ClassVar[str] = "knowledge"
    facts: FactSet
    part: str = "study"
    config: PartConfig | None = None
    facts_per_relation: int | None = None
    study_parts: tuple[str, ...] = PARTS
    batch_size: int | None = None  # prompts scored together (None: fitted to memory); no number depends on it

    def __post_init__(self) -> None:
        if self.part not in KNOWLEDGE_PARTS:
            raise ParameterError(f"The knowledge part must be one of {', '.join(KNOWLEDGE_PARTS)}, not {self.part!r}.")
        wanted = _CONFIGS[self.part]
        if self.config is not None and (wanted is None or not isinstance(self.config, wanted)):
            raise ParameterError(f"The knowledge part {self.part!r} takes no {type(self.config).__name__}.")
        if self.facts_per_relation is not None:
            F.FACTS_PER_RELATION.typed(self.facts_per_relation)
        if self.batch_size is not None:
            F.BATCH.typed(self.batch_size)
        object.__setattr__(self, "study_parts", tuple(p for p in PARTS if p in self.study_parts))
        if not self.study_parts:
            raise ParameterError("Pick at least one part of the study.")

    @property
    def result_type(self) -> type:
        return _RESULTS[self.part]

    def configured(self) -> PartConfig | None:
        """The part's config: the request's, or the part's defaults; a study's sizes set to `facts_per_relation`
        where it names one (every part on the same first known facts)."""
        wanted = _CONFIGS[self.part]
        cfg = self.config if self.config is not None else (wanted() if wanted is not None else None)
        if isinstance(cfg, StudyConfig) and self.facts_per_relation is not None:
            k = self.facts_per_relation
            cfg = replace(cfg, fidelity_facts=k, trace_facts=k, reliability_facts=k, edit_facts=k)
        return cfg

    def key(self) -> dict[str, Any]:
        cfg = self.configured()
        return canonical(
            {
                "facts": facts_identity(self.facts),
                "part": self.part,
                "config": None if cfg is None else to_data(cfg),
                "facts_per_relation": self.facts_per_relation,
                "study_parts": list(self.study_parts) if self.part == "study" else None,
            }
        )

    def chosen(self, known: KnownCheck) -> list[str]:
        """The facts a part (not the study) runs on: the first known ones of each relation."""
        size = self.facts_per_relation if self.facts_per_relation is not None else PART_SIZES.get(self.part)
        return first_known(self.facts, known.known, size)

    def run(
        self,
        lm: LoadedModel,
        job: Job = NO_JOB,
        known: KnownCheck | None = None,
        on_part: Callable[[KnowledgeStudy], None] | None = None,
    ) -> Any:
        """`known`: the known check where the caller made it already (the CLI prints it first); `on_part`: the
        study so far, after each of its parts (the CLI writes it)."""
        cfg, progress, cancel = self.configured(), job.report, job.cancel
        if isinstance(cfg, StudyConfig):
            return run_study(
                lm, self.facts, cfg, parts=self.study_parts, progress=progress, cancel=cancel, on_part=on_part
            )
        known = known if known is not None else check_known(lm, self.facts)
        chosen = self.chosen(known)
        if isinstance(cfg, FidelityConfig):
            return run_fidelity(
                lm, self.facts, chosen, cfg, batch_size=self.batch_size, progress=progress, cancel=cancel
            )
        if isinstance(cfg, TraceConfig):
            return run_tracing(
                lm, self.facts, chosen, site=cfg.site, draws=cfg.draws, seed=cfg.seed, progress=progress, cancel=cancel
            )
        if isinstance(cfg, ReliabilityConfig):
            return run_reliability(
                lm, self.facts, chosen, cfg, batch_size=self.batch_size, progress=progress, cancel=cancel
            )
        if isinstance(cfg, EditConfig):
            return run_editing(lm, self.facts, chosen, cfg, progress=progress, cancel=cancel)
        return known  # facts: which the model knows

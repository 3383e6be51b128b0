"""Typed results of the evaluate, matrix and fine-tune experiments: each declared once, its file form derived from
its fields (schema.py; kinds "cnl.evaluate", "cnl.matrix", "cnl.finetune").

Why declared: the file form is what users keep and re-load, and the result cache stores the same form, so a
matrix has one form (it had two: its own `to_json`, and its fields for the cache). Earlier evaluation files
still load: one without few-shot ids reads as none, and one whose control was written as {"draws": []} reads as
no control (`if_missing`, `earlier` below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..evaluate.accuracy import EvalConfig, InterventionRecord
from ..evaluate.stats import ControlSummary, Summary
from ..model.hooks import check_positions
from ..options import POSITIONS
from ..schema import in_file, result_kind
from ..serialize import to_data
from .json_io import read_result

KIND = "cnl.evaluate"


def _no_draws_is_none(control: Any) -> Any:
    """Earlier versions wrote {"draws": []} for an evaluation without controls."""
    return None if isinstance(control, dict) and not control.get("draws") else control


@dataclass(frozen=True)
class Example:
    """One evaluation sample's output before (and after) the intervention."""

    id: str
    prompt: str
    target: str
    before: str
    after: str | None = field(default=None, metadata=in_file(omit="none"))


@result_kind(
    KIND,
    order=(
        *("model", "dataset", "task_kind", "n", "seed", "sample_ids", "fewshot_ids", "eval_config"),
        *("baseline", "intervened", "control", "examples", "created", "versions", "intervention", "located_on"),
    ),
)
@dataclass
class EvalResult:
    """Baseline, intervened and random-control summaries on one dataset's evaluation samples."""

    model: str
    dataset: str
    task_kind: str
    n: int
    seed: int
    sample_ids: list[str]
    fewshot_ids: list[str] = field(metadata=in_file(if_missing=list))  # files before few-shot ids were kept: none
    eval_config: EvalConfig
    baseline: Summary
    intervention: InterventionRecord | None = field(default=None, metadata=in_file(omit="none"))
    intervened: Summary | None = field(default=None, metadata=in_file(omit="none"))
    control: ControlSummary | None = field(default=None, metadata=in_file(omit="none", earlier=_no_draws_is_none))
    examples: list[Example] = field(default_factory=list)
    located_on: str | None = field(default=None, metadata=in_file(omit="none"))
    created: str | None = None
    versions: dict = field(default_factory=dict)

    def conditions(self) -> dict[str, Summary]:
        """The conditions present, in display order."""
        return {
            k: v
            for k, v in (("baseline", self.baseline), ("intervened", self.intervened), ("control", self.control))
            if v is not None
        }

    @staticmethod
    def read(path: str | Path) -> EvalResult:
        return read_result(path, EvalResult, "evaluation file")


@result_kind(
    "cnl.matrix",
    order=(
        *("model", "mode", "factor", "positions", "n", "seed", "sources", "targets", "baseline", "cells"),
        *("eval_config", "created", "versions"),
    ),
)
@dataclass
class MatrixResult:
    """The cross-dataset matrix: rows = whose neurons are changed, columns = dataset tested."""

    model: str
    mode: str
    factor: float
    n: int
    seed: int
    sources: list[str]
    targets: list[str]
    baseline: dict[str, Summary]
    cells: dict[str, dict[str, Summary]]
    eval_config: EvalConfig
    positions: str = POSITIONS[0]  # token positions every row's intervention changed (files before it: all)
    created: str | None = None
    versions: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_positions(self.positions)

    def cell(self, source: str, target: str, metric: str) -> Any:
        """A cell's value: 'delta_accuracy', 'delta_gold_loglik', or a plain summary field (a number, a [low, high]
        interval for the `_ci` ones, or None)."""
        return to_data(self.cells[source][target]).get(metric)


@dataclass
class FinetuneArm(Summary):
    """The model after fine-tuning one neuron set: its summary and training losses."""

    losses: list[float] = field(default_factory=list)


@result_kind("cnl.finetune")
@dataclass
class FinetuneResult:
    model: str
    dataset: str
    n: int
    seed: int
    sample_ids: list[str]
    train_ids: list[str]
    steps: int
    lr: float
    n_neurons: int
    baseline: Summary
    located: FinetuneArm
    random: FinetuneArm
    created: str | None = None
    versions: dict = field(default_factory=dict)

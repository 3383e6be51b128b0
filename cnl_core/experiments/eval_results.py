"""Typed results of the evaluate, matrix and fine-tune experiments, with their JSON forms.

`to_json` writes the documented schemas (kinds "cnl.evaluate", "cnl.matrix", "cnl.finetune");
`EvalResult.from_json` reads an evaluation back through the one codec (serialize.py), which refuses a
file that is not one with a ResultFileError naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..evaluate.accuracy import EvalConfig
from ..evaluate.stats import ControlSummary, Summary
from ..model.hooks import check_positions
from ..options import POSITIONS
from ..serialize import object_of, read_fields
from .json_io import read_result

KIND = "cnl.evaluate"


@dataclass(frozen=True)
class Example:
    """One evaluation sample's output before (and after) the intervention."""

    id: str
    prompt: str
    target: str
    before: str
    after: str | None = None

    def to_json(self) -> dict:
        out = {"id": self.id, "prompt": self.prompt, "target": self.target, "before": self.before}
        return out if self.after is None else {**out, "after": self.after}


@dataclass
class EvalResult:
    """Baseline, intervened and random-control summaries on one dataset's evaluation samples."""

    model: str
    dataset: str
    task_kind: str
    n: int
    seed: int
    sample_ids: list[str]
    fewshot_ids: list[str]
    eval_config: EvalConfig
    baseline: Summary
    intervention: dict | None = None  # Intervention.describe()
    intervened: Summary | None = None
    control: ControlSummary | None = None
    examples: list[Example] = field(default_factory=list)
    located_on: str | None = None
    created: str | None = None
    versions: dict = field(default_factory=dict)

    def conditions(self) -> dict[str, Summary]:
        """The conditions present, in display order."""
        return {
            k: v
            for k, v in (("baseline", self.baseline), ("intervened", self.intervened), ("control", self.control))
            if v is not None
        }

    def to_json(self) -> dict:
        out = {
            "kind": KIND,
            "model": self.model,
            "dataset": self.dataset,
            "task_kind": self.task_kind,
            "n": self.n,
            "seed": self.seed,
            "sample_ids": self.sample_ids,
            "fewshot_ids": self.fewshot_ids,
            "eval_config": self.eval_config.to_json(),
            **{name: s.to_json() for name, s in self.conditions().items()},
            "examples": [e.to_json() for e in self.examples],
            "created": self.created,
            "versions": self.versions,
        }
        if self.intervention is not None:
            out["intervention"] = self.intervention
        if self.located_on is not None:
            out["located_on"] = self.located_on
        return out

    @staticmethod
    def from_json(data: dict, where: str = "") -> EvalResult:
        """An evaluation in its file form, every field checked; ResultFileError names the first that is wrong."""
        data = object_of(data, where, KIND)
        control = data.get("control")
        if isinstance(control, dict) and not control.get("draws"):  # earlier versions wrote {"draws": []} for none
            control = None
        return read_fields(EvalResult, {"fewshot_ids": [], **data, "control": control}, where)  # may be left out

    @staticmethod
    def read(path: str | Path) -> EvalResult:
        return read_result(path, EvalResult, "evaluation file")


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

    def __post_init__(self):
        check_positions(self.positions)

    def cell(self, source: str, target: str, metric: str) -> Any:
        """A cell's value: 'delta_accuracy', 'delta_gold_loglik', or a plain summary field (a number, a [low, high]
        interval for the `_ci` ones, or None)."""
        return self.cells[source][target].to_json().get(metric)

    def to_json(self) -> dict:
        return {
            "kind": "cnl.matrix",
            "model": self.model,
            "mode": self.mode,
            "factor": self.factor,
            "positions": self.positions,
            "n": self.n,
            "seed": self.seed,
            "sources": self.sources,
            "targets": self.targets,
            "baseline": {t: s.to_json() for t, s in self.baseline.items()},
            "cells": {s: {t: c.to_json() for t, c in row.items()} for s, row in self.cells.items()},
            "eval_config": self.eval_config.to_json(),
            "created": self.created,
            "versions": self.versions,
        }


@dataclass
class FinetuneArm(Summary):
    """The model after fine-tuning one neuron set: its summary and training losses."""

    losses: list[float] = field(default_factory=list)

    def to_json(self) -> dict:
        return {**super().to_json(), "losses": self.losses}


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

    def to_json(self) -> dict:
        return {
            "kind": "cnl.finetune",
            "model": self.model,
            "dataset": self.dataset,
            "n": self.n,
            "seed": self.seed,
            "sample_ids": self.sample_ids,
            "train_ids": self.train_ids,
            "steps": self.steps,
            "lr": self.lr,
            "n_neurons": self.n_neurons,
            "baseline": self.baseline.to_json(),
            "located": self.located.to_json(),
            "random": self.random.to_json(),
            "created": self.created,
            "versions": self.versions,
        }

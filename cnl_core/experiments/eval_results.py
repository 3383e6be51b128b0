"""Typed results of the evaluate, matrix and fine-tune experiments, with their JSON forms.

`to_json` writes the documented schemas (kinds "cnl.evaluate", "cnl.matrix", "cnl.finetune");
`from_json` reads them back and refuses a file that is not one, naming the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NeuronSetError
from ..evaluate.accuracy import EvalConfig
from ..evaluate.stats import ControlSummary, Summary
from .json_io import read_json


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
        return {k: v for k, v in (("baseline", self.baseline), ("intervened", self.intervened),
                                  ("control", self.control)) if v is not None}

    def to_json(self) -> dict:
        out = {"kind": "cnl.evaluate", "model": self.model, "dataset": self.dataset, "task_kind": self.task_kind,
               "n": self.n, "seed": self.seed, "sample_ids": self.sample_ids, "fewshot_ids": self.fewshot_ids,
               "eval_config": self.eval_config.to_json(),
               **{name: s.to_json() for name, s in self.conditions().items()},
               "examples": [e.to_json() for e in self.examples], "created": self.created, "versions": self.versions}
        if self.intervention is not None:
            out["intervention"] = self.intervention
        if self.located_on is not None:
            out["located_on"] = self.located_on
        return out

    @staticmethod
    def from_json(data: dict) -> "EvalResult":
        try:
            if data.get("kind") != "cnl.evaluate":
                raise ValueError("its kind is not cnl.evaluate")
            return EvalResult(
                model=_text(data["model"]), dataset=_text(data["dataset"]), task_kind=_text(data["task_kind"]),
                n=_whole(data["n"]), seed=_whole(data["seed"]), sample_ids=_texts(data["sample_ids"]),
                fewshot_ids=_texts(data.get("fewshot_ids", [])), eval_config=EvalConfig.from_json(data["eval_config"]),
                baseline=Summary.from_json(data["baseline"]), intervention=_object(data.get("intervention")),
                intervened=Summary.from_json(data["intervened"]) if data.get("intervened") else None,
                # files of earlier versions wrote {"draws": []} when no control was run
                control=ControlSummary.from_json(data["control"]) if (data.get("control") or {}).get("draws") else None,
                examples=[Example(**{k: _text(v) if v is not None else None for k, v in e.items()})
                          for e in data.get("examples", [])],
                located_on=data.get("located_on") if isinstance(data.get("located_on"), str) else None,
                created=data.get("created") if isinstance(data.get("created"), str) else None,
                versions=_object(data.get("versions")) or {})
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
            raise NeuronSetError(f"Not a valid evaluation result ({type(exc).__name__}: {str(exc)[:200]}).") from exc

    @staticmethod
    def read(path: str | Path) -> "EvalResult":
        return EvalResult.from_json(read_json(path, "evaluation file"))


def _text(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


def _texts(value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of texts")
    return value


def _whole(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r:.40}")
    return value


def _object(value) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise ValueError("expected an object")
    return value


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
    created: str | None = None
    versions: dict = field(default_factory=dict)

    def cell(self, source: str, target: str, metric: str) -> float | None:
        """A cell's value: 'delta_accuracy', 'delta_gold_loglik', or a plain summary field."""
        return self.cells[source][target].to_json().get(metric)

    def to_json(self) -> dict:
        return {"kind": "cnl.matrix", "model": self.model, "mode": self.mode, "factor": self.factor, "n": self.n,
                "seed": self.seed, "sources": self.sources, "targets": self.targets,
                "baseline": {t: s.to_json() for t, s in self.baseline.items()},
                "cells": {s: {t: c.to_json() for t, c in row.items()} for s, row in self.cells.items()},
                "eval_config": self.eval_config.to_json(), "created": self.created, "versions": self.versions}


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
        return {"kind": "cnl.finetune", "model": self.model, "dataset": self.dataset, "n": self.n, "seed": self.seed,
                "sample_ids": self.sample_ids, "train_ids": self.train_ids, "steps": self.steps, "lr": self.lr,
                "n_neurons": self.n_neurons, "baseline": self.baseline.to_json(), "located": self.located.to_json(),
                "random": self.random.to_json(), "created": self.created, "versions": self.versions}

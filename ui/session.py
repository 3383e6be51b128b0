"""One visitor's state: their model choice, located sets, evaluations and uploads (never shared).

What a session holds is freed when it ends (`Session.end`: the tab closed, or Gradio dropped the state):
its uploaded datasets leave the process's registry, its folder (uploads, exports, task files: VisitorSpace)
leaves the disk.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field, replace

import torch

from cnl_core import (
    MODELS,
    EvalResult,
    LoadedModel,
    LocateResult,
    LocateRun,
    MatrixResult,
    ModelSpec,
    NeuronGrid,
    NeuronSet,
    VisitorSpace,
    forget_datasets,
)
from cnl_core.errors import ParameterError


@dataclass
class Located:
    """A located set: its result and, unless it was re-loaded from a file, the run with its scores."""

    result: LocateResult
    run: LocateRun | None = None

    def prominence(self) -> torch.Tensor | None:
        """Share of samples selecting each neuron under the result's thresholds; None for a re-loaded set."""
        return None if self.run is None else self.run.prominence(self.result.params)


@dataclass(frozen=True)
class PendingUpload:
    """An uploaded table between its preview and "Add dataset": where it is and what it holds, not its rows."""

    path: str
    filename: str
    columns: list[str]
    rows: int


@dataclass
class Session:
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    spec: ModelSpec = field(default_factory=ModelSpec)
    located: dict[str, Located] = field(default_factory=dict)
    history: list[list[EvalResult]] = field(default_factory=list)  # every Intervene run, oldest first
    matrix: MatrixResult | None = None
    uploads: list[str] = field(default_factory=list)
    pending_upload: PendingUpload | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def __getstate__(self) -> dict:
        """On ZeroGPU a handler's inputs and outputs are pickled: the session travels without its cancel event."""
        return {k: v for k, v in self.__dict__.items() if k != "cancel"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, cancel=threading.Event())

    @property
    def space(self) -> VisitorSpace:
        """This session's folder: uploads, exports, task files (freed by `end`)."""
        return VisitorSpace(self.id)

    def task_folder(self):
        """Where this session's checked lm-eval task files go."""
        return self.space.root / "tasks"

    def end(self) -> None:
        """The visitor left: a running job stops at its next model step, and what the session held is freed."""
        self.cancel.set()
        forget_datasets(self.id)
        self.uploads.clear()
        self.pending_upload = None
        self.located.clear()
        self.history.clear()
        self.matrix = None
        self.space.free()

    @property
    def evals(self) -> list[EvalResult]:
        """Every evaluation of the session, run after run (what Export writes)."""
        return [r for run in self.history for r in run]

    def model(self) -> LoadedModel:
        return MODELS.get(self.spec)

    def located_set(self, label: str | None) -> LocateResult:
        """The located set picked by label, or the sentence that says where sets come from."""
        if label not in self.located:
            raise ParameterError("Locate neurons first (Locate tab), or reload a result (Export tab).")
        return self.located[label].result

    def model_for(self, grid: NeuronGrid) -> LoadedModel:
        """The session's model (loaded if needed), refused when it does not have the neurons' grid."""
        lm = self.model()
        grid.check_on(lm.grid)
        return lm

    def labels(self) -> list[str]:
        return list(self.located)

    def sets_on(self, grid: NeuronGrid) -> dict[str, NeuronSet]:
        """Every located set on this grid, each of its splits, and the set its negative scores select, by name."""
        sets = {}
        for label, entry in self.located.items():
            if entry.result.grid != grid:
                continue
            sets[f"{label}/all"] = entry.result.neurons
            for i, split in enumerate(entry.result.splits):
                sets[f"{label}/split{i}"] = split.neurons
            if entry.run is not None and entry.result.params.sign == "positive":
                sets[f"{label}/negative"] = entry.run.result(replace(entry.result.params, sign="negative")).neurons
        return sets


def new_session() -> Session:
    return Session()


def session(state: Session | None) -> Session:
    """The visitor's session (a fresh one if the page has none yet)."""
    return state if isinstance(state, Session) else Session()

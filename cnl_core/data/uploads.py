"""A user's own CSV or JSONL file as a dataset.

The file is only parsed (tables.py reads it row by row, within a bound on bytes, rows and columns),
never executed or used as a path for anything else; every problem (encoding, size, columns, empty
answers, labels) is reported as a DatasetError in plain words. Only the two columns a dataset uses
are kept. On a shared dashboard a file named by path must lie in a folder the operator allowed
(shared_mode); visitors' own uploads reach this module through the dashboard, by their content.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import shared_mode
from ..errors import DatasetError
from .samples import CHOICE, GENERATE_NUMBER, KINDS, LOGLIK, DatasetSpec, Sample, get_dataset, register_dataset
from .tables import open_records, read_table, scan_table  # noqa: F401  # read_table: this module's reader before

_NUMERIC = re.compile(r"^\s*-?[\d,]*\.?\d+\s*$")


def columns_of(records: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records[:1000]:
        seen.update(dict.fromkeys(r))
    return list(seen)


def dataset_from_records(
    records: Iterable[dict],
    name: str,
    prompt_column: str,
    answer_column: str,
    labels: Sequence[str] | None = None,
    kind: str = "auto",
    prompt_template: str = "{prompt}",
    owner: str | None = None,
) -> tuple[DatasetSpec, dict]:
    """Build (and register, for `owner` if given: see samples.forget_datasets) a dataset; returns it with a
    report of dropped rows. `records` is read once, keeping only the prompt and answer columns."""
    if "{prompt}" not in prompt_template:
        raise DatasetError("The prompt template must contain {prompt}.")
    labels = [label.strip() for label in labels or [] if label.strip()]
    if kind != "auto" and kind not in KINDS:
        raise DatasetError(f"Task kind must be auto or one of {', '.join(KINDS)}.")
    pairs: list[tuple[str, str]] = []
    columns: dict[str, None] = {}
    rows = 0
    for rows, r in enumerate(records, 1):  # noqa: B007 - rows is the count, read after the loop
        if len(columns) < 1000:
            columns.update(dict.fromkeys(r))
        pairs.append(((r.get(prompt_column) or "").strip(), (r.get(answer_column) or "").strip()))
    for col in (prompt_column, answer_column):
        if col not in columns:
            raise DatasetError(f"Column '{col}' is not in the file. Columns: {', '.join(columns) or '(none)'}.")
    kind = kind if kind != "auto" else _guess_kind([a for _, a in pairs if a], labels)
    if kind == CHOICE and len(labels) < 2:
        raise DatasetError("A classification task needs at least two labels.")
    report = {"rows_in_file": rows, "missing": 0, "duplicates": 0, "unknown_label": 0}
    seen, samples = set(), []
    choices = tuple(f" {label}" for label in labels)
    for i, (prompt, answer) in enumerate(pairs):
        if not prompt or not answer:
            report["missing"] += 1
            continue
        if (prompt, answer) in seen:
            report["duplicates"] += 1
            continue
        seen.add((prompt, answer))
        text = prompt_template.replace("{prompt}", prompt)
        if kind == CHOICE:
            if answer not in labels:
                report["unknown_label"] += 1
                continue
            samples.append(Sample(f"{name}/{i:06d}", text, f" {answer}", f" {answer}", choices))
        else:
            # a number's thousands separators go; free text keeps its commas
            target = answer.replace(",", "").strip() if kind == GENERATE_NUMBER else answer
            samples.append(Sample(f"{name}/{i:06d}", text, f" {answer}", target))
    if not samples:
        raise DatasetError(
            f"No usable rows: {report['missing']} missing a prompt or answer, "
            f"{report['unknown_label']} with an answer outside the labels."
        )
    report["rows_used"] = len(samples)
    spec = DatasetSpec(
        name,
        f"Uploaded file ({len(samples)} rows)",
        "upload",
        kind,
        prompt_template + " {answer}",
        lambda: samples,
        expected_rows=len(samples),
    )
    return register_dataset(spec, owner=owner), report


def dataset_from_file(
    path: str | Path, prompt_column: str | None = None, answer_column: str | None = None, **kwargs
) -> tuple[DatasetSpec, dict]:
    """Read a CSV/JSONL file and register it under a name from its file name and content.

    Without column names, the file's columns called prompt/question/text and answer/label/target are used.
    A shared dashboard opens only files under the folders its operator allowed (shared_mode).
    """
    path = shared_mode.current().check_path(path, "dataset file")
    if not path.is_file():
        raise DatasetError(f"No dataset file at {path}.")
    filename = kwargs.pop("filename", None) or path.name
    if prompt_column is None or answer_column is None:
        cols = scan_table(path, filename).columns
        prompt_column = prompt_column or _guess(cols, ("prompt", "question", "text", "input"), "prompt")
        answer_column = answer_column or _guess(cols, ("answer", "label", "target", "output"), "answer")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(filename).stem)[:40].strip("-") or "file"
    name = kwargs.pop("name", None) or f"{stem}-{_file_hash(path)}"
    return dataset_from_records(open_records(path, filename), name, prompt_column, answer_column, **kwargs)


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return h.hexdigest()[:8]


def _guess_kind(answers: list[str], labels: list[str]) -> str:
    if labels:
        return CHOICE
    return GENERATE_NUMBER if answers and all(_NUMERIC.match(a) for a in answers) else LOGLIK


FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".json", ".ndjson")


@dataclass(frozen=True)
class FileColumns:
    """How a user's CSV/JSONL file becomes a dataset: which columns, which labels, which task kind."""

    prompt_column: str | None = None
    answer_column: str | None = None
    labels: tuple[str, ...] = ()
    kind: str = "auto"


def looks_like_file(name: str) -> bool:
    return Path(name).suffix.lower() in FILE_SUFFIXES or os.sep in name


def resolve_dataset(name: str, columns: FileColumns | None = None) -> DatasetSpec:
    """A registered dataset by name, or a user's CSV/JSONL file registered under a name from its content.

    Without column names, a file's columns called prompt/question/text and answer/label/target are used.
    """
    if not looks_like_file(name):
        return get_dataset(name)
    columns = columns or FileColumns()
    spec, _ = dataset_from_file(
        name, columns.prompt_column, columns.answer_column, labels=list(columns.labels), kind=columns.kind
    )
    return spec


def _guess(cols: list[str], names: tuple[str, ...], what: str) -> str:
    found = next((c for c in cols if c.strip().lower() in names), None)
    if found is None:
        raise DatasetError(f"Name the {what} column (--{what}-column); the file's columns are: {', '.join(cols)}.")
    return found

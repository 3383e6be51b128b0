"""A user's own CSV or JSONL file as a dataset.

The file is only parsed, never executed or used as a path for anything else; every problem
(encoding, size, columns, empty answers, labels) is reported as a DatasetError in plain words.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import DatasetError
from .samples import (
    CHOICE,
    GENERATE_NUMBER,
    KINDS,
    LOGLIK,
    MAX_UPLOAD_BYTES,
    DatasetSpec,
    Sample,
    get_dataset,
    register_dataset,
)

_NUMERIC = re.compile(r"^\s*-?[\d,]*\.?\d+\s*$")


def read_table(data: bytes, filename: str) -> list[dict]:
    """Parse CSV or JSONL bytes into records (dicts of strings)."""
    if not data.strip():
        raise DatasetError("The file is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise DatasetError(f"The file is {len(data) / 2**20:.1f} MiB; the limit is {MAX_UPLOAD_BYTES // 2**20} MiB.")
    if b"\x00" in data[:8192]:
        raise DatasetError("The file looks binary; upload a CSV or JSONL text file.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"The file is not UTF-8 text (bad byte at position {exc.start}); save it as UTF-8.") from exc
    suffix = Path(filename).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"Line {n} is not valid JSON: {exc.msg}.") from exc
            if not isinstance(rec, dict):
                raise DatasetError(f"Line {n} must be a JSON object with named fields.")
            nested = next((k for k, v in rec.items() if isinstance(v, (dict, list))), None)
            if nested is not None:
                raise DatasetError(f"Line {n}: field '{str(nested)[:40]}' holds a nested object or list; every field "
                                   "must be text or a number (flatten the file first).")
            records.append({str(k): "" if v is None else str(v) for k, v in rec.items()})
        if not records:
            raise DatasetError("The file has no rows.")
        return records
    if suffix in (".csv", ".tsv", ".txt"):
        try:
            reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
            records = [{str(k): "" if v is None else str(v) for k, v in r.items() if k is not None} for r in reader]
        except csv.Error as exc:
            raise DatasetError(f"The CSV file could not be parsed: {exc}.") from exc
        if not reader.fieldnames:
            raise DatasetError("The CSV file has no header row.")
        if not records:
            raise DatasetError(f"The file has a header ({', '.join(reader.fieldnames)[:120]}) but no rows.")
        return records
    raise DatasetError(f"Unsupported file type '{suffix or filename}'; upload .csv or .jsonl.")


def columns_of(records: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records[:1000]:
        seen.update(dict.fromkeys(r))
    return list(seen)


def dataset_from_records(
    records: list[dict],
    name: str,
    prompt_column: str,
    answer_column: str,
    labels: Sequence[str] | None = None,
    kind: str = "auto",
    prompt_template: str = "{prompt}",
) -> tuple[DatasetSpec, dict]:
    """Build (and register) a dataset; returns it with a report of dropped rows."""
    cols = columns_of(records)
    for col in (prompt_column, answer_column):
        if col not in cols:
            raise DatasetError(f"Column '{col}' is not in the file. Columns: {', '.join(cols) or '(none)'}.")
    if "{prompt}" not in prompt_template:
        raise DatasetError("The prompt template must contain {prompt}.")
    labels = [l.strip() for l in labels or [] if l.strip()]
    kind = kind if kind != "auto" else _guess_kind(records, answer_column, labels)
    if kind not in KINDS:
        raise DatasetError(f"Task kind must be auto or one of {', '.join(KINDS)}.")
    if kind == CHOICE and len(labels) < 2:
        raise DatasetError("A classification task needs at least two labels.")
    report = {"rows_in_file": len(records), "missing": 0, "duplicates": 0, "unknown_label": 0}
    seen, samples = set(), []
    choices = tuple(f" {l}" for l in labels)
    for i, r in enumerate(records):
        prompt, answer = (r.get(prompt_column) or "").strip(), (r.get(answer_column) or "").strip()
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
        raise DatasetError(f"No usable rows: {report['missing']} missing a prompt or answer, "
                           f"{report['unknown_label']} with an answer outside the labels.")
    report["rows_used"] = len(samples)
    spec = DatasetSpec(name, f"Uploaded file ({len(samples)} rows)", "upload", kind, prompt_template + " {answer}",
                       lambda: samples, expected_rows=len(samples))
    return register_dataset(spec), report


def dataset_from_file(path: str | Path, prompt_column: str | None = None, answer_column: str | None = None,
                      **kwargs) -> tuple[DatasetSpec, dict]:
    """Read a CSV/JSONL file and register it under a name from its file name and content.

    Without column names, the file's columns called prompt/question/text and answer/label/target are used.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"No dataset file at {path}.")
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise DatasetError(f"The file is over the {MAX_UPLOAD_BYTES // 2**20} MiB limit.")
    data = path.read_bytes()
    records = read_table(data, path.name)
    cols = columns_of(records)
    prompt_column = prompt_column or _guess(cols, ("prompt", "question", "text", "input"), "prompt")
    answer_column = answer_column or _guess(cols, ("answer", "label", "target", "output"), "answer")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem)[:40].strip("-") or "file"
    name = kwargs.pop("name", None) or f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}"
    return dataset_from_records(records, name, prompt_column, answer_column, **kwargs)


def _guess_kind(records: list[dict], answer_column: str, labels: list[str]) -> str:
    if labels:
        return CHOICE
    answers = [r.get(answer_column, "") for r in records if r.get(answer_column)]
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
    spec, _ = dataset_from_file(name, columns.prompt_column, columns.answer_column, labels=list(columns.labels),
                                kind=columns.kind)
    return spec


def _guess(cols: list[str], names: tuple[str, ...], what: str) -> str:
    found = next((c for c in cols if c.strip().lower() in names), None)
    if found is None:
        raise DatasetError(f"Name the {what} column (--{what}-column); the file's columns are: {', '.join(cols)}.")
    return found

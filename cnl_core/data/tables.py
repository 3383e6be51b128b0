"""Reading a user's CSV or JSONL file row by row, with a bound on bytes, rows and columns.

Why row by row: a dashboard visitor's file once became a list of Python dicts at once (a 46 MB CSV
took 3.3 GB); read here, a file is walked once for its columns and a preview, and once more for the
two columns a dataset needs. Why the care with text: UTF-16 and UTF-32 files (with their byte-order
mark) are decoded, not called binary; CSV lines may end in CR alone; a JSON string may hold U+2028 or
U+0085, which are not line breaks in JSONL; a header that names a column twice is refused instead of
silently keeping the last. Every problem is a DatasetError naming the row, column or byte.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .. import fields as F
from ..errors import DatasetError

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PREVIEW_ROWS = 5
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class TableScan:
    """What a first look at a file finds: its columns (in order), how many rows, and the first few."""

    columns: list[str]
    rows: int
    preview: list[dict]


def _encoding(head: bytes) -> str:
    """The text encoding a file's first bytes show: a byte-order mark's, else UTF-8 (binary refused)."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    if b"\x00" in head:
        pairs = head[: len(head) // 2 * 2]
        if pairs and (pairs[1::2].count(0) > 0.9 * len(pairs) / 2 or pairs[0::2].count(0) > 0.9 * len(pairs) / 2):
            raise DatasetError(
                "The file looks like UTF-16 text without a byte-order mark; save it as UTF-8 "
                "(or UTF-16 with a byte-order mark)."
            )
        raise DatasetError("The file looks binary; upload a CSV or JSONL text file.")
    return "utf-8"


def _kind(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "tsv" if suffix == ".tsv" else "csv"
    raise DatasetError(f"Unsupported file type '{(suffix or filename)[:40]}'; upload .csv or .jsonl.")


def iter_records(stream: BinaryIO, filename: str, size: int) -> Iterator[dict]:
    """Records (dicts of strings) of a CSV/TSV/JSONL stream of `size` bytes, one at a time.

    Refuses an empty, oversized, binary or undecodable file, a header naming a column twice, more than
    fields.UPLOAD_ROWS rows or fields.UPLOAD_COLUMNS columns, and a file whose header has no rows."""
    kind = _kind(filename)
    if size > F.UPLOAD_BYTES:
        raise DatasetError(f"The file is {size / 2**20:.1f} MiB; the limit is {F.UPLOAD_BYTES // 2**20} MiB.")
    head = stream.read(8192)
    if not head.strip():
        raise DatasetError("The file is empty.")
    encoding = _encoding(head)
    text = io.TextIOWrapper(io.BufferedReader(_Rewound(head, stream)), encoding=encoding, newline="")
    rows = _jsonl(text) if kind == "jsonl" else _csv(text, "\t" if kind == "tsv" else ",")
    count = 0
    try:
        for count, record in enumerate(rows, 1):
            if count > F.UPLOAD_ROWS:
                raise DatasetError(
                    f"The file has more than {F.UPLOAD_ROWS:,} rows; the limit is {F.UPLOAD_ROWS:,} "
                    "(upload a sample of it)."
                )
            yield record
    except UnicodeDecodeError as exc:
        what = "UTF-8" if encoding.startswith("utf-8") else encoding.upper()
        raise DatasetError(f"The file is not {what} text (a bad byte after row {count}); save it as UTF-8.") from exc
    if count == 0:
        raise DatasetError("The file has no rows.")


class _Rewound(io.RawIOBase):
    """The stream with its first bytes (already read to sniff the encoding) put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _columns_check(names: list[str], where: str) -> None:
    if len(names) > F.UPLOAD_COLUMNS:
        raise DatasetError(f"{where} has {len(names):,} columns; the limit is {F.UPLOAD_COLUMNS}.")


def _csv(text: io.TextIOWrapper, delimiter: str) -> Iterator[dict]:
    reader = csv.reader(text, delimiter=delimiter)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise DatasetError("The CSV file has no header row.")
        _columns_check(header, "The header")
        named = [(i, h) for i, h in enumerate(header) if h.strip()]  # trailing empty columns of a spreadsheet go
        seen: dict[str, int] = {}
        for i, h in named:
            if h in seen:
                raise DatasetError(
                    f"The header names the column '{h[:60]}' twice (columns {seen[h] + 1} and {i + 1}); "
                    "give every column its own name."
                )
            seen[h] = i
        found = False
        for row in reader:
            if not row:
                continue
            found = True
            yield {h: row[i] if i < len(row) else "" for i, h in named}
        if not found:
            raise DatasetError(f"The file has a header ({', '.join(h for _, h in named)[:120]}) but no rows.")
    except csv.Error as exc:
        raise DatasetError(f"The CSV file could not be parsed at line {reader.line_num}: {exc}.") from exc


def _no_duplicates(pairs: list[tuple]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"the field '{str(twice)[:60]}' is given twice")
    return dict(pairs)


def _jsonl(text: io.TextIOWrapper) -> Iterator[dict]:
    """One JSON object per line; lines end at LF, CR or CRLF only (U+2028 and U+0085 may sit inside strings)."""
    for n, line in enumerate(text, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"Line {n} is not valid JSON: {exc.msg}.") from exc
        except ValueError as exc:
            raise DatasetError(f"Line {n}: {exc}.") from exc
        if not isinstance(rec, dict):
            raise DatasetError(f"Line {n} must be a JSON object with named fields.")
        _columns_check(list(rec), f"Line {n}")
        nested = next((k for k, v in rec.items() if isinstance(v, (dict, list))), None)
        if nested is not None:
            raise DatasetError(
                f"Line {n}: field '{str(nested)[:40]}' holds a nested object or list; every field "
                "must be text or a number (flatten the file first)."
            )
        yield {str(k): "" if v is None else str(v) for k, v in rec.items()}


def read_table(data: bytes, filename: str) -> list[dict]:
    """Every record of CSV/JSONL bytes (small files and tests; files on disk are read with `open_records`)."""
    return list(iter_records(io.BytesIO(data), filename, len(data)))


def open_records(path: str | Path, filename: str | None = None) -> Iterator[dict]:
    """Records of a file on disk, read as they are used (the file stays open until the iterator ends)."""
    path = Path(path)
    with path.open("rb") as fh:
        yield from iter_records(fh, filename or path.name, path.stat().st_size)


def scan_table(path: str | Path, filename: str | None = None) -> TableScan:
    """Columns, row count and the first rows of a file, in one pass that keeps only those."""
    columns: dict[str, None] = {}
    preview: list[dict] = []
    rows = 0
    for rows, record in enumerate(open_records(path, filename), 1):  # noqa: B007 - the count, read after the loop
        if len(columns) < F.UPLOAD_COLUMNS:
            columns.update(dict.fromkeys(record))
        if len(preview) < PREVIEW_ROWS:
            preview.append(record)
    return TableScan(list(columns)[: F.UPLOAD_COLUMNS], rows, preview)

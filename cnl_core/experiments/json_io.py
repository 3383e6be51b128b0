"""Reading and writing result files: JSON only (nothing is ever unpickled), bounded in size and depth.

Every result file is read here and typed by the one codec (serialize.py), from the form its kind declares
(schema.py): whatever is wrong with a file (too large, not JSON, nested too deeply, a field missing or of the
wrong type, a neuron outside its grid) is one error, ResultFileError, whose sentence names the file and the field.
Why here and not in serialize.py: files are the experiments' business (paths, sizes, atomic writes); the codec
below them knows only data and types.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ResultFileError
from ..output_files import atomic_write
from ..serialize import MAX_DEPTH, dumps, from_data, to_data

T = TypeVar("T")
MAX_RESULT_BYTES = 50 * 2**20


def read_json(path: str | Path, what: str = "result file", allow_list: bool = False) -> dict | list:
    """A JSON object (or, if allowed, a list) from a file, or ResultFileError naming what is wrong with it."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_RESULT_BYTES:
            raise ResultFileError(f"The {what} {path.name} is over the {MAX_RESULT_BYTES // 2**20} MiB limit.")
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError as exc:
        raise ResultFileError(f"The {what} {path.name} is nested too deeply to be a result file.") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: bad JSON, or a number too long
        raise ResultFileError(f"Could not read the {what} {path.name}: {exc}.") from exc
    if not isinstance(data, dict) and not (allow_list and isinstance(data, list)):
        raise ResultFileError(f"The {what} {path.name} must hold a JSON object.")
    if _depth(data) > MAX_DEPTH:
        raise ResultFileError(f"The {what} {path.name} is nested too deeply to be a result file.")
    return data


def read_result(path: str | Path, kind: type[T] | str, what: str = "result file") -> Any:
    """The typed result a file holds (a LocateResult, an EvalResult...; `kind` its type or registered text), or
    ResultFileError naming file and field."""
    return parse_result(read_json(path, what), kind, Path(path).name)


def parse_result(data: Any, kind: type[T] | str, source: str) -> Any:
    """The typed result in data read from `source` (a file's name), or ResultFileError naming it and the field."""
    try:
        return from_data(kind, data, "")
    except ResultFileError as exc:
        raise ResultFileError(f"{source} was not loaded: {exc}") from exc


def write_json(path: str | Path, data: Any) -> Path:
    """Write a result (typed, or plain data) atomically, folders created as needed: a failed write keeps the earlier
    file whole."""
    return atomic_write(path, dumps(to_data(data)))


def nesting_depth(value: Any) -> int:
    """How deeply JSON data nests (counted up to MAX_DEPTH + 1): a result file never nests deeper than MAX_DEPTH."""
    return _depth(value)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level

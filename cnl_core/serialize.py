"""Typed results to plain JSON fields and back, for any result dataclass: one codec instead of one per type.

`to_fields(result)` gives JSON-ready data (dicts, lists, text, numbers, true/false, null); `from_fields(Type,
data)` rebuilds the typed result from its type hints, checking every value on the way: a wrong type, a missing
field, a value that is not plain data or one the type itself refuses (its `__post_init__`) is a ResultFileError
naming where it sits (`baseline.accuracy_ci[0]: expected a number, got text`), never a TypeError from deep
inside. Nothing is ever evaluated or imported: the data picks no type, the type hints do (so a file cannot ask
for an object the code did not name).

Types whose file form is not their fields (a locate result's neurons as [layer, index] pairs on its grid, a
summary's differences flattened into it) keep a `to_json` / `from_json(data, where)` pair; their `from_json`
adapts the form and reads it with these same functions (`read_fields`, `refused`), so there is one reader and
one error for every result file: the result cache's entries (experiments/result_cache.py) and the files users
write and re-load (experiments/json_io.py).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar, Union

from .errors import CNLError, ResultFileError

T = TypeVar("T")
MAX_DEPTH = 32  # results nest a few levels; a deeper file is not one of ours (json_io reads files with it too)


def to_fields(value: Any, _depth: int = 0) -> Any:
    """JSON-ready plain data for a result: dataclasses field by field, own `to_json` where a type has one."""
    if _depth > MAX_DEPTH:
        raise ResultFileError("A result nests too deeply to be written.")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value  # written as strict JSON by json_io.dumps: a number that is not finite becomes null
    kind: type = type(value)
    if hasattr(value, "to_json") and not dataclasses.is_dataclass(value) or _own_form(kind):
        return to_fields(value.to_json(), _depth + 1)  # its own form, as plain data (tuples as lists)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_fields(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, dict):
        return {str(k): to_fields(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_fields(v, _depth + 1) for v in value]
    raise ResultFileError(f"A {type(value).__name__} cannot be written as a result field.")


def from_fields(kind: type[T], data: Any, where: str | None = None) -> T:
    """The `kind` result rebuilt from `to_fields` data (or from its own file form); ResultFileError naming the
    field where data and type differ. Paths start at `where` (default: the type's name; "": at the fields)."""
    return _read(kind, data, kind.__name__ if where is None else where, 0)


def read_fields(kind: type[T], data: Any, where: str = "", **given: Any) -> T:
    """A dataclass read field by field from an object, even where the type has its own `from_json` (which calls
    this once it has adapted its file form); `given` fields are taken as they are."""
    return _dataclass(kind, data, where, 0, given)


def at(where: str, key: str | int) -> str:
    """The path of a field (`key` text) or a list item (`key` a number) below `where`."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


@contextmanager
def refused(where: str) -> Iterator[None]:
    """A value the code itself refuses inside the block (a type's checks, a neuron outside its grid) becomes a
    ResultFileError naming where it sits."""
    try:
        yield
    except ResultFileError:
        raise
    except (TypeError, ValueError, OverflowError, CNLError) as exc:
        raise ResultFileError(f"{_at(where)}{str(exc)[:300]}") from exc


def object_of(data: Any, where: str, kind: str | None = None) -> dict:
    """data as an object (a JSON dict); with `kind`, one whose "kind" says it is that result."""
    if not isinstance(data, dict):
        raise _fail(where, "an object", data)
    if kind is not None and data.get("kind") != kind:
        raise ResultFileError(f"{_at(where)}not a {kind} result (its kind is {str(data.get('kind'))[:40]!r}).")
    return data


@cache
def _own_form(kind: type) -> bool:
    """A dataclass that writes itself (its to_json/from_json pair is its file form)."""
    return (
        dataclasses.is_dataclass(kind)
        and callable(getattr(kind, "from_json", None))
        and callable(getattr(kind, "to_json", None))
    )


@cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _at(where: str) -> str:
    """A sentence's start naming where (nothing at a result's top: the file's name comes before it)."""
    return f"{where}: " if where else ""


def _fail(where: str, expected: str, data: Any) -> ResultFileError:
    got = (
        "null"
        if data is None
        else {
            bool: "true/false",
            str: "text",
            int: "a number",
            float: "a number",
            list: "a list",
            dict: "an object",
        }.get(type(data), type(data).__name__)
    )
    return ResultFileError(f"{_at(where)}expected {expected}, got {got}.")


def _read(kind: Any, data: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ResultFileError(f"{_at(where)}nested too deeply.")
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return _plain(data, where, depth)
    if origin in (Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _read(option, data, where, depth)
            except ResultFileError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else _fail(where, " or ".join(_name(o) for o in options), data)
    if kind is type(None):
        if data is not None:
            raise _fail(where, "null", data)
        return None
    if kind is bool:
        if not isinstance(data, bool):
            raise _fail(where, "true/false", data)
        return data
    if kind is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise _fail(where, "a whole number", data)
        return data
    if kind is float:
        if data is None:  # strict JSON's null for a number that was not finite (a measure not taken)
            return math.nan
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise _fail(where, "a number", data)
        try:
            return float(data)
        except OverflowError:  # JSON's integers have no bound; Python's floats do
            raise ResultFileError(f"{_at(where)}{str(data)[:20]}... is too large for a number.") from None
    if kind is str:
        if not isinstance(data, str):
            raise _fail(where, "text", data)
        return data
    if origin in (list, tuple) or kind in (list, tuple):
        if not isinstance(data, list):
            raise _fail(where, "a list", data)
        item = args[0] if args else Any
        out = [_read(item, v, at(where, i), depth + 1) for i, v in enumerate(data)]
        return tuple(out) if (origin or kind) is tuple else out
    if origin is dict or kind is dict:
        if not isinstance(data, dict):
            raise _fail(where, "an object", data)
        value = args[1] if len(args) == 2 else Any
        return {str(k): _read(value, v, at(where, str(k)), depth + 1) for k, v in data.items()}
    if _own_form(kind):
        with refused(where):  # its own reader names the fields it reads; anything else it refuses, here
            return kind.from_json(data, where)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _dataclass(kind, data, where, depth)
    raise ResultFileError(f"{_at(where)}a {_name(kind)} cannot be read from a result file.")


def _dataclass(kind: type, data: Any, where: str, depth: int, given: dict | None = None) -> Any:
    if not isinstance(data, dict):
        raise _fail(where, f"an object ({kind.__name__})", data)
    hints, given = _hints(kind), given or {}
    values = dict(given)
    for f in dataclasses.fields(kind):
        if not f.init or f.name in given:
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ResultFileError(f"{at(where, f.name)}: missing.")
            continue
        values[f.name] = _read(hints[f.name], data[f.name], at(where, f.name), depth + 1)
    with refused(where):  # a type's own checks (__post_init__) refuse a value
        return kind(**values)


def _plain(data: Any, where: str, depth: int) -> Any:
    """Untyped fields (`dict`, `Any`): plain JSON data only."""
    if depth > MAX_DEPTH:
        raise ResultFileError(f"{_at(where)}nested too deeply.")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [_plain(v, at(where, i), depth + 1) for i, v in enumerate(data)]
    if isinstance(data, dict):
        return {str(k): _plain(v, at(where, str(k)), depth + 1) for k, v in data.items()}
    raise _fail(where, "plain data", data)


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))

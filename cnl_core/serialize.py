"""Typed results to plain JSON fields and back, for any result dataclass: one codec instead of one per type.

`to_fields(result)` gives JSON-ready data (dicts, lists, text, numbers, true/false, null); `from_fields(Type,
data)` rebuilds the typed result from its type hints, checking every value on the way: a wrong type, a missing
field or a value that is not plain data is a ResultFileError naming where it sits (`conditions.baseline.accuracy:
expected a number, got text`), never a TypeError from deep inside. Types that know their own file form
(`to_json` / `from_json`: NeuronSet, EvalConfig, ...) keep it. Nothing is ever evaluated or imported: the data
picks no type, the type hints do (so a file cannot ask for an object the code did not name).

Used by the result cache (experiments/result_cache.py), which stores finished results and serves them again.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from functools import cache
from typing import Any, TypeVar, Union

from .errors import CNLError, ResultFileError

T = TypeVar("T")
MAX_DEPTH = 64  # results nest a few levels; a deeper file is not one of ours


def to_fields(value: Any, _depth: int = 0) -> Any:
    """JSON-ready plain data for a result: dataclasses field by field, own `to_json` where a type has one."""
    if _depth > MAX_DEPTH:
        raise ResultFileError("A result nests too deeply to be written.")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value  # written as strict JSON by json_io.dumps: a number that is not finite becomes null
    if hasattr(value, "to_json") and not dataclasses.is_dataclass(value) or _own_form(type(value)):
        return to_fields(value.to_json(), _depth + 1)  # its own form, as plain data (tuples as lists)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_fields(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, dict):
        return {str(k): to_fields(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_fields(v, _depth + 1) for v in value]
    raise ResultFileError(f"A {type(value).__name__} cannot be written as a result field.")


def from_fields(kind: type[T], data: Any, where: str = "") -> T:
    """The `kind` result rebuilt from `to_fields` data; ResultFileError naming the field where data and type differ."""
    return _read(kind, data, where or kind.__name__, 0)


@cache
def _own_form(kind: type) -> bool:
    """A dataclass that writes itself (its to_json/from_json pair is its file form)."""
    return dataclasses.is_dataclass(kind) and callable(getattr(kind, "from_json", None)) and \
        callable(getattr(kind, "to_json", None))


@cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _fail(where: str, expected: str, data: Any) -> ResultFileError:
    got = "null" if data is None else {bool: "true/false", str: "text", int: "a number", float: "a number",
                                       list: "a list", dict: "an object"}.get(type(data), type(data).__name__)
    return ResultFileError(f"{where}: expected {expected}, got {got}.")


def _read(kind: Any, data: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ResultFileError(f"{where}: nested too deeply.")
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
        return float(data)
    if kind is str:
        if not isinstance(data, str):
            raise _fail(where, "text", data)
        return data
    if origin in (list, tuple) or kind in (list, tuple):
        if not isinstance(data, list):
            raise _fail(where, "a list", data)
        item = args[0] if args else Any
        out = [_read(item, v, f"{where}[{i}]", depth + 1) for i, v in enumerate(data)]
        return tuple(out) if (origin or kind) is tuple else out
    if origin is dict or kind is dict:
        if not isinstance(data, dict):
            raise _fail(where, "an object", data)
        value = args[1] if len(args) == 2 else Any
        return {str(k): _read(value, v, f"{where}.{k}", depth + 1) for k, v in data.items()}
    if isinstance(kind, type) and (_own_form(kind) or not dataclasses.is_dataclass(kind)) and \
            callable(getattr(kind, "from_json", None)):
        try:
            return kind.from_json(data)
        except ResultFileError:
            raise
        except Exception as exc:  # noqa: BLE001  # a type's own reader says what is wrong in its own words
            raise ResultFileError(f"{where}: {str(exc)[:300]}") from exc
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _dataclass(kind, data, where, depth)
    raise ResultFileError(f"{where}: a {_name(kind)} cannot be read from a result file.")


def _dataclass(kind: type, data: Any, where: str, depth: int) -> Any:
    if not isinstance(data, dict):
        raise _fail(where, f"an object ({kind.__name__})", data)
    hints = _hints(kind)
    values = {}
    for f in dataclasses.fields(kind):
        if not f.init:
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ResultFileError(f"{where}.{f.name}: missing.")
            continue
        values[f.name] = _read(hints[f.name], data[f.name], f"{where}.{f.name}", depth + 1)
    try:
        return kind(**values)
    except (TypeError, ValueError, CNLError) as exc:  # a type's own checks (__post_init__) refuse a value
        raise ResultFileError(f"{where}: {str(exc)[:300]}") from exc


def _plain(data: Any, where: str, depth: int) -> Any:
    """Untyped fields (`dict`, `Any`): plain JSON data only."""
    if depth > MAX_DEPTH:
        raise ResultFileError(f"{where}: nested too deeply.")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [_plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(data)]
    if isinstance(data, dict):
        return {str(k): _plain(v, f"{where}.{k}", depth + 1) for k, v in data.items()}
    raise _fail(where, "plain data", data)


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))

"""Typed results to plain JSON data and back, for every result dataclass: one codec, declared by the types.

`to_data(result)` gives a result's file form (dicts, lists, text, numbers, true/false, null) from its fields and
the declarations beside them (schema.py: a result's kind, a field's key, when it is left out, what is flattened
or computed); `from_data(kind, data)` rebuilds the typed result from that form, the kind named by its registered
text ("cnl.evaluate") or its type, checking every value on the way: a wrong type, a missing field, a value that
is not plain data or one the type itself refuses (its `__post_init__`) is a ResultFileError naming where it sits
(`baseline.accuracy_ci[0]: expected a number, got text`), never a TypeError from deep inside. Nothing is ever
evaluated or imported: the data picks no type, the type hints do (so a file cannot ask for an object the code
did not name).

Why one codec: the result cache's entries (experiments/result_cache.py) and the files users write and re-load
(experiments/json_io.py) are the same form, so a result has one file form, and what is written is what is read.
`to_fields` / `from_fields` are the earlier names of `to_data` / `from_data` (for a type).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar, Union

from .errors import CNLError, ResultFileError
from .schema import OMIT, FileField, kind_type, options, schema_of

T = TypeVar("T")
MAX_DEPTH = 32  # results nest a few levels; a deeper file is not one of ours (json_io reads files with it too)


def to_data(value: Any, _depth: int = 0) -> Any:
    """A result's file form as JSON-ready plain data: dataclasses by their declared form (schema.py)."""
    if _depth > MAX_DEPTH:
        raise ResultFileError("A result nests too deeply to be written.")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value  # written as strict JSON by `dump`: a number that is not finite becomes null
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _write_dataclass(value, _depth)
    if isinstance(value, Mapping):
        return {str(k): to_data(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_data(v, _depth + 1) for v in value]
    raise ResultFileError(f"A {type(value).__name__} cannot be written as a result field.")


def dump(value: Any) -> str:
    """A result (or plain data) as the text of its file: strict JSON, indented by 2."""
    return dumps(to_data(value))


def dumps(data: Any) -> str:
    """Strict JSON: a number that is not finite (a measure not taken, such as a harness task's gold
    log-likelihood) is written as null, which every JSON parser reads; Python's default "NaN" is not JSON."""
    return json.dumps(_finite(data), indent=2, allow_nan=False)


def from_data(kind: str | type[T], data: Any, where: str = "") -> Any:
    """The result of `kind` (its registered text, e.g. "cnl.evaluate", or its type) rebuilt from its file form;
    ResultFileError naming the field where data and type differ. Paths start at `where` (default: at the fields,
    as a sentence after a file's name)."""
    if isinstance(kind, str):
        found = kind_type(kind)
        if found is None:
            raise ResultFileError(f"{_at(where)}{kind[:40]!r} is not a kind of result this version reads.")
        kind = found
    return _read(kind, data, where, 0)


to_fields = to_data  # the earlier names


def from_fields(kind: type[T], data: Any, where: str | None = None) -> T:
    """`from_data` for a type, its paths starting at the type's name unless `where` says otherwise."""
    return typing.cast(T, from_data(kind, data, kind.__name__ if where is None else where))


def read_fields(kind: type[T], data: Any, where: str = "", **given: Any) -> T:
    """A dataclass read from an object field by field; `given` fields are taken as they are."""
    return typing.cast(T, _dataclass(kind, data, where, 0, given))


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


# ---- writing ----


def _write_dataclass(value: Any, depth: int) -> dict:
    cls = type(value)
    schema = schema_of(cls)
    head = {"kind": schema.kind} if schema.kind else {}
    if schema.form is not None:
        return {**head, **_write_dataclass(schema.form.to_file(value), depth)}
    parts: dict[str, dict] = {}  # by name in `order`: a field's name, a group's or a computed key
    flat: list[str] = []
    for f in dataclasses.fields(cls):
        opt = options(f)
        item = getattr(value, f.name)
        if not f.init or _omitted(opt, item, value):
            continue
        data = to_data(opt.codec.write(item) if opt.codec else item, depth + 1)
        if opt.drop:
            data = _dropped(data, opt.drop, item)
        if opt.flatten and not isinstance(data, dict):  # a flattened part that is None writes no keys
            continue
        part = dict(data) if opt.flatten else {opt.key or f.name: data}
        if opt.group:
            parts.setdefault(opt.group, {}).setdefault(opt.group, {}).update(part)
        else:
            parts[f.name] = part
            if opt.flatten:
                flat.append(f.name)
    for key, get in schema.computed.items():
        got = getattr(value, get) if isinstance(get, str) else get(value)
        got = got() if callable(got) else got
        if got is not OMIT:
            parts[key] = {key: to_data(got, depth + 1)}
    names = [n for n in schema.order if n in parts]
    names += [n for n in parts if n not in names and n not in flat] + [n for n in flat if n not in names]
    out = head
    for name in names:
        out.update(parts[name])
    return out


def _omitted(opt: FileField, item: Any, owner: Any) -> bool:
    if opt.omit is None:
        return False
    if opt.omit == "none":
        return item is None
    if opt.omit == "empty":
        return not item
    return bool(opt.omit(owner))


def _dropped(data: Any, keys: tuple[str, ...], item: Any) -> Any:
    """data without `keys`: those of the object a field writes, or of each of its items (a dict or list of them)."""
    if isinstance(item, Mapping) and isinstance(data, dict):
        return {k: _dropped(v, keys, None) for k, v in data.items()}
    if isinstance(data, list):
        return [_dropped(v, keys, None) for v in data]
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in keys}
    return data


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ---- reading ----


@cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _at(where: str) -> str:
    """A sentence's start naming where (nothing at a result's top: the file's name comes before it)."""
    return f"{where}: " if where else ""


def _fail(where: str, expected: str, data: Any) -> ResultFileError:
    names = {bool: "true/false", str: "text", int: "a number", float: "a number", list: "a list", dict: "an object"}
    got = "null" if data is None else names.get(type(data), type(data).__name__)
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
        options_ = [a for a in args if a is not type(None)]
        errors = []
        for option in options_:
            try:
                return _read(option, data, where, depth)
            except ResultFileError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else _fail(where, " or ".join(_name(o) for o in options_), data)
    if kind is type(None):
        if data is not None:
            raise _fail(where, "null", data)
        return None
    if kind in (bool, int, float, str):
        return _scalar(kind, data, where)
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
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _dataclass(kind, data, where, depth)
    raise ResultFileError(f"{_at(where)}a {_name(kind)} cannot be read from a result file.")


def _scalar(kind: type, data: Any, where: str) -> Any:
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
    if not isinstance(data, str):
        raise _fail(where, "text", data)
    return data


def _dataclass(kind: type, data: Any, where: str, depth: int, given: dict | None = None) -> Any:
    schema = schema_of(kind)
    if not isinstance(data, dict):
        raise _fail(where, f"an object ({kind.__name__})", data)
    if schema.kind and (schema.kind_required or "kind" in data):  # a file made by hand may leave it out
        object_of(data, where, schema.kind)
    if schema.form is not None:
        file = _dataclass(schema.form.file_type, data, where, depth)
        with refused(where):
            return schema.form.from_file(file, where)
    hints, given = _hints(kind), given or {}
    claimed = _file_keys(kind)
    values = dict(given)
    for f in dataclasses.fields(kind):
        if not f.init or f.name in given:
            continue
        opt = options(f)
        source, here = data, where
        if opt.group:
            source, here = object_of(data.get(opt.group, {}), at(where, opt.group)), at(where, opt.group)
        if opt.flatten:
            inner = _inner_dataclass(hints[f.name])
            if inner is not None:
                part = {k: source[k] for k in _file_keys(inner) if k in source}
            else:  # a flattened dict: every key no other field takes
                part = {k: v for k, v in source.items() if k not in claimed}
            if part or inner is None:
                values[f.name] = _read(hints[f.name], part, here, depth + 1)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                values[f.name] = None if _optional(hints[f.name]) else _missing(here, f.name)
            continue
        key = opt.key or f.name
        if key not in source:
            if opt.if_missing is not None:
                values[f.name] = opt.if_missing()
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                _missing(here, key)
            continue
        raw = opt.earlier(source[key]) if opt.earlier else source[key]
        if opt.codec is not None:
            with refused(at(here, key)):
                values[f.name] = opt.codec.read(raw, at(here, key))
        else:
            values[f.name] = _read(hints[f.name], raw, at(here, key), depth + 1)
    with refused(where):  # a type's own checks (__post_init__) refuse a value
        return kind(**values)


def _missing(where: str, key: str) -> Any:
    raise ResultFileError(f"{at(where, key)}: missing.")


@cache
def _file_keys(kind: type) -> frozenset[str]:
    """The keys a dataclass's own object holds in its file (flattened dataclasses' keys included)."""
    schema, hints, keys = schema_of(kind), _hints(kind), set(schema_of(kind).computed)
    if schema.kind:
        keys.add("kind")
    for f in dataclasses.fields(kind):
        opt = options(f)
        if not opt.flatten:
            keys.add(opt.group or opt.key or f.name)
        elif (inner := _inner_dataclass(hints[f.name])) is not None:
            keys |= _file_keys(inner)  # a flattened dict takes the keys no other field takes
    return frozenset(keys)


def _inner_dataclass(kind: Any) -> type | None:
    """The dataclass a (possibly optional) field holds, or None."""
    if typing.get_origin(kind) in (Union, types.UnionType):
        found = [a for a in typing.get_args(kind) if a is not type(None)]
        kind = found[0] if len(found) == 1 else None
    return kind if isinstance(kind, type) and dataclasses.is_dataclass(kind) else None


def _optional(kind: Any) -> bool:
    return typing.get_origin(kind) in (Union, types.UnionType) and type(None) in typing.get_args(kind)


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

"""Each result kind declared once: its dataclass, registered by its `kind`, and the few ways its file differs from
its fields, said beside the fields.

Why: results were written by ~30 hand-written `to_json` methods and read by a handful of hand-written readers, so a
field added to a result and not to its `to_json` was lost on disk, and one type (the matrix) had two file forms.
Now the dataclass is the schema. `@result_kind("cnl.demo")` registers it (like lm-evaluation-harness's
`@register_filter`); serialize.py writes every result from its fields (`to_data`) and reads every file back
(`from_data`), checking each value against the type hints. What a file does differently from the fields is
declared, not coded:

- `field(metadata=in_file(key=..., omit=..., flatten=..., drop=..., group=..., codec=..., if_missing=...,
  earlier=...))` on a field: its key in the file, when it is left out, whether its own keys are merged into its
  owner's object, keys left out of what it writes, the nested object it is written into, a plain form of its own
  (a neuron set as [layer, index] pairs), what an earlier file that lacks it means, and how an earlier form of it
  is adapted;
- `computed={"key": "method_or_property"}` on the class: values derived from the fields that the file shows a
  reader (a mean, a warning) and that are never read back;
- `order=(...)`: the file's keys in the order the files have always had (fields, groups and computed keys by
  name; a flattened field's keys sit at its place); without it, fields in declaration order and flattened ones
  last;
- `form=FileForm(...)`: a kind whose file is a different shape altogether (a locate result: neurons as pairs on a
  grid, settings grouped) declares that shape as a dataclass of its own and the two conversions.

This module holds the declarations and the registry only; serialize.py walks them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")
META = "cnl.file"  # the key of a field's FileField in dataclasses.field(metadata=...): see in_file
OMIT = object()  # a computed value that is left out of the file


@dataclass(frozen=True)
class FileField:
    """How one field appears in its owner's file (the defaults: under its own name, always written)."""

    key: str | None = None  # its key in the file (None: the field's name)
    omit: Literal["none", "empty"] | Callable[[Any], bool] | None = None  # left out when None / empty / owner says
    flatten: bool = False  # its object's keys (a dataclass's, or a dict's items) are merged into its owner's
    drop: tuple[str, ...] = ()  # keys left out of each object it writes (of each item, for a dict or list)
    group: str | None = None  # written inside this nested object of its owner's file
    codec: Codec | None = None  # a plain form of its own, both ways
    if_missing: Callable[[], Any] | None = None  # what a file that lacks it (an earlier one) means
    earlier: Callable[[Any], Any] | None = None  # adapts an earlier file's form of it before it is read


@dataclass(frozen=True)
class Codec:
    """A field's own plain form: `write(value)` gives plain data, `read(data, where)` the value back (raising
    ResultFileError, or an error the reader turns into one naming `where`)."""

    write: Callable[[Any], Any]
    read: Callable[[Any, str], Any]


@dataclass(frozen=True)
class FileForm:
    """A kind whose file is not its fields: the file's shape (a dataclass, read and written field by field) and
    the conversions `to_file(result) -> file` and `from_file(file, where) -> result`."""

    file_type: type
    to_file: Callable[[Any], Any]
    from_file: Callable[[Any, str], Any]


@dataclass(frozen=True)
class Schema:
    """A dataclass's file declarations (held on the class; not inherited by subclasses)."""

    kind: str | None = None  # the "kind" written first and checked on reading (None: a part of a result)
    kind_required: bool = True  # a file without this kind is refused (False: files made by hand may leave it out)
    computed: Mapping[str, str | Callable[[Any], Any]] = dataclasses.field(default_factory=dict)
    order: tuple[str, ...] = ()
    form: FileForm | None = None


_KINDS: dict[str, type] = {}
_ATTR = "__cnl_schema__"


def in_file(**options: Any) -> dict[str, FileField]:
    """A field's file options (FileField's), as dataclasses.field's metadata: `after: str | None =
    field(default=None, metadata=in_file(omit="none"))` (dataclasses.field itself, so type checkers see defaults)."""
    return {META: FileField(**options)}


def file_form(
    *,
    computed: Mapping[str, str | Callable[[Any], Any]] | None = None,
    order: tuple[str, ...] = (),
    form: FileForm | None = None,
) -> Callable[[type[T]], type[T]]:
    """Declares how a part of a result (a dataclass without a kind of its own) is written."""
    return _declare(Schema(None, True, dict(computed or {}), tuple(order), form))


def result_kind(
    kind: str,
    *,
    computed: Mapping[str, str | Callable[[Any], Any]] | None = None,
    order: tuple[str, ...] = (),
    form: FileForm | None = None,
    kind_required: bool = True,
) -> Callable[[type[T]], type[T]]:
    """Registers a result dataclass under its `kind` (written first in its file, and checked on reading)."""

    def register(cls: type[T]) -> type[T]:
        if kind in _KINDS and _KINDS[kind].__qualname__ != cls.__qualname__:
            raise ValueError(f"The result kind {kind!r} is declared twice ({_KINDS[kind].__name__}, {cls.__name__}).")
        _KINDS[kind] = cls
        return _declare(Schema(kind, kind_required, dict(computed or {}), tuple(order), form))(cls)

    return register


def _declare(schema: Schema) -> Callable[[type[T]], type[T]]:
    def attach(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} is not a dataclass; only dataclasses declare a file form.")
        setattr(cls, _ATTR, schema)
        return cls

    return attach


def schema_of(cls: type) -> Schema:
    """The class's own declarations (a subclass declares its own; the defaults where it declares none)."""
    own = cls.__dict__.get(_ATTR)
    return own if isinstance(own, Schema) else _PLAIN


def options(f: dataclasses.Field) -> FileField:
    """A field's file options (the defaults where it has none)."""
    own = f.metadata.get(META)
    return own if isinstance(own, FileField) else _DEFAULT


def kind_type(kind: str) -> type | None:
    """The dataclass registered under `kind` (None: no such kind, or its module is not imported yet)."""
    return _KINDS.get(kind)


def kinds() -> dict[str, type]:
    """Every registered kind and its type (those of the modules imported so far)."""
    return dict(_KINDS)


_PLAIN = Schema()
_DEFAULT = FileField()

"""The schema's declarations on a toy result: every field option and class option, both ways."""

from dataclasses import dataclass, field

import pytest

from cnl_core.errors import ResultFileError
from cnl_core.schema import OMIT, Codec, file_form, in_file, kinds, result_kind
from cnl_core.serialize import dump, from_data, to_data


@file_form(computed={"total": lambda p: p.a + p.b})
@dataclass
class Part:
    a: int
    b: int = 0


def _upper(data, where):
    if not isinstance(data, str):
        raise ValueError("a code is text")
    return data.lower()


@result_kind(
    "test.toy",
    computed={"note": lambda t: OMIT if t.extra is None else f"{len(t.items)} items"},
    order=("name", "settings", "part", "items", "note"),
)
@dataclass
class Toy:
    name: str = field(metadata=in_file(key="title"))
    part: Part = field(metadata=in_file(flatten=True))
    items: dict[str, Part] = field(default_factory=dict, metadata=in_file(flatten=True, drop=("total",)))
    seed: int = field(default=0, metadata=in_file(group="settings"))
    code: str = field(default="x", metadata=in_file(group="settings", codec=Codec(str.upper, _upper)))
    extra: str | None = field(default=None, metadata=in_file(omit="none"))
    ids: list[str] = field(default_factory=list, metadata=in_file(if_missing=lambda: ["old"]))
    old: int = field(default=0, metadata=in_file(earlier=lambda v: int(v) if isinstance(v, str) else v))


def test_every_option_writes_the_declared_form_and_reads_it_back():
    toy = Toy("t", Part(1, 2), {"p": Part(3)}, seed=4, code="ab", extra="e", ids=["i"], old=5)
    data = to_data(toy)
    assert list(data) == ["kind", "title", "settings", "a", "b", "total", "p", "note", "extra", "ids", "old"]
    assert data["settings"] == {"seed": 4, "code": "AB"} and data["p"] == {"a": 3, "b": 0}
    assert data["total"] == 3 and data["note"] == "1 items"
    assert from_data("test.toy", data) == toy == from_data(Toy, data)
    assert "note" not in to_data(Toy("t", Part(1))) and "extra" not in to_data(Toy("t", Part(1)))
    assert dump(toy).startswith('{\n  "kind": "test.toy",\n  "title": "t"')


def test_earlier_forms_are_adapted_and_missing_fields_mean_what_they_declare():
    data = {"kind": "test.toy", "title": "t", "a": 1, "settings": {"code": "Q"}, "old": "7"}
    toy = from_data("test.toy", data)
    assert toy.ids == ["old"] and toy.old == 7 and toy.code == "q" and toy.items == {}


@pytest.mark.parametrize(
    "change,words",
    [
        ({"title": 3}, "title: expected text, got a number"),
        ({"a": "1"}, "a: expected a whole number, got text"),
        ({"settings": {"code": 5}}, "settings.code: a code is text"),
        ({"settings": []}, "settings: expected an object, got a list"),
        ({"p": {"b": 1}}, "p.a: missing"),
        ({"kind": "test.other"}, "not a test.toy result"),
    ],
)
def test_a_file_that_does_not_fit_is_one_sentence_naming_the_field(change, words):
    data = {"kind": "test.toy", "title": "t", "a": 1, **change}
    with pytest.raises(ResultFileError, match="^" + words.replace("(", r"\(").replace(")", r"\)")):
        from_data(Toy, data)


def test_a_kind_is_declared_once():
    assert kinds()["test.toy"] is Toy
    with pytest.raises(ValueError, match="declared twice"):

        @result_kind("test.toy")
        @dataclass
        class Other:
            x: int = 0

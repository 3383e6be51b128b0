"""The result cache (result_cache.py) and its codec (serialize.py): work done once, shared while it runs, served
from disk afterwards, and never a wrong or damaged result served."""

import math
import threading
import time
from dataclasses import dataclass, field

import pytest

from cnl_core.errors import Cancelled, ResultFileError
from cnl_core.evaluate.accuracy import EvalConfig, InterventionRecord
from cnl_core.evaluate.stats import ControlSummary, Summary
from cnl_core.experiments.demo import DEMO, DemoResult
from cnl_core.experiments.eval_results import EvalResult, Example
from cnl_core.experiments.result_cache import ResultCache, result_key
from cnl_core.serialize import from_fields, to_fields


@dataclass
class Inner:
    name: str
    values: list[float]
    extra: dict = field(default_factory=dict)


@dataclass
class Outer:
    count: int
    ratio: float
    inner: Inner
    maybe: Inner | None = None
    by_name: dict[str, Inner] = field(default_factory=dict)


def _eval_result() -> EvalResult:
    return EvalResult(
        "m",
        "add1",
        "number",
        2,
        0,
        ["a", "b"],
        ["c"],
        EvalConfig(),
        Summary(-1.5, (-2.0, -1.0), 0.5),
        InterventionRecord("zero", 0.0, 3),
        Summary(-2.5, None, 0.0),
        ControlSummary(-1.6, draws=[{"accuracy": 0.5}]),
        [Example("a", "1+1=", "2", "2", "3")],
        located_on="add1",
    )


def test_typed_results_round_trip():
    outer = Outer(3, math.nan, Inner("x", [1.0, 2.5], {"k": [1, None]}), None, {"y": Inner("y", [])})
    back = from_fields(Outer, to_fields(outer))
    assert back.inner == outer.inner and back.by_name == outer.by_name and math.isnan(back.ratio)
    demo = DemoResult("m", DEMO, 31, 0.4, 0.001, {"baseline": Summary(-1.0, None, 0.48)}, ["a"], ["b"], [[1, 2]])
    assert from_fields(DemoResult, to_fields(demo)) == demo
    ev = _eval_result()
    assert to_fields(from_fields(EvalResult, to_fields(ev))) == to_fields(ev)  # its own file form, kept


@pytest.mark.parametrize(
    "data, where",
    [
        ({"count": "3", "ratio": 1.0, "inner": {"name": "x", "values": []}}, "Outer.count"),
        ({"count": 3, "ratio": 1.0, "inner": {"name": "x", "values": ["a"]}}, "Outer.inner.values[0]"),
        ({"count": 3, "ratio": 1.0}, "Outer.inner: missing"),
        (
            {
                "count": 3,
                "ratio": 1.0,
                "inner": {"name": "x", "values": [], "extra": {"f": {"__class__": 1}}},
                "maybe": 5,
            },
            "Outer.maybe",
        ),
        ([1, 2], "expected an object"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(data, where):
    with pytest.raises(ResultFileError, match=where.replace("[", r"\[").replace("]", r"\]")):
        from_fields(Outer, data)


def test_computed_once_then_served_from_disk(tmp_path):
    cache, calls = ResultCache(tmp_path), []
    compute = lambda: (calls.append(1), Inner("r", [1.0]))[1]  # noqa: E731
    first = cache.serve("demo", {"seed": 1}, Inner, compute)
    second = ResultCache(tmp_path).serve("demo", {"seed": 1}, Inner, compute)  # another process, later
    other = cache.serve("demo", {"seed": 2}, Inner, compute)
    assert (first.source, second.source, other.source) == ("computed", "stored", "computed")
    assert second.value == first.value and len(calls) == 2


def test_visitors_asking_at_once_share_one_run(tmp_path):
    cache, calls, gate = ResultCache(tmp_path), [], threading.Event()

    def compute():
        calls.append(1)
        gate.wait(5)
        return Inner("r", [2.0])

    served = []
    threads = [
        threading.Thread(target=lambda: served.append(cache.serve("demo", {}, Inner, compute))) for _ in range(6)
    ]
    for t in threads:
        t.start()
    time.sleep(0.5)
    gate.set()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and sorted(s.source for s in served) == ["computed"] + ["shared"] * 5
    assert all(s.value == Inner("r", [2.0]) for s in served)


def test_a_cancelled_run_is_taken_over_and_a_waiter_can_cancel(tmp_path):
    cache, started = ResultCache(tmp_path), threading.Event()

    def cancelled():
        started.set()
        time.sleep(0.5)
        raise Cancelled("the first visitor pressed Cancel")

    first = threading.Thread(target=lambda: pytest.raises(Cancelled, cache.serve, "demo", {}, Inner, cancelled))
    first.start()
    started.wait(5)
    served = cache.serve("demo", {}, Inner, lambda: Inner("mine", []))  # waits, then runs it itself
    first.join(5)
    assert served.source == "computed" and served.value.name == "mine"

    gate, stop = threading.Event(), threading.Event()
    slow = threading.Thread(target=lambda: cache.serve("slow", {}, Inner, lambda: (gate.wait(5), Inner("s", []))[1]))
    slow.start()
    time.sleep(0.2)
    stop.set()
    with pytest.raises(Cancelled):
        cache.serve("slow", {}, Inner, lambda: Inner("never", []), cancel=stop)
    gate.set()
    slow.join(5)


def test_a_damaged_entry_is_set_aside_and_computed_again(tmp_path):
    cache = ResultCache(tmp_path)
    cache.serve("evaluate", {"n": 8}, EvalResult, _eval_result)
    path = cache.path("evaluate", result_key("evaluate", {"n": 8}))
    path.write_text(path.read_text().replace('"add1"', '"add2"', 1))  # one changed field, checksum unchanged
    again = cache.serve("evaluate", {"n": 8}, EvalResult, _eval_result)
    assert again.source == "computed" and any("damaged" in n for n in again.notes)
    assert path.with_name(path.name + ".damaged").exists()


def test_a_write_that_fails_is_a_note(tmp_path):
    (tmp_path / "demo").write_text("a file where the kind's folder goes")
    served = ResultCache(tmp_path).serve("demo", {}, Inner, lambda: Inner("r", []))
    assert served.source == "computed" and any("could not be stored" in n for n in served.notes)


def test_the_key_covers_every_parameter_and_the_code(monkeypatch):
    import cnl_core.experiments.result_cache as rc

    base = result_key("evaluate", {"neurons": [[1, 2]], "n": 8})
    assert base != result_key("evaluate", {"neurons": [[1, 3]], "n": 8}) != result_key("demo", {"n": 8})
    monkeypatch.setattr(rc, "code_version", lambda: "another version")
    assert result_key("evaluate", {"neurons": [[1, 2]], "n": 8}) != base


def test_list_and_clear_stay_inside_the_cache(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.json").write_text("{}")
    cache = ResultCache(tmp_path / "results")
    cache.serve("demo", {}, Inner, lambda: Inner("r", []))
    (cache.root / "link").symlink_to(outside)
    assert [e["kind"] for e in cache.entries()] == ["demo"]
    assert cache.clear() == 1 and (outside / "keep.json").exists() and cache.entries() == []


def test_cache_command_lists_and_clears_stored_results(tmp_path, monkeypatch, capsys):
    from cnl_core.cli import main
    from cnl_core.experiments.result_cache import RESULTS

    monkeypatch.setenv("CNL_CACHE_DIR", str(tmp_path))
    RESULTS.serve("demo", {"seed": 1}, Inner, lambda: Inner("a", []))
    RESULTS.serve("evaluate", {"seed": 1}, Inner, lambda: Inner("b", []))
    listed = main(["cache", "list"], exit_on_error=False)["results"]
    assert sorted(r["kind"] for r in listed) == ["demo", "evaluate"]
    key = next(r["key"] for r in listed if r["kind"] == "demo")
    assert main(["cache", "clear", "--key", key], exit_on_error=False) == {"removed": 1}
    assert [r["kind"] for r in RESULTS.entries()] == ["evaluate"]
    assert main(["cache", "clear"], exit_on_error=False)["results_removed"] == 1 and RESULTS.entries() == []

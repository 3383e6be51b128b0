"""Issue #33 item 5: a session survives a refresh (the browser's copy) and travels as one JSON file; a link opens a
stored result for anyone. Typed results only, no model."""

import json
from types import SimpleNamespace

import pytest

from cnl_core.errors import ResultFileError
from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.evaluate.stats import ControlSummary, Summary
from cnl_core.experiments import session_file
from cnl_core.experiments.eval_results import EvalResult
from cnl_core.experiments.result_cache import ResultCache
from cnl_core.experiments.session_file import read_session, session_json
from cnl_core.serialize import to_data
from tests.unit.test_results import result
from ui import session_store
from ui.session import Located, new_session


def _eval(dataset="add1") -> EvalResult:
    return EvalResult(
        model="m",
        dataset=dataset,
        task_kind="generate_number",
        n=10,
        seed=0,
        sample_ids=["a"],
        fewshot_ids=[],
        eval_config=EvalConfig(),
        baseline=Summary(-1.0, accuracy=0.9),
        intervened=Summary(-2.0, accuracy=0.1),
        control=ControlSummary(-1.0, accuracy=0.85),
        intervention={"mode": "zero", "factor": 0.0, "positions": "all", "n_neurons": 2},
    )


def _worked_session():
    state = new_session()
    state.located["m:d"] = Located(result())
    state.history.append([_eval(), _eval("add2")])
    return state


def test_a_refresh_brings_the_located_sets_and_runs_back():
    doc = session_store.snapshot(_worked_session())
    kept = json.loads(json.dumps(doc))  # what the browser's storage gives back: plain JSON
    fresh, note = session_store.restore_ui(kept, new_session())
    assert list(fresh.located) == ["m:d"] and to_data(fresh.located["m:d"].result) == to_data(result())
    assert [[e.dataset for e in run] for run in fresh.history] == [["add1", "add2"]]
    assert "Restored 1 located set and 1 Intervene run" in note
    assert session_store.snapshot(new_session()) is None  # nothing to keep: the browser keeps nothing


def test_a_damaged_or_hostile_copy_is_set_aside_with_a_sentence_and_the_page_works():
    doc = session_store.snapshot(_worked_session())
    doc["located"][0]["result"]["neurons"] = [[99, 0]]  # outside the grid
    state, note = session_store.restore_ui(doc, new_session())
    assert not state.located and "could not be restored" in note and "this page starts empty" in note
    for bad in (
        {"kind": "cnl.locate"},
        "not json",
        {"kind": "cnl.session", "located": {"a": 1}},
        {"kind": "cnl.session", "history": [["__import__('os')"]]},
    ):
        with pytest.raises(ResultFileError):
            read_session(bad)


def test_the_session_file_downloads_and_uploads_as_one_json(tmp_path, monkeypatch):
    monkeypatch.setenv("CNL_CACHE_DIR", str(tmp_path))
    path = session_store.download_ui(_worked_session())
    assert path.endswith(".json") and json.loads(open(path).read())["kind"] == "cnl.session"
    msg, state = session_store.upload_ui(path, new_session())
    assert "Restored 1 located set and 1 Intervene run" in msg and "m:d" in state.located
    (tmp_path / "x.json").write_text('{"kind": "cnl.session", "located": [{"label": 3}]}')
    with pytest.raises(Exception, match="needs a 'label'"):
        session_store.upload_ui(str(tmp_path / "x.json"), new_session())


def test_a_session_too_large_for_the_browser_keeps_its_newest_runs(monkeypatch):
    monkeypatch.setattr(session_file, "MAX_SESSION_CHARS", 6000)
    state = _worked_session()
    state.history = [[_eval(f"run{i}")] for i in range(10)]
    doc = session_json({k: e.result for k, e in state.located.items()}, state.history)
    kept = [run[0]["dataset"] for run in doc["history"]]
    assert kept and len(kept) < 10 and kept[-1] == "run9"


def test_a_link_opens_a_stored_result_for_anyone(tmp_path, monkeypatch):
    cache = ResultCache(tmp_path)
    served = cache.serve("intervene", {"x": 1}, EvalResult, _eval)
    monkeypatch.setattr(session_store, "RESULTS", cache)
    request = SimpleNamespace(query_params={"result": f"intervene/{served.key}"})
    note, plot, box, *_ = session_store.open_link(None, request)
    assert "Shared result: Intervene on add1" in note and "90% -> 10%" in note and plot["visible"]
    note, plot, *_ = session_store.open_link(None, SimpleNamespace(query_params={"result": "intervene/../../etc"}))
    assert "not stored on this server" in note and not plot["visible"]
    note, _, box, tab, opened = session_store.open_link(None, SimpleNamespace(query_params={"neuron": "12:345"}))
    assert box["value"] == "12:345" and "neuron 12:345" in note and tab.selected == "compare" and opened.open
    assert "could not be read" in session_store.open_link(None, SimpleNamespace(query_params={"neuron": "x"}))[0]


def test_the_page_restores_once_with_every_view_whichever_comes_first():
    """The browser may read its storage after the page's load event was sent: the storage's change event restores
    too, and a second restore (or a save's change) changes nothing on the page."""
    from ui.app import RESTORE_TICKS, _restore_page, _restore_tick, build_app

    app = build_app()
    fns = sorted(
        (f for f in app.fns.values() if getattr(f.fn, "__name__", "") in ("_restore_page", "_restore_tick")),
        key=lambda f: f.fn.__name__,
    )
    assert [f.fn.__name__ for f in fns] == ["_restore_page", "_restore_tick"]  # on load, and on a timer's tick
    boxes = (["add1", "not-a-dataset"], 12, 2, 2, 0.1, 0.5, ["add1"], 40, 3, "amplify", 2.0)  # SETTINGS' order
    doc = json.loads(json.dumps(session_store.snapshot(_worked_session(), *boxes)))
    first = _restore_page(doc, new_session())
    assert len(first) == len(fns[0].outputs) and "Restored 1 located set" in first[1]
    settings = dict(zip(session_store.SETTINGS, first[-len(session_store.SETTINGS) :]))
    assert settings["datasets"]["value"] == ["add1"]  # a dataset this page does not offer is left out
    assert (settings["tau"]["value"], settings["mode"]["value"], settings["eval_n"]["value"]) == (0.1, "amplify", 40)
    again = _restore_page(doc, first[0])
    assert len(again) == len(first) and all(x == {"__type__": "update"} for x in again[1:])
    assert len(first[0].located) == 1 and len(first[0].history) == 1  # not restored twice
    waiting = _restore_tick(doc, None, 0)  # the page's session is not made yet: wait, the timer ticks on
    assert len(waiting) == len(fns[1].outputs) and waiting[-2] == 1 and waiting[-1] == {"__type__": "update"}
    assert _restore_tick(None, new_session(), RESTORE_TICKS)[-1].active is False  # nothing kept: it stops
    ticked = _restore_tick(doc, new_session(), 3)
    assert "Restored 1 located set" in ticked[1] and ticked[-1].active is False


def test_the_kept_settings_are_named_once_in_the_order_the_page_gives_them():
    import inspect

    assert list(inspect.signature(session_store.snapshot).parameters)[1:] == list(session_store.SETTINGS)

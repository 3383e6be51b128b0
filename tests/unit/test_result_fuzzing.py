"""Property tests of the result-file readers and the dashboard handlers that take files or numbers.

Whatever a hand-edited or corrupted file holds, reading it gives a result or the library's own error,
never another exception; and a refused input leaves the visitor's session exactly as it was.
"""

import copy
import json
from functools import partial

import gradio as gr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnl_core.errors import CNLError
from cnl_core.experiments.eval_results import EvalResult
from cnl_core.experiments.locate_result import LocateResult
from cnl_core.serialize import from_data, to_data
from tests.unit.test_results import _evaluation, result
from ui.session import Located, new_session
from ui.tabs import data_tab, export_tab, intervene_tab, locate_tab

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # gr.Warning outside a running app
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _paths(node, prefix=()):
    """Every path to a value inside a JSON document."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _mutated(doc: dict, data, replacement) -> dict:
    doc = copy.deepcopy(doc)
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    node = doc
    for key in path[:-1]:
        node = node[key]
    if data.draw(st.booleans()):
        node[path[-1]] = replacement
    elif isinstance(node, dict):
        del node[path[-1]]
    else:
        node.pop(path[-1])
    return doc


def _reads_or_refuses(read, doc) -> None:
    try:
        read(doc)
    except CNLError:
        pass


@FUZZ
@given(st.data(), JSON)
def test_a_locate_result_with_any_field_replaced_or_removed_reads_or_is_refused(data, replacement):
    _reads_or_refuses(partial(from_data, LocateResult), _mutated(to_data(result()), data, replacement))


@FUZZ
@given(st.data(), JSON)
def test_an_evaluation_with_any_field_replaced_or_removed_reads_or_is_refused(data, replacement):
    _reads_or_refuses(partial(from_data, EvalResult), _mutated(_evaluation(), data, replacement))


@FUZZ
@given(JSON)
def test_any_json_document_is_a_result_or_refused(doc):
    _reads_or_refuses(partial(from_data, LocateResult), doc)
    _reads_or_refuses(partial(from_data, EvalResult), doc)


def _refused(exc: gr.Error) -> bool:
    """A refusal is the library's own error shown as a sentence; any other exception is a bug (a crash)."""
    return isinstance(exc.__cause__, CNLError)


def _snapshot(state) -> tuple:
    return (
        state.id,
        state.spec,
        {k: to_data(v.result) for k, v in state.located.items()},
        len(state.history),
        state.matrix,
        list(state.uploads),
        state.pending_upload,
    )


def _state():
    state = new_session()
    state.located["m:d"] = Located(result())
    return state


@FUZZ
@given(st.binary(max_size=600) | JSON.map(lambda d: json.dumps(d).encode()))
def test_a_refused_reload_leaves_the_session_as_it_was(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("reload") / "file.json"
    path.write_bytes(content)
    state = _state()
    before = _snapshot(state)
    try:
        export_tab.reload_ui(str(path), state)
    except gr.Error as exc:
        assert _refused(exc), exc
        assert _snapshot(state) == before


@FUZZ
@given(st.binary(max_size=600), st.sampled_from(["u.csv", "u.jsonl"]))
def test_a_refused_upload_leaves_nothing_pending(tmp_path_factory, content, name):
    path = tmp_path_factory.mktemp("upload") / name
    path.write_bytes(content)
    state = _state()
    before = _snapshot(state)
    *_, state = data_tab.inspect_upload(str(path), state)
    if state.pending_upload is None:  # refused: a warning, and the session as it was
        assert _snapshot(state) == before


NUMBER = st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-(10**12), 10**12), st.text(max_size=6))


@FUZZ
@given(st.tuples(NUMBER, NUMBER, NUMBER, NUMBER, NUMBER))
def test_bad_threshold_numbers_leave_the_located_sets_as_they_were(numbers):
    tau, p, top_k, sigma, _ = numbers
    state = _state()
    before = _snapshot(state)
    try:
        locate_tab.relocalize_ui("topk", tau, p, top_k, sigma, "positive", state)
    except gr.Error as exc:
        assert _refused(exc), exc
        assert _snapshot(state) == before


@FUZZ
@given(st.tuples(NUMBER, NUMBER, NUMBER, NUMBER, NUMBER, NUMBER))
def test_bad_evaluation_numbers_are_refused_before_any_model_work(numbers):
    factor, n, seed, draws, shots, max_new = numbers
    state = _state()
    state.model = lambda: pytest.fail("the model was asked for before the numbers were checked")
    before = _snapshot(state)
    try:
        intervene_tab.Intervention.from_inputs(result().neurons, "amplify", factor)  # in the handler's order
        intervene_tab.EvalConfig.from_inputs(shots, max_new), intervene_tab.eval_numbers(n, seed)
        intervene_tab.F.CONTROL_DRAWS.check(draws)
    except CNLError as expected:
        with pytest.raises(gr.Error) as shown:
            intervene_tab.intervene_ui(
                "m:d", "amplify", factor, "all", ["d"], n, seed, draws, shots, max_new, False, state
            )
        assert _refused(shown.value) and shown.value.message == str(expected)
        assert _snapshot(state) == before

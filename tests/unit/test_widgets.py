"""The dashboard's number boxes and sliders are the library's fields (ui/widgets.py): same label, same range."""

import ast
from pathlib import Path

import gradio as gr
import pytest

from cnl_core import fields as F
from cnl_core.cli import build_parser
from cnl_core.errors import ParameterError
from cnl_core.options import DEFAULTS
from ui import widgets

ROOT = Path(__file__).resolve().parents[2]
BY_LABEL = {f.label: f for f in F.ALL}


def test_no_number_box_or_slider_is_built_another_way():
    """Only ui/widgets.py calls gr.Number or gr.Slider: a box built by hand could restate a range or a label."""
    found = []
    for path in [ROOT / "dashboard.py", *sorted((ROOT / "ui").rglob("*.py"))]:
        if path.name == "widgets.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("Number", "Slider"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} gr.{node.attr}")
    assert not found, "build these with ui.widgets.number/slider: " + ", ".join(found)


def test_every_box_and_slider_of_the_dashboard_is_a_field_in_its_range():
    """Labelled as a field (with a few words of context where one field has two boxes), in the field's range;
    the labels the browser tests type into are not shared by two boxes."""
    from ui.app import build_app

    boxes = [b for b in build_app().blocks.values() if isinstance(b, gr.Number | gr.Slider)]
    assert len(boxes) >= 20
    for label in ("n per split", "n test samples", "random-control draws", F.FEWSHOT.label, F.MAX_NEW.label):
        assert sum(b.label == label for b in boxes) == 1, label
    for box in boxes:
        named = [label for label in BY_LABEL if box.label == label or box.label.startswith(label + " ")]
        assert named, f"{box.label!r} is not the label of a field in cnl_core/fields.py"
        field = BY_LABEL[max(named, key=len)]
        if box.value != field.unset:
            assert field.problem(box.value) is None, (box.label, box.value)
        if isinstance(box, gr.Slider):
            assert field.problem(box.minimum) is None and field.problem(box.maximum) is None, box.label
    factor = next(b for b in boxes if b.label == F.FACTOR.label)
    assert factor.maximum == F.FACTOR.high == 100  # it once stopped at 10
    steer = next(b for b in boxes if b.label == F.STEER_TOKENS.label)
    assert steer.value == DEFAULTS.steer_tokens  # it once said 16, the CLI 24


def test_a_slider_wider_than_its_field_is_refused_when_the_page_is_built():
    with gr.Blocks():
        assert widgets.slider(F.FACTOR, 2.0, step=0.5).maximum == F.FACTOR.high  # the whole range by default
        assert widgets.slider(F.TAU, 0.2, step=0.01).minimum == pytest.approx(0.01)  # open below: one step above 0
        with pytest.raises(ValueError, match="amplify factor: a slider from 0 to 200"):
            widgets.slider(F.FACTOR, 2.0, step=0.5, high=200)
        with pytest.raises(ValueError, match="leaves the field's range"):
            widgets.slider(F.BATCH, 64, step=1, high=32)  # a default the slider cannot show
        with pytest.raises(ValueError, match="no 'unset' value"):
            widgets.number(F.SEED)


def test_the_defaults_the_cli_and_the_dashboard_once_kept_apart_are_one():
    """The inspector's samples (the dashboard had 12, the CLI 20), the null's draws (2 and 3), decoupling's
    repeats (a literal 1 in each): one default each in options.py."""
    from ui.app import build_app

    values = {}
    for b in build_app().blocks.values():
        if isinstance(b, gr.Number) and b.label in (F.INSPECT_N.label, F.NULL_DRAWS.label, F.REPEATS.label):
            values.setdefault(b.label, set()).add(b.value)
    cli = build_parser()
    inspect, null = cli.parse_args(["inspect", "--neuron", "1:2"]), cli.parse_args(["null"])
    decouple = cli.parse_args(["decouple", "--other", "imdb"])
    assert values[F.INSPECT_N.label] == {DEFAULTS.inspect_n} == {inspect.n}
    assert values[F.NULL_DRAWS.label] == {DEFAULTS.null_draws} == {null.draws}
    from cnl_core import NullRequest

    request = NullRequest("add1")
    assert (request.draws, request.other) == (DEFAULTS.null_draws, DEFAULTS.null_other) == (null.draws, null.other)
    with pytest.raises(ParameterError, match="draws per side: 11 is out of range"):
        NullRequest("add1", draws=11)  # the run's own limit, now checked when the request is made
    assert values[F.REPEATS.label] == {DEFAULTS.decouple_repeats} == {decouple.repeats}

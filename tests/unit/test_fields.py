"""Every number a user can type: refused with a sentence that names the field, in the library, CLI and dashboard.

Property tests (hypothesis) throw arbitrary values at every field, every numeric CLI flag and every parameter
object: only the library's own ParameterError (or argparse's exit naming the flag) may come out.
"""

import argparse
import contextlib
import io
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnl_core import fields as F
from cnl_core.cli import build_parser
from cnl_core.errors import CNLError, ParameterError
from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.evaluate.harness import HarnessSettings
from cnl_core.locate.scorers import ScoreConfig
from cnl_core.locate.select import LocateParams
from cnl_core.model.hooks import Intervention
from cnl_core.model.loading import ModelSpec
from cnl_core.model.neurons import NeuronGrid, NeuronSet
from ui.tabs.locate_tab import split_numbers

eval_config, params_from = EvalConfig.from_inputs, LocateParams.from_inputs  # what the dashboard and CLI call

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "1e309", "-0", "2.5", "nan", "inf", "0x10", "1_000", "٣"]),
    st.lists(st.integers(), max_size=2),
)


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda: split_numbers(-5, 2, 0), "n per split: -5 is out of range"),
        (lambda: split_numbers(2.5, 2, 0), "n per split: 2.5 is not a whole number"),
        (lambda: split_numbers(10, 2, 1e20), "seed: 1e+20 is out of range"),
        (lambda: split_numbers(None, 2, 0), "n per split: empty"),
        (lambda: params_from("zscore", 0.2, 0.5, 100, None, "positive"), "z-score sigma: empty"),
        (lambda: params_from("zscore", 0.2, 0.5, 100, 1e309, "positive"), "z-score sigma: inf is not a finite number"),
        (lambda: params_from("topk", 0.2, 0.5, 1e9, 3.0, "positive"), "top-k: 1,000,000,000 is out of range"),
        (lambda: eval_config(1.5, 0), "few-shot"),
        (lambda: eval_config(-1, float("nan")), "max new tokens"),
        (
            lambda: Intervention.from_inputs(NeuronSet.from_flat(NeuronGrid(2, 4), [1]), "amplify", 0),
            "choose the 'zero' intervention",
        ),
        (
            lambda: Intervention.from_inputs(NeuronSet.from_flat(NeuronGrid(2, 4), [1]), "amplify", -1e9),
            "amplify factor",
        ),
        (lambda: LocateParams(tau=float("nan")), "tau .x sample max.: nan is not a finite number"),
        (lambda: EvalConfig(batch_size=0), "batch size: 0 is out of range"),
        (lambda: ScoreConfig(max_prompt_tokens=0), "max prompt tokens .*: in the library, leave it None"),
    ],
)
def test_bad_numbers_name_their_field(call, words):
    with pytest.raises(ParameterError, match=words.replace("(", r"\(").replace("+", r"\+")):
        call()


def test_good_numbers_pass_through_and_unset_boxes_mean_the_default():
    assert split_numbers(10.0, 2, "3") == (10, 2, 3)
    assert F.TAU.check("0.5") == 0.5 and F.SEED.check(0) == 0
    assert eval_config(-1, 0).num_fewshot is None and eval_config(3, 12).max_new_tokens == 12
    assert F.MAX_PROMPT.read(0) is None and F.MAX_PROMPT.read(64) == 64 and F.MAX_NEW.read(None) is None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(F.ALL), ANY_VALUE)
def test_any_value_in_any_field_is_a_number_in_range_or_a_sentence_naming_the_field(field, value):
    try:
        number = field.check(value)
    except ParameterError as exc:
        assert str(exc).startswith(field.label + ": ")
        return
    assert isinstance(number, int if field.whole else float) and math.isfinite(number)
    assert field.low <= number <= field.high and not (field.open_low and number == field.low)


def _numeric_flags() -> list[tuple[str, str, F.NumberField]]:
    """(command, flag, field) for every CLI option whose type is a field's parser."""
    out = []
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in sub.choices.items():
        for action in parser._actions:
            owner = getattr(action.type, "__self__", None)
            if isinstance(owner, F.NumberField):
                out.append((command, action.option_strings[-1], owner))
    return out


NUMERIC_FLAGS = _numeric_flags()
REQUIRED = {
    "compare": ["a.json"],
    "specificity": ["a.json"],
    "export": ["a.json", "--out-dir", "x"],  # what each
    "finetune": ["--neurons", "a.json"],
    "decouple": ["--other", "imdb"],
    "inspect": ["--neuron", "0:0"],
    "steer": ["--prompt", "x", "--neurons", "a.json"],
    "matrix": ["--neurons", "a", "--targets", "b"],
    "lm-eval": ["--tasks", "t", "--neurons", "a.json"],  # command needs besides the flag under test
    "knowledge": ["facts"],
}


def test_every_numeric_flag_of_the_cli_is_checked_by_a_field():
    assert len(NUMERIC_FLAGS) >= 40
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    loose = [(c, a.option_strings) for c, p in sub.choices.items() for a in p._actions if a.type in (int, float)]
    assert loose == []  # no flag parses numbers with a bare int/float (whose message names no range)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NUMERIC_FLAGS), st.one_of(ANY_VALUE.map(str), st.text(max_size=8)))
def test_any_text_for_a_numeric_flag_parses_in_range_or_exits_naming_the_flag(flag, text):
    command, option, field = flag
    parser = build_parser()
    argv = [command, *REQUIRED.get(command, []), f"{option}={text}"]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 2 and f"argument {option}: " in err.getvalue(), err.getvalue()
        return
    value = getattr(args, option.lstrip("-").replace("-", "_"))
    values = value if isinstance(value, list) else [value]
    assert all(v is None or field.low <= v <= field.high for v in values)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "tau": ANY_VALUE,
            "p": ANY_VALUE,
            "top_k": ANY_VALUE,
            "sigma": ANY_VALUE,
            "rule": st.text(max_size=8),
            "sign": st.sampled_from(["positive", "x"]),
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "ig_steps": ANY_VALUE,
            "max_prompt_tokens": ANY_VALUE,
            "max_answer_tokens": ANY_VALUE,
            "method": st.text(max_size=8),
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "num_fewshot": ANY_VALUE,
            "max_new_tokens": ANY_VALUE,
            "batch_size": ANY_VALUE,
            "bootstrap": ANY_VALUE,
        },
    ),
    st.tuples(st.text(max_size=8) | st.sampled_from(["zero", "amplify"]), ANY_VALUE),
)
def test_parameter_objects_take_any_values_and_refuse_only_with_their_own_errors(locate, score, evaluation, iv):
    neurons = NeuronSet.from_flat(NeuronGrid(2, 4), [1])
    calls = [
        lambda: LocateParams(**locate),
        lambda: ScoreConfig(**score),
        lambda: EvalConfig(**evaluation),
        lambda: Intervention(neurons, iv[0], iv[1]),
        # the one conversion from a form or the command line, each config's own `from_inputs`
        lambda: LocateParams.from_inputs(
            **{"rule": "relative", "tau": 0.2, "p": 0.5, "top_k": 10, "sigma": 3.0, "sign": "positive", **locate}
        ),
        lambda: ScoreConfig.from_inputs(**{"method": "grad_x_act", "ig_steps": 20, "ig_rule": "right", **score}),
        lambda: EvalConfig.from_inputs(
            evaluation.get("num_fewshot"),
            evaluation.get("max_new_tokens"),
            evaluation.get("batch_size"),
            evaluation.get("bootstrap"),
        ),
        lambda: HarnessSettings.from_inputs(
            "arc_easy",
            None,
            evaluation.get("batch_size"),
            evaluation.get("num_fewshot"),
            evaluation.get("max_new_tokens"),
            evaluation.get("bootstrap"),
        ),
        lambda: Intervention.from_inputs(neurons, iv[0], iv[1]),
    ]
    for call in calls:
        try:
            call()
        except CNLError:
            pass


def test_the_cli_and_a_form_make_the_same_configs_through_from_inputs():
    """One conversion: the CLI's parsed flags and the dashboard's boxes (text, the 'task's own' numbers) agree."""
    args = build_parser().parse_args(
        [
            "evaluate",
            "--fewshot",
            "-1",
            "--max-new-tokens",
            "12",
            "--factor",
            "3",
            "--intervention",
            "amplify",
            "--positions",
            "answer",
        ]
    )
    from cnl_core.cli import arguments as A

    assert A.eval_config(args) == EvalConfig.from_inputs("-1", "12") == EvalConfig(max_new_tokens=12)
    neurons = NeuronSet.from_flat(NeuronGrid(2, 4), [1])
    assert (
        A.intervention(args, neurons)
        == Intervention.from_inputs(neurons, "amplify", "3", "answer")
        == Intervention(neurons, "amplify", 3.0, "answer")
    )
    args = build_parser().parse_args(["locate", "--tau", "0.3", "--max-answer-tokens", "0", "--rule", "topk"])
    assert (
        A.locate_params(args)
        == LocateParams.from_inputs("topk", "0.3", 0.5, "100", 3, "positive")
        == LocateParams(rule="topk", tau=0.3)
    )
    assert A.score_config(args) == ScoreConfig.from_inputs("grad_x_act", "20", "right", "", 0) == ScoreConfig()
    assert A.model_spec(args) == ModelSpec.from_inputs(" ", "auto", "auto", "none", None, None) == ModelSpec()
    args = build_parser().parse_args(
        ["lm-eval", "--tasks", "arc_easy", "--neurons", "a.json", "--num-fewshot", "-1", "--limit", "5"]
    )
    assert (
        HarnessSettings.from_inputs(
            args.tasks,
            args.include_path,
            args.limit,
            args.num_fewshot,
            args.max_gen_toks,
            args.batch_size,
            args.bootstrap_iters,
        )
        == HarnessSettings.from_inputs("arc_easy", "  ", "5", "-1", "0")
        == HarnessSettings(("arc_easy",), limit=5)
    )

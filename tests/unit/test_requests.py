"""Requests (experiments/requests.py): one typed request per experiment, its key built from its fields; the library
owns every control draw's seed and steering's conditions, which the CLI and the dashboard both call."""

from dataclasses import replace
from pathlib import Path

import pytest

from cnl_core import fields as F
from cnl_core.errors import ParameterError
from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.evaluate.controls import control_seed, controlled, random_like
from cnl_core.evaluate.steer import steer_conditions
from cnl_core.experiments.requests import DoseRequest, EvaluateRequest, MatrixRequest, SteerRequest
from cnl_core.model.hooks import Intervention
from cnl_core.model.neurons import NeuronGrid, NeuronSet
from cnl_core.options import DEFAULTS

GRID = NeuronGrid(4, 64)
LOCATED = NeuronSet.from_pairs(GRID, [(0, 1), (0, 2), (3, 7)])


def test_control_seeds_are_the_ones_stored_results_were_drawn_with():
    assert [control_seed(5, d) for d in range(3)] == [1005, 1006, 1007]  # an evaluation's draws: seed + 1000 + d
    assert control_seed(5, 2, "matrix_row") == 3007  # the matrix's control beside its third located set
    assert control_seed(5, purpose="finetune") == 2005  # fine-tuning's random arm
    assert [control_seed(5, d, "fact", group=k) for k in (0, 2) for d in (0, 1)] == [5, 6, 2005, 2006]  # reliability


def test_a_control_has_the_located_count_per_layer_and_avoids_it_unless_allowed():
    iv = Intervention(LOCATED, "amplify", 3.0)
    control = controlled(iv, 0, 1)
    assert control.mode == "amplify" and control.scale == 3.0
    assert control.neurons.per_layer_counts() == LOCATED.per_layer_counts()
    assert not set(map(tuple, control.neurons.pairs())) & set(map(tuple, LOCATED.pairs()))
    assert control.neurons.pairs() == random_like(LOCATED, control_seed(0, 1), LOCATED).pairs()
    assert controlled(iv, 0, 1, may_overlap=True).neurons.pairs() == random_like(LOCATED, control_seed(0, 1)).pairs()


def test_steering_draws_its_control_as_an_evaluations_first_draw():
    iv = Intervention(LOCATED, "zero")
    conditions = steer_conditions(iv, 7)
    assert list(conditions) == ["baseline", "intervened", "control"]
    assert conditions["baseline"] is None and conditions["intervened"] is iv
    assert (
        conditions["control"].neurons.pairs() == controlled(iv, 7).neurons.pairs()
    )  # the CLI's `--seed 7` and the dashboard's seed box alike


def _variants(base, **changes):
    """The request with each change applied alone."""
    return {name: replace(base, **{name: value}) for name, value in changes.items()}


def test_every_field_an_evaluation_reads_is_in_its_key():
    """The key is built from the request's own fields: changing any input changes the stored result's key."""
    iv = Intervention(LOCATED, "zero")
    base = EvaluateRequest("add1", iv)
    assert base.key() == EvaluateRequest("add1", iv).key() and list(base.key()) == sorted(base.key())
    changed = _variants(
        base,
        dataset="add2",
        intervention=Intervention(LOCATED, "amplify", 2.0),
        n=base.n + 1,
        seed=base.seed + 1,
        control_draws=base.control_draws + 1,
        control_may_overlap=True,
        located_ids=("x",),
        eval=EvalConfig(num_fewshot=1),
    )
    for name, other in changed.items():
        assert other.key() != base.key(), name


def test_dose_and_matrix_keys_follow_their_fields():
    dose = DoseRequest("add1", LOCATED)
    for name, other in _variants(dose, positions="answer", factors=(0.0, 2.0), n=3, located_ids=("x",)).items():
        assert other.key() != dose.key(), name
    rows = {"add1": (Intervention(LOCATED, "zero"), ["a"])}
    matrix = MatrixRequest(rows, ("add1",))
    assert matrix.rows["add1"][1] == ("a",)
    for name, other in _variants(matrix, targets=("add1", "add2"), with_controls=False, seed=4).items():
        assert other.key() != matrix.key(), name


def test_a_request_refuses_a_number_out_of_its_fields_range():
    with pytest.raises(ParameterError, match="n test samples"):
        EvaluateRequest("add1", None, n=0)
    with pytest.raises(ParameterError, match="new tokens"):
        SteerRequest("Hi", Intervention(LOCATED, "zero"), max_new_tokens=F.STEER_TOKENS.high + 1)
    with pytest.raises(ParameterError, match="Positions must be one of"):
        DoseRequest("add1", LOCATED, positions="middle")


def test_the_cli_and_the_dashboard_read_one_default_and_one_limit():
    from cnl_core.cli import build_parser

    steer = build_parser().parse_args(["steer", "--prompt", "Hi", "--neurons", "x.json"])
    assert steer.max_new_tokens == DEFAULTS.steer_tokens == SteerRequest.__dataclass_fields__["max_new_tokens"].default
    source = Path("ui/tabs/intervene_tab.py").read_text()
    assert "gr.Slider(F.FACTOR.low, F.FACTOR.high" in source  # the amplify slider reaches the field's limit
    assert "DEFAULTS.steer_tokens" in Path("ui/tabs/steer_panel.py").read_text()

"""The library owns every control draw's seed and steering's conditions: the CLI and the dashboard call it."""

from cnl_core.evaluate.controls import control_seed, controlled, random_like
from cnl_core.evaluate.steer import steer_conditions
from cnl_core.model.hooks import Intervention
from cnl_core.model.neurons import NeuronGrid, NeuronSet

GRID = NeuronGrid(4, 64)
LOCATED = NeuronSet.from_pairs(GRID, [(0, 1), (0, 2), (3, 7)])


def test_control_seeds_are_the_ones_stored_results_were_drawn_with():
    assert [control_seed(5, d) for d in range(3)] == [1005, 1006, 1007]  # an evaluation's draws: seed + 1000 + d
    assert control_seed(5, 2, "matrix_row") == 3007  # the matrix's control beside its third located set


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

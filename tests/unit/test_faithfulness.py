"""The paper's conventions made explicit: signed selection, clean controls, draw-level intervals, coverage."""

import numpy as np
import pytest
import torch

from cnl_core.errors import ParameterError
from cnl_core.evaluate.controls import random_like
from cnl_core.evaluate.stats import bootstrap_ci, two_level_bootstrap_ci
from cnl_core.experiments.decouple import subsamples
from cnl_core.locate.select import LocateParams, locate, select_per_sample
from cnl_core.locate.token_limits import covering
from cnl_core.model.neurons import NeuronGrid, NeuronSet


def test_sign_options_on_hand_made_scores():
    # one sample, 6 neurons: two strong positives, one strong negative, the rest small
    scores = torch.tensor([[[5.0, 4.0, 0.1, -6.0, -0.2, 0.0]]])
    picked = lambda sign: select_per_sample(scores, LocateParams(tau=0.5, sign=sign))[0].nonzero().flatten().tolist()  # noqa: E731
    assert picked("positive") == [0, 1]
    assert picked("negative") == [3]
    assert picked("absolute") == [0, 1, 3]
    only_negative = torch.tensor([[[-1.0, -2.0]]])
    assert not select_per_sample(
        only_negative, LocateParams(sign="positive")
    ).any()  # KN: a negative max selects nothing
    assert locate(only_negative, LocateParams(sign="negative")).pairs() == [[0, 0], [0, 1]]


def test_the_control_avoids_the_located_neurons_by_default():
    grid = NeuronGrid(2, 20)
    located = NeuronSet.from_flat(grid, [0, 1, 2, 3, 4, 5, 6, 20])  # 7 of layer 0's 20 neurons
    for seed in range(50):
        control = random_like(located, seed, exclude=located)
        assert control.per_layer_counts() == located.per_layer_counts()
        assert not set(control.flat) & set(located.flat)
    hits = sum(bool(set(random_like(located, s).flat) & set(located.flat)) for s in range(50))
    assert hits > 0  # unrestricted draws do land on located neurons
    assert random_like(located, 3).pairs() == random_like(located, 3).pairs()
    dense = NeuronSet.from_flat(grid, list(range(12)))
    with pytest.raises(ParameterError, match="overlap the located set"):
        random_like(dense, 0, exclude=dense)


def test_the_draw_level_interval_is_wider_when_draws_differ():
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 0.1, size=40)
    draws = np.array([samples + offset for offset in (-1.0, 0.0, 1.0)])  # each draw shifts every sample
    per_sample = bootstrap_ci(draws.mean(0), 2000, 1)
    two_level = two_level_bootstrap_ci(draws, 2000, 1)
    assert (two_level[1] - two_level[0]) > 5 * (per_sample[1] - per_sample[0])
    same = np.array([samples, samples, samples])
    assert two_level_bootstrap_ci(same, 2000, 1) == pytest.approx(bootstrap_ci(samples, 2000, 1), abs=0.02)


def test_coverage_limit_covers_the_share_asked_for():
    lengths = list(range(1, 201))
    assert covering(lengths, 0.99) == 198 and covering(lengths, 1.0) == 200
    assert sum(x <= covering(lengths, 0.99) for x in lengths) / len(lengths) >= 0.99


def test_decoupling_subsamples_share_exactly_the_main_part():
    d = [f"d/{i:03d}" for i in range(40)]
    e = [f"e/{i:03d}" for i in range(20)]
    for f in (0.0, 0.25, 0.5, 1.0):
        parts = subsamples(d, e, 10, f, seed=3)
        a, b_same = parts["same"]
        a2, b_other = parts["other"]
        assert a == a2 and len(a) == len(b_same) == len(b_other) == 10
        assert len(set(a) & set(b_same)) == round(f * 10) == len(set(a) & set(b_other))
        assert sum(i.startswith("e/") for i in b_other) == 10 - round(f * 10)
    a, b = subsamples(d, e, 10, 1.0, seed=3)["other"]
    assert a == b  # at f = 1 both subsamples are the same samples


def test_amplifying_by_zero_is_refused_and_a_huge_set_warned():
    from cnl_core.experiments.locate_result import LocateResult
    from cnl_core.model.hooks import Intervention

    grid = NeuronGrid(2, 10)
    with pytest.raises(ParameterError, match="choose the 'zero' intervention"):
        Intervention(NeuronSet.from_flat(grid, [1]), "amplify", 0.0)
    everything = LocateResult("m", "d", NeuronSet.from_flat(grid, range(20)))
    assert any("not a localized capability" in w for w in everything.warnings())

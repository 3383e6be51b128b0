import math

import pytest

from cnl_core.compare.overlap import compare_sets, comparison_matrix, hypergeom_sf, iou, overlap_rate
from cnl_core.errors import ParameterError
from cnl_core.model.neurons import NeuronGrid, NeuronSet

GRID = NeuronGrid(2, 10)


def ns(*flat):
    return NeuronSet.from_flat(GRID, flat)


def test_overlap_and_iou_on_hand_made_sets():
    a, b = ns(0, 1, 2, 3), ns(2, 3, 4)
    assert overlap_rate(a, b) == pytest.approx(2 / 3)
    assert iou(a, b) == pytest.approx(2 / 5)
    assert overlap_rate(a, a) == 1.0 and iou(a, a) == 1.0
    assert overlap_rate(a, ns()) == 0.0 and iou(ns(), ns()) == 0.0


def test_chance_level_and_p_value():
    a, b = ns(0, 1, 2, 3), ns(2, 3, 4)
    c = compare_sets(a, b)
    assert c.chance_intersection == pytest.approx(4 * 3 / 20)
    assert c.chance_iou == pytest.approx(0.6 / (7 - 0.6))
    # P(X >= 2) for hypergeometric(N=20, K=4, n=3) computed by hand
    exact = sum(math.comb(4, k) * math.comb(16, 3 - k) for k in (2, 3)) / math.comb(20, 3)
    assert c.p_value == pytest.approx(exact)
    assert hypergeom_sf(0, 20, 4, 3) == 1.0 and hypergeom_sf(4, 20, 4, 3) == 0.0


def test_matrix_is_symmetric_with_unit_diagonal():
    m = comparison_matrix({"x": ns(0, 1), "y": ns(1, 2), "z": ns(5)})
    assert m.iou[0][1] == m.iou[1][0] == pytest.approx(1 / 3)
    assert m.overlap_rate[0][2] == 0.0
    assert all(m.iou[i][i] == 1.0 for i in range(3))


def test_sets_on_different_grids_are_refused():
    with pytest.raises(ParameterError):
        iou(ns(1), NeuronSet.from_flat(NeuronGrid(3, 10), [1]))

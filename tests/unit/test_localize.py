import pytest
import torch

from cnl_core.errors import ParameterError
from cnl_core.locate.select import LocateParams, locate, neuron_prominence, select_per_sample


def test_relative_selection_and_commonality():
    scores = torch.zeros(4, 2, 3)
    scores[:, 0, 0] = 10.0  # every sample's max
    scores[:3, 1, 2] = 3.0  # 3 of 4 samples pass tau=0.2
    scores[:1, 0, 1] = 5.0  # 1 of 4 samples
    located = locate(scores, LocateParams(tau=0.2, p=0.5))
    assert located.pairs() == [[0, 0], [1, 2]]
    assert locate(scores, LocateParams(tau=0.2, p=0.25)).pairs() == [[0, 0], [0, 1], [1, 2]]
    assert locate(scores, LocateParams(tau=0.5, p=0.5)).pairs() == [[0, 0]]
    prom = neuron_prominence(scores, LocateParams(tau=0.2, p=0.5))
    assert prom[1, 2] == pytest.approx(0.75)


def test_topk_and_zscore_rules():
    scores = torch.arange(12, dtype=torch.float32).view(1, 2, 6).repeat(3, 1, 1)
    assert locate(scores, LocateParams(rule="topk", top_k=2, p=1.0)).pairs() == [[1, 4], [1, 5]]
    sel = select_per_sample(scores, LocateParams(rule="zscore", sigma=1.0))
    assert sel[0].tolist() == [False] * 10 + [True, True]


@pytest.mark.parametrize("kwargs", [{"tau": 0.0}, {"tau": 1.5}, {"p": 0.0}, {"p": 2}, {"rule": "magic"}, {"top_k": 0}])
def test_impossible_thresholds_are_refused(kwargs):
    with pytest.raises(ParameterError):
        LocateParams(**kwargs)

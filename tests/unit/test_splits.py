import pytest

from cnl_core.data.samples import get_dataset
from cnl_core.data.splits import draw_disjoint, make_splits
from cnl_core.errors import DatasetError


def test_splits_are_disjoint_and_reproducible():
    ds = get_dataset("gsm8k")
    a = make_splits(ds, 50, 3, seed=7)
    assert a == make_splits(ds, 50, 3, seed=7)
    assert a != make_splits(ds, 50, 3, seed=8)
    flat = [i for s in a for i in s]
    assert len(flat) == len(set(flat)) == 150
    assert all(len(s) == 50 for s in a)


def test_exclusion_and_too_many_rows():
    ids = [f"x/{i}" for i in range(10)]
    (got,) = draw_disjoint(ids, [5], seed=0, exclude=ids[:5])
    assert set(got) == set(ids[5:])
    with pytest.raises(DatasetError, match="only 1319"):
        make_splits(get_dataset("gsm8k"), 700, 2, seed=0)

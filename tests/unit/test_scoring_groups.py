"""Grouping samples of like length for CPU passes: every sample once, little padding."""

from hypothesis import given
from hypothesis import strategies as st

from cnl_core.model.forward import like_length_groups


def test_like_lengths_share_a_pass_and_outliers_go_alone():
    assert like_length_groups([100, 98, 99, 97]) == [[0, 2, 1, 3]]
    assert like_length_groups([30, 200, 31, 29]) == [[1], [2, 0, 3]]


@given(st.lists(st.integers(1, 512), min_size=1, max_size=32), st.floats(0.0, 1.0))
def test_groups_cover_each_sample_once_within_the_waste_bound(lengths, waste):
    groups = like_length_groups(lengths, waste)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        real = sum(lengths[i] for i in g)
        assert max(lengths[i] for i in g) * len(g) <= (1 + waste) * real + 1e-9

"""Fidelity's intervals and like-for-like comparisons (issue #34, round two): the two-level bootstrap over facts and
wordings, the same-answer control split by wording, disjoint relation splits, sets capped at one size, and the
capability's prompts given as many demonstrations as the fact prompts."""

import numpy as np
import pytest
import torch

from cnl_core.evaluate.stats import bootstrap_ci
from cnl_core.knowledge.facts import Fact, builtin_facts
from cnl_core.knowledge.intervals import ONCE, UnitPairs, facts_and_wordings_ci, group_stat, unit_means
from cnl_core.knowledge.scoring import ParaphraseScores, common_set
from cnl_core.locate.scorers import ScoreConfig
from cnl_core.model.neurons import NeuronGrid
from cnl_core.serialize import to_data


def _same_fact_unit(values_by_template: np.ndarray) -> UnitPairs:
    """One fact's same-fact pairs (ti < tj), the pair's IoU the mean of its two wordings' values."""
    t = len(values_by_template)
    left, right = zip(*[(i, j) for i in range(t) for j in range(i + 1, t)])
    iou = (values_by_template[list(left)] + values_by_template[list(right)]) / 2
    return UnitPairs(iou, np.array(left), np.array(right), t)


def test_a_wording_counted_once_is_weighted_by_its_draw_count():
    unit = UnitPairs(np.array([1.0, 0.0]), np.array([0, 1]), np.array([ONCE, ONCE]), 2)
    draws = unit_means(unit, 4000, np.random.default_rng(0))
    values, counts = np.unique(draws, return_counts=True)
    assert list(values) == [0.0, 0.5, 1.0]  # both wordings drawn, or the one drawn twice
    assert counts[1] / 4000 == pytest.approx(0.5, abs=0.03) and counts[0] / 4000 == pytest.approx(0.25, abs=0.03)


def test_resampling_wordings_widens_the_interval_only_where_wordings_differ():
    rng = np.random.default_rng(1)
    fact_means = rng.normal(0.3, 0.02, size=20)
    steady = [_same_fact_unit(np.full(6, m)) for m in fact_means]
    noisy = [_same_fact_unit(m + rng.normal(0, 0.15, size=6)) for m in fact_means]
    by_facts = bootstrap_ci(np.array([u.iou.mean() for u in steady]), 2000, 0)
    nested_steady = facts_and_wordings_ci(steady, 2000, 0)
    nested_noisy = facts_and_wordings_ci(noisy, 2000, 0)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(nested_steady) == pytest.approx(width(by_facts), rel=0.2)  # nothing to add within a fact
    assert width(nested_noisy) > 1.5 * width(by_facts)  # the wordings' spread is in the interval now
    noisy_by_facts = bootstrap_ci(np.array([u.iou.mean() for u in noisy]), 2000, 0)
    assert width(nested_noisy) > 1.3 * width(noisy_by_facts)


def test_group_stat_keeps_the_point_estimate_and_says_what_it_resamples():
    per_unit = [[(0.2, 0.01, 10.0, 0, 1), (0.4, 0.01, 10.0, 0, 2), (0.6, 0.01, 12.0, 1, 2)], [(0.5, 0.0, 8.0, 0, 1)]]
    g = group_stat("same fact, other wording", per_unit, 500, 0, templates=[3, 3])
    assert g.iou == pytest.approx((0.4 + 0.5) / 2) and g.interval == "nested" and g.pairs == 4 and g.units == 2
    assert g.ci[0] <= g.iou <= g.ci[1]
    plain = group_stat("capability split", [[(0.3, 0.0, 5.0)], [(0.5, 0.0, 5.0)]], 500, 0, interval="draws")
    assert plain.interval == "draws" and plain.iou == pytest.approx(0.4)


def test_the_same_answer_control_keeps_same_wording_and_other_wording_apart():
    from cnl_core.knowledge.fidelity import PAIR_GROUPS, _pair_group

    spain, mexico = Fact("language", "Spain", " Spanish"), Fact("language", "Mexico", " Spanish")
    chile = Fact("capital", "Chile", " Spanish")  # the same answer word in another relation
    france = Fact("language", "France", " French")
    assert _pair_group(spain, mexico, 2, 2) == ("other fact, same answer, same wording", ONCE)
    assert _pair_group(spain, mexico, 2, 4) == ("other fact, same answer, other wording", 4)
    assert _pair_group(spain, chile, 2, 2) == ("other fact, same answer, other wording", ONCE)
    assert _pair_group(spain, spain, 1, 3) == (PAIR_GROUPS[0], 3)
    assert _pair_group(spain, france, 1, 1) == ("other fact, same wording", ONCE)
    assert _pair_group(spain, france, 1, 5) == ("other fact, other wording", 5)
    assert _pair_group(spain, Fact("capital", "Peru", " Lima"), 1, 1) == ("other relation", ONCE)


def test_a_capped_common_set_keeps_its_top_scored_neurons():
    scores = torch.zeros(2, 1, 6)
    scores[0, 0] = torch.tensor([1.0, 0.9, 0.5, 0.3, 0.0, 0.0])
    scores[1, 0] = torch.tensor([10.0, 2.0, 9.0, 5.0, 0.0, 0.0])  # a prompt with larger scores does not outweigh
    full = common_set(scores, 0.2, 1.0)
    assert full.flat.tolist() == [0, 1, 2, 3]
    assert common_set(scores, 0.2, 1.0, cap=2).flat.tolist() == [0, 2]  # mean relative: 1.0, 0.55, 0.7, 0.4
    assert common_set(scores, 0.2, 1.0, cap=10).flat.tolist() == [0, 1, 2, 3]  # a cap above the size changes nothing


def _scores(facts, chosen, seed=0):
    gen = torch.Generator().manual_seed(seed)
    paras = [p for f in chosen for p in facts.paraphrases(f)]
    return ParaphraseScores(
        [p.id for p in paras],
        torch.rand(len(paras), 2, 8, generator=gen),
        torch.zeros(len(paras)),
        NeuronGrid(2, 8),
        ScoreConfig(),
    )


def test_relation_splits_are_disjoint_groups_of_facts_and_matched_sizes_cap_both_sides():
    from cnl_core.knowledge.fidelity import FidelityConfig
    from cnl_core.knowledge.fidelity_splits import split_groups

    facts = builtin_facts(2, ("capital",))
    chosen = list(facts.facts[:13])  # 6 wordings: groups of 3 + 3 facts, so 2 disjoint groups (one fact left over)
    capability = torch.rand(30, 2, 8, generator=torch.Generator().manual_seed(1))
    cfg = FidelityConfig(draws=5, bootstrap=50)
    groups = {g.name: g for g in split_groups(chosen, facts, _scores(facts, chosen), capability, cfg)}
    assert groups["relation split"].units == 2 and groups["relation split"].interval == "draws"
    assert groups["relation split"].pairs == 2 * 6  # every wording of each group
    assert groups["capability split"].units == 5 and groups["fact split"].interval == "facts"
    capped = {g.name: g for g in split_groups(chosen, facts, _scores(facts, chosen), capability, cfg, size_cap=2)}
    assert all(g.size_cap == 2 and g.mean_size <= 2 for g in capped.values())
    assert capped["capability split"].units == groups["capability split"].units  # the same draws at every cap


def test_the_capability_gets_as_many_demonstrations_as_the_facts_and_never_scores_one():
    from cnl_core.data.samples import get_dataset
    from cnl_core.knowledge.fidelity import capability_with_shots

    spec, demos = capability_with_shots("add1_content", 2, 1)
    plain = get_dataset("add1_content")
    assert len(demos) == 2 and not {s.id for s in spec.rows()} & set(demos)
    first = next(s for s in plain.rows() if s.id not in demos)
    shot = spec.by_id()[first.id]
    assert shot.prompt.endswith(first.prompt) and shot.prompt.count("Answer:") == 3 and shot.answer == first.answer
    assert spec.name != plain.name and capability_with_shots("add1_content", 0, 1) == (plain, [])


def test_the_study_table_says_what_each_interval_resamples_and_shows_matched_sizes_side_by_side():
    from cnl_core.knowledge.fidelity import PAIR_GROUPS, SPLIT_GROUPS, FidelityConfig, FidelityResult
    from cnl_core.knowledge.intervals import GroupStat
    from cnl_core.knowledge.study import _fidelity_rows

    pairs = [GroupStat(g, 0.3, [0.2, 0.4], 0.001, 10, 5, 30.0, interval="nested") for g in PAIR_GROUPS]
    splits = [GroupStat(g, 0.5, [0.4, 0.6], 0.001, 5, 5, 20.0, interval="draws") for g in SPLIT_GROUPS]
    matched = [
        GroupStat(g, 0.1 * k, [0.0, 1.0], 0.001, 5, 5, float(k), size_cap=k) for k in (5, 10) for g in SPLIT_GROUPS
    ]
    fid = FidelityResult("m", "b", 2, FidelityConfig(), ["a"], {}, pairs, splits, matched=matched)
    fid.score.update(facts={"method": "grad_x_act", "position": "answer"}, capability_shots=2)
    text = "\n".join(_fidelity_rows(fid))
    assert "facts, then the wordings within each fact" in text and "independent draws" in text
    assert "capability prompts 2-shot" in text and "| k = 5 | k = 10 |" in text
    assert "| capability split | 0.500 [0.000, 1.000] (5.0) | 1.000 [0.000, 1.000] (10.0) |" in text
    assert fid.group("fact split", 10).mean_size == 10.0 and to_data(fid)["matched"][0]["size_cap"] == 5


def test_reliability_intervals_resample_the_prompts_within_each_fact():
    from cnl_core.knowledge.intervals import facts_and_items_ci

    rng = np.random.default_rng(2)
    centres = rng.normal(-2.0, 0.1, size=12)
    steady = [np.full(3, m) for m in centres]
    spread = [m + rng.normal(0, 1.0, size=3) for m in centres]

    def width(ci):
        return ci[1] - ci[0]

    facts_only = bootstrap_ci(np.array([v.mean() for v in spread]), 2000, 0)
    assert width(facts_and_items_ci(steady, 2000, 0)) == pytest.approx(width(bootstrap_ci(centres, 2000, 0)), rel=0.2)
    assert width(facts_and_items_ci(spread, 2000, 0)) > 1.1 * width(facts_only)  # measured: 1.19x
    assert facts_and_items_ci([], 100, 0) is None


def test_the_crossed_interval_moves_a_relations_facts_together_with_its_templates():
    from cnl_core.knowledge.intervals import facts_and_templates_ci

    rng = np.random.default_rng(3)
    template_effect = np.array([0.9, 0.1, 0.5, 0.5, 0.2, 0.8])  # one wording helps every fact, another hurts
    units = [_same_fact_unit(template_effect + rng.normal(0, 0.01, size=6)) for _ in range(30)]
    nested = facts_and_wordings_ci(units, 2000, 0)
    crossed = facts_and_templates_ci(units, ["r"] * 30, 2000, 0)
    assert crossed[1] - crossed[0] > 2 * (nested[1] - nested[0])  # independent redraws average the wording out
    g = group_stat(
        "same fact, other wording",
        [[(v, 0.0, 5.0, i, j) for v, i, j in zip(u.iou, u.left, u.right)] for u in units],
        200,
        0,
        templates=[6] * 30,
        relations=["r"] * 30,
    )
    assert g.ci_crossed is not None and g.interval == "nested"

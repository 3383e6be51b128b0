"""The paper's decoupling experiment, specificity across capabilities, IG completeness and full answers,
on the real built-in model."""

import math

import pytest

from cnl_core.data.samples import get_dataset
from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.experiments.decouple import run_decouple
from cnl_core.experiments.locate import run_locate
from cnl_core.experiments.locate_result import LocateResult
from cnl_core.experiments.specificity import SHARED, run_specificity
from cnl_core.locate.completeness import ig_completeness
from cnl_core.locate.scorers import ScoreConfig, score_batch
from cnl_core.locate.select import LocateParams
from cnl_core.locate.token_limits import dataset_limits, token_lengths
from cnl_core.model.neurons import NeuronSet
from cnl_core.serialize import to_data


def test_decoupling_curve_has_every_point_and_iou_one_at_full_sharing(lm, score_cache):
    res = run_decouple(
        lm, "arithmetic", "imdb", n=3, fractions=[0.0, 1.0], repeats=1, seed=2, params=LocateParams(tau=0.1)
    )
    assert {(p.fraction, p.replaceable) for p in res.curve} == {(f, s) for f in (0.0, 1.0) for s in ("same", "other")}
    for p in res.curve:
        assert 0.0 <= p.iou <= 1.0 and p.chance_iou < 0.05
        if p.fraction == 1.0:
            assert p.iou == 1.0  # the same samples give the same set
    data = to_data(res)
    assert data["curve"][0].keys() >= {"fraction", "replaceable", "overlap_rate", "iou", "chance_iou", "repeat"}
    for score in (data["params"]["score"], data["params"]["other_score"]):  # the limits used, not null
        assert score["max_answer_tokens"] and score["max_prompt_tokens"]
    assert len(res.null_iou) == 1 and 0.0 <= data["empirical_null"]["iou"] <= 1.0


def test_specificity_splits_sets_and_scores_each_dataset(lm):
    grid = lm.grid
    a = NeuronSet.from_pairs(grid, [[3, i] for i in range(40)] + [[10, i] for i in range(20)])
    b = NeuronSet.from_pairs(grid, [[3, i] for i in range(20)] + [[20, i] for i in range(30)])
    located = {"arith": LocateResult("m", "arithmetic", a), "reviews": LocateResult("m", "imdb", b)}
    res = run_specificity(lm, located, 2, seed=1, cfg=EvalConfig(num_fewshot=0, max_new_tokens=6, bootstrap=50))
    assert len(res.split.shared_by_all) == 20
    assert len(res.split.specific["arith"]) == 40 and len(res.split.specific["reviews"]) == 30
    assert res.split.counts == {"arith & reviews": 20, "arith": 40, "reviews": 30}
    assert set(res.matrix.sources) == {"arith specific", "reviews specific", SHARED}
    for ix in res.index.values():
        assert ix["value"] is not None and ix["ci"][0] <= ix["value"] <= ix["ci"][1]
        assert ix["value"] == pytest.approx(ix["own"] - ix["others"])


def test_ig_completeness_improves_with_more_steps(lm):
    sample = get_dataset("arithmetic").rows()[5:6]
    gaps = []
    for steps, rule in ((1, "right"), (4, "midpoint")):  # 4 midpoint steps: a median gap of 0.007 (16: 0.0004)
        cfg = ScoreConfig(method="integrated_gradients", ig_steps=steps, ig_rule=rule)
        scores, _ = score_batch(lm, sample, cfg)
        ratios = ig_completeness(lm, sample, cfg, scores).ratio_per_layer
        gaps.append(sorted(abs(1 - r) for r in ratios if math.isfinite(r))[len(ratios) // 2])  # median gap
    assert gaps[1] < gaps[0] and gaps[1] < 0.1


def test_default_limits_cover_the_whole_gsm8k_answer(lm, score_cache):
    gsm8k = get_dataset("gsm8k")
    limits = dataset_limits(lm.tokenizer, gsm8k)
    _, answers = token_lengths(lm.tokenizer, gsm8k.rows())
    assert sum(a <= limits.answer for a in answers) / len(answers) >= 0.99 and limits.answer > 128
    res = run_locate(lm, "gsm8k", 2, 1, seed=0, score_cfg=ScoreConfig(method="activation")).result()
    assert res.score.max_answer_tokens == limits.answer and res.truncated_answers == 0
    assert to_data(res)["params"]["max_answer_tokens"] == limits.answer
    old = run_locate(lm, "gsm8k", 2, 1, seed=0, score_cfg=ScoreConfig(method="activation", max_answer_tokens=128))
    assert old.table.key != run_locate(lm, "gsm8k", 2, 1, seed=0, score_cfg=ScoreConfig(method="activation")).table.key


def test_demo_reports_every_condition_with_intervals(lm, score_cache):
    from dataclasses import replace

    from cnl_core.experiments.demo import DEMO, run_demo

    res = run_demo(lm, replace(DEMO, n=3, eval_n=6, control_draws=1))
    data = to_data(res)
    for key in ("model", "dataset", "n_located", "split_iou", "chance_iou", "seconds"):
        assert key in data
    for key in ("baseline", "zeroed", "amplified", "control_zeroed", "control_amplified"):
        assert {"accuracy", "accuracy_ci", "gold_loglik"} <= set(data[key])
        assert 0.0 <= data[key]["accuracy"] <= 1.0
    assert not set(data["sample_ids"]) & set(data["located_ids"])
    assert data["n_located"] == len(data["neurons"]) and "neurons located" in res.headline()

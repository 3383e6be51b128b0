"""Facts with paraphrases, the facts CSV, pairwise IoU of many sets, peak agreement, and the small fixes of
issue #27 (content-only answers, shuffled answers, decouple's empty sets, the sweep's sign): no model runs."""

import math

import numpy as np
import pytest
import torch

from cnl_core.compare.overlap import compare_sets
from cnl_core.data.samples import get_dataset
from cnl_core.errors import DatasetError
from cnl_core.experiments.decouple import CurvePoint, DecoupleResult
from cnl_core.experiments.empirical_null import shuffled_answers
from cnl_core.knowledge.facts import BUILTIN_RELATIONS, builtin_facts, read_facts_csv
from cnl_core.knowledge.scoring import iou_matrix, kn_masks
from cnl_core.knowledge.tracing import Trace
from cnl_core.knowledge.tracing_stats import centre_of_mass_test, effect_curve, peak_agreement
from cnl_core.locate.scorers import ScoreConfig
from cnl_core.locate.select import LocateParams
from cnl_core.model.neurons import NeuronGrid, NeuronSet
from cnl_core.serialize import to_data


def test_builtin_facts_have_five_or_more_paraphrases_and_keep_demonstrations_out():
    facts = builtin_facts(shots=2)
    assert {r.name for r in BUILTIN_RELATIONS} == {"capital", "opposite", "language"}
    assert len(facts.facts) == sum(len(r.pairs) - 2 for r in BUILTIN_RELATIONS)
    demos = {(r.name, s) for r in BUILTIN_RELATIONS for s, _ in r.pairs[:2]}
    for f in facts.facts:
        assert (f.relation, f.subject) not in demos and f.answer.startswith(" ") and f.answer.strip()
        paras = facts.paraphrases(f)
        assert len(paras) >= 5 and len({p.text for p in paras}) == len(paras)
        for p in paras:
            assert p.text[p.subject_start : p.subject_end] == f.subject  # the query's subject, not a demonstration's
            assert p.text.count("\n") >= 2 and p.answer == f.answer
    zero = builtin_facts(shots=0, relations=("capital",))
    assert zero.paraphrases(zero.facts[0])[0].text == "The capital of Japan is"


def test_facts_csv_reuses_a_relations_templates_and_refuses_bad_rows():
    text = (
        "subject,relation,answer,templates\n"
        "Paris,country,France,{subject} is a city in | The city of {subject} lies in\n"
        "Rome,country,Italy,\nBerlin,country,Germany,\nMadrid,country,Spain,\n"
    )
    facts = read_facts_csv(text, shots=1)
    assert [f.subject for f in facts.facts] == ["Rome", "Berlin", "Madrid"]
    assert facts.paraphrases(facts.facts[0])[1].text == "The city of Paris lies in France\nThe city of Rome lies in"
    for bad, message in (
        ("a,b\n1,2\n", "header"),
        ("subject,relation,answer,templates\nx,r,y,\n", "no templates"),
        ("subject,relation,answer,templates\nx,r,y,no subject here\n", "no {subject}"),
        ("subject,relation,answer,templates\nx,r,,{subject} is\n", "must all be filled"),
        ("subject,relation,answer,templates\nx,r,y,{subject} is | {subject} was\n", "needed as"),
    ):
        with pytest.raises(DatasetError, match=message):
            read_facts_csv(bad, shots=1)


def test_iou_matrix_matches_compare_sets_and_leaves_two_empty_sets_undefined():
    grid = NeuronGrid(3, 50)
    rng = np.random.default_rng(0)
    masks = torch.zeros(4, grid.total, dtype=torch.bool)
    for i in range(3):
        masks[i, rng.choice(grid.total, size=10 + 5 * i, replace=False)] = True
    iou, chance = iou_matrix(masks)
    sets = [NeuronSet.from_flat(grid, torch.nonzero(m).flatten().numpy()) for m in masks]
    for i in range(3):
        for j in range(3):
            c = compare_sets(sets[i], sets[j])
            assert float(iou[i, j]) == pytest.approx(c.iou) and float(chance[i, j]) == pytest.approx(c.chance_iou)
    assert math.isnan(float(iou[3, 3])) and float(iou[0, 3]) == 0.0


def test_kn_masks_keep_scores_at_least_tau_times_each_prompts_max():
    scores = torch.tensor([[[10.0, 2.0, 1.9, -12.0]], [[-1.0, -2.0, -3.0, -4.0]]])
    assert kn_masks(scores, 0.2).tolist() == [[True, True, False, False], [False] * 4]
    assert kn_masks(scores, 0.2, "absolute")[0].tolist() == [True, False, False, True]  # 2.0 < 0.2 x 12


def test_peak_agreement_counts_same_fact_pairs_and_other_fact_pairs_apart():
    def t(pid, peak):
        return Trace(pid, 0.9, 0.1, [0.1 + 0.5 * (layer == peak) for layer in range(6)], 1)

    traces = [t("r/a#0", 2), t("r/a#1", 2), t("r/a#2", 5), t("r/b#0", 2), t("r/b#1", 4)]
    fact_of = {x.paraphrase: x.paraphrase.split("#")[0] for x in traces}
    out = peak_agreement(traces, fact_of, {"r/a": "r", "r/b": "r"}, draws=10)
    same = out["same fact, within 0"]
    assert same["pairs"] == 4 and same["share"] == pytest.approx((1 / 3 + 0) / 2)  # a: 1 of 3 pairs; b: 0 of 1
    assert out["same fact, within 2"]["share"] == pytest.approx((1 / 3 + 1) / 2)  # b: peaks 2 and 4
    other = out["other fact, same relation, within 0"]
    assert other["pairs"] == 6 and other["share"] == pytest.approx(2 / 6)  # a-b pairs: (2,2) twice of six
    dull = Trace("r/b#2", 0.9, 0.8, [0.9] * 6, 1)  # the noise did nothing: left out unless asked
    fact_of["r/b#2"] = "r/b"
    assert peak_agreement([*traces, dull], fact_of, {"r/a": "r", "r/b": "r"}, draws=10)["prompts"] == 5
    assert (
        peak_agreement([*traces, dull], fact_of, {"r/a": "r", "r/b": "r"}, draws=10, informative_only=False)["prompts"]
        == 6
    )


def test_centre_of_mass_moves_with_the_whole_curve_and_the_permutation_test_tells_facts_apart():
    flat = Trace("x", 1.0, 0.0, [0.5, 0.5, 0.5, 0.5], 1)
    assert flat.centre_of_mass == pytest.approx(1.5) and flat.peak_layer == 0  # arg-max: the first of a plateau
    assert Trace("x", 1.0, 0.0, [0.0, 0.0, 0.0, 1.0], 1).centre_of_mass == pytest.approx(3.0)
    assert Trace("x", 1.0, 1.0, [1.0] * 4, 1).centre_of_mass is None  # nothing restored: no centre
    fact_of, relation_of, traces = {}, {}, []
    for f in range(6):  # each fact's paraphrases bump at its own layer (f + 1), 3 paraphrases each
        relation_of[f"r/{f}"] = "r"
        for t in range(3):
            pid = f"r/{f}#{t}"
            fact_of[pid] = f"r/{f}"
            traces.append(Trace(pid, 1.0, 0.0, [1.0 if layer == f + 1 else 0.0 for layer in range(8)], 1))
    out = centre_of_mass_test(traces, fact_of, relation_of, permutations=200, draws=50)
    assert out["same fact"]["mean_distance"] == 0.0 and out["other fact, same relation"]["mean_distance"] > 2
    assert out["p_value"] < 0.01 and out["difference"] > 2
    same_curve = [Trace(p.paraphrase, 1.0, 0.0, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 1) for p in traces]
    null = centre_of_mass_test(same_curve, fact_of, relation_of, permutations=200, draws=50)
    assert null["difference"] == 0.0 and null["p_value"] == 1.0  # every fact the same: no evidence of a fact's layer
    curve = effect_curve(traces, fact_of, draws=50)
    assert curve["facts"] == 6 and curve["mean"][1] == pytest.approx(1 / 6) and curve["mean"][0] == 0.0
    assert curve["ci"][1][0] <= 1 / 6 <= curve["ci"][1][1]


def test_content_only_variant_has_the_same_tokens_and_scores_only_the_digits():
    from transformers import AutoTokenizer

    from cnl_core.model.loading import _builtin_folder

    tok = AutoTokenizer.from_pretrained(_builtin_folder("smollm2-135m"))
    whole, content = get_dataset("add1").rows(), get_dataset("add1_content").rows()
    assert len(whole) == len(content) == 100
    for a, b in zip(whole, content):
        assert b.prompt == a.prompt + " " and b.answer == a.answer.strip() and b.target == a.target
        ids = tok(a.prompt).input_ids + tok(a.answer, add_special_tokens=False).input_ids
        assert tok(b.prompt).input_ids + tok(b.answer, add_special_tokens=False).input_ids == ids
        assert tok.decode(tok(a.answer, add_special_tokens=False).input_ids[:1]) == " "  # the format token


def test_shuffled_answers_give_every_row_another_rows_answer():
    spec = get_dataset("add1")
    shuffled = shuffled_answers(spec, seed=3)
    rows, moved = spec.rows(), shuffled.rows()
    assert [r.prompt for r in rows] == [r.prompt for r in moved]
    assert sorted(r.answer for r in rows) == sorted(r.answer for r in moved)
    assert all(r.id.startswith("add1~shuffled3/") for r in moved)
    assert sum(a.answer != b.answer for a, b in zip(rows, moved)) >= 85  # equal sums may coincide


def test_decouple_warns_where_both_sets_are_empty_and_reports_its_null():
    res = DecoupleResult(
        "m",
        "gsm8k",
        "imdb",
        5,
        [1.0],
        1,
        0,
        ScoreConfig(max_prompt_tokens=10, max_answer_tokens=7),
        LocateParams(),
        [CurvePoint(1.0, "same", 0, 0.0, 0.0, 0.0, 0, 0, empty=True)],
        null_iou=[0.1, 0.3],
    )
    assert "undefined" in res.warnings()[0] and "f = 1" in res.warnings()[0]
    data = to_data(res)
    assert data["params"]["score"]["max_answer_tokens"] == 7 and data["warnings"]
    assert data["empirical_null"]["iou"] == pytest.approx(0.2) and data["empirical_null"]["iou_max"] == 0.3


def test_threshold_sweep_keeps_the_runs_sign():
    from cnl_core.experiments.locate import LocateRun, threshold_sweep
    from cnl_core.locate.collect import ScoreTable

    grid = NeuronGrid(1, 4)
    scores = -torch.tensor([[[5.0, 1.0, 0.0, 0.0]]] * 4)  # every score negative: positive selection finds nothing
    table = ScoreTable([f"s{i}" for i in range(4)], scores, torch.zeros(4), grid, {}, "k", cfg=ScoreConfig())
    run = LocateRun(
        {"name": "m"}, "d", 2, 2, 0, ScoreConfig(), [["s0", "s1"], ["s2", "s3"]], table, LocateParams(sign="negative")
    )
    rows = threshold_sweep(run, [0.1], [0.5])
    assert rows[0].n_located == 2 and rows[0].iou == 1.0


def test_knowledge_charts_draw_every_group_with_its_chance_and_nulls():
    from cnl_core.knowledge.editing import EditConfig, EditingResult, _summary
    from cnl_core.knowledge.fidelity import PAIR_GROUPS, SPLIT_GROUPS, FidelityConfig, FidelityResult, GroupStat
    from cnl_core.knowledge.reliability import ReliabilityConfig, ReliabilityResult
    from cnl_core.report.knowledge_charts import editing_chart, fidelity_chart, reliability_chart

    groups = [GroupStat(g, 0.1 * i, [0.05 * i, 0.15 * i], 0.0004, 10, 4, 30.0) for i, g in enumerate(PAIR_GROUPS)]
    splits = [GroupStat(g, 0.2, [0.1, 0.3], 0.0001, 5, 5, 12.0) for g in SPLIT_GROUPS[:-1]]
    splits.append(GroupStat(SPLIT_GROUPS[-1], None, None, None, 0, 0, 0.0))  # a group with no pairs is left out
    fid = FidelityResult("m", "builtin", 2, FidelityConfig(), ["a", "b"], {}, groups, splits)
    data = fidelity_chart(fid).to_dict()
    assert len(data["datasets"][next(iter(data["datasets"]))]) == len(PAIR_GROUPS) + 3
    summary = [
        {"mode": m, "neurons": w, "target": t, "facts": 2, "delta_logp": -1.0, "ci": [-2.0, 0.0], "erased": 0.5}
        for m in ("zero",)
        for w in ("located", "random")
        for t in ("held-out paraphrases", "other facts")
    ]
    reliability_chart(ReliabilityResult("m", "b", ReliabilityConfig(modes=("zero",)), [], summary)).to_dict()
    rows = [
        {
            "layer": layer,
            "p_new_edit": 0.9,
            "success": True,
            "p_new_paraphrases": 0.5,
            "generalization": 0.5,
            "other_facts_delta_logp": -0.1,
            "delta_norm": 1.0,
        }
        for layer in (0, 3)
    ]
    per_fact = [
        {
            "fact": "f",
            "new_answer": " x",
            "rows": rows,
            "trace": {
                s: {"peak_layer": 0, "effect": [0.5] * 4, "p_clean": 0.9, "p_corrupt": 0.1} for s in ("hidden", "mlp")
            },
        }
    ]
    result = EditingResult(
        "m", "b", EditConfig(), [0, 3], per_fact, _summary(per_fact, [0, 3], EditConfig(bootstrap=10))
    )
    assert result.summary[1]["traced_mlp"] == pytest.approx(0.5 / 0.8)
    editing_chart(result).to_dict()


def test_the_capability_split_draws_do_not_move_with_the_number_of_facts_and_use_samples_of_their_own():
    from cnl_core.knowledge.fidelity import FidelityConfig
    from cnl_core.knowledge.fidelity_splits import split_groups
    from cnl_core.knowledge.scoring import ParaphraseScores
    from cnl_core.locate.scorers import ScoreConfig

    facts = builtin_facts(2, ("capital",))
    gen = torch.Generator().manual_seed(0)
    capability = torch.rand(12, 2, 8, generator=gen)
    cfg = FidelityConfig(draws=5, bootstrap=10)
    results = []
    for n_facts in (2, 4):
        chosen = list(facts.facts[:n_facts])
        paras = [p for f in chosen for p in facts.paraphrases(f)]
        scores = ParaphraseScores(
            [p.id for p in paras],
            torch.rand(len(paras), 2, 8, generator=gen),
            torch.zeros(len(paras)),
            NeuronGrid(2, 8),
            ScoreConfig(),
        )
        results.append(split_groups(chosen, facts, scores, capability, cfg)[2])
    assert results[0].name == "capability split"
    assert results[0].iou == results[1].iou and results[0].ci == results[1].ci  # the same capability draws
    assert results[0].units == 2  # 12 samples make 2 disjoint draws of 3 + 3, not 5 overlapping ones

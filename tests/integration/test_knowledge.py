"""The paper's first half on the real built-in model: known facts, fidelity, causal tracing, reliability and
per-layer editing (small n: the numbers themselves are the README's, from `knowledge study`)."""

import pytest
import torch

from cnl_core.compare.overlap import compare_sets
from cnl_core.errors import ParameterError
from cnl_core.knowledge.editing import EditConfig, edit_fact_by_layer
from cnl_core.knowledge.facts import CAPITALS, FactSet, Relation
from cnl_core.knowledge.fidelity import FidelityConfig, run_fidelity
from cnl_core.knowledge.probe import answer_stats, check_known
from cnl_core.knowledge.reliability import ReliabilityConfig, run_reliability
from cnl_core.knowledge.rome import rank_one_edit
from cnl_core.knowledge.scoring import kn_masks, paraphrase_scores
from cnl_core.knowledge.tracing import subject_noise_std, trace
from cnl_core.model.neurons import NeuronGrid, NeuronSet
from cnl_core.serialize import to_data

# two capitals the model knows (France, Germany; Japan and Italy demonstrate) and one it cannot know
FACTS = FactSet((Relation("capital", CAPITALS.templates, CAPITALS.pairs[:4] + (("Atlantis", "Zorblax"),)),), shots=2)


@pytest.fixture(scope="module")
def facts_cache(tmp_path_factory):
    """One score cache for this module: fidelity and reliability score the same paraphrases once."""
    from cnl_core.paths import cache_root

    folder = tmp_path_factory.mktemp("knowledge-cache")
    (folder / "models").symlink_to(cache_root() / "models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNL_CACHE_DIR", str(folder))
        yield folder


def test_the_model_knows_capitals_and_not_a_made_up_one(lm):
    known = check_known(lm, FACTS)
    assert {"capital/France", "capital/Germany"} <= set(known.known)
    assert "capital/Atlantis" not in known.known and known.share["capital/Atlantis"] == 0.0
    assert set(known.correct) == {p.id for f in FACTS.facts for p in FACTS.paraphrases(f)}


def test_fidelity_iou_is_computed_from_the_per_paraphrase_sets(lm, facts_cache):
    ids = ["capital/France", "capital/Germany"]
    cfg = FidelityConfig(draws=3, bootstrap=100)
    res = run_fidelity(lm, FACTS, ids, cfg, capability_n=18)  # 3 disjoint draws of 3 + 3
    for g in [*res.pairs, *res.splits]:
        assert g.iou is None or (0.0 <= g.iou <= 1.0 and g.ci[0] <= g.iou <= g.ci[1])
    paras = [p for f in FACTS.subset(ids) for p in FACTS.paraphrases(f)]
    scores = paraphrase_scores(lm, FACTS, paras)  # from the cache the study filled
    masks = kn_masks(scores.scores, cfg.tau)
    grid = NeuronGrid(*scores.scores.shape[1:])
    sets = [NeuronSet.from_flat(grid, torch.nonzero(m).flatten().numpy()) for m in masks]
    per_fact = []
    for f in range(2):  # the same-fact group by hand: mean over a fact's pairs, then over facts
        own = sets[6 * f : 6 * f + 6]
        per_fact.append(sum(compare_sets(own[i], own[j]).iou for i in range(6) for j in range(i + 1, 6)) / 15)
    assert res.group("same fact, other wording").iou == pytest.approx(sum(per_fact) / 2, abs=1e-6)
    assert res.per_paraphrase_size[paras[0].id] == len(sets[0]) > 0
    assert res.group("capability split").pairs == 3 and to_data(res)["score"]["capability_samples"]
    # like for like: the capability prompts are 2-shot as the facts are, and the split groups come again capped
    assert res.score["capability_shots"] == 2 and len(res.score["capability_demonstrations"]) == 2
    assert not set(res.score["capability_demonstrations"]) & set(res.score["capability_samples"])
    for k in cfg.match_sizes:
        capped = res.group("fact split", k)
        assert capped.mean_size <= k and capped.iou is not None and res.group("capability split", k).mean_size <= k
    assert res.group("same fact, other wording").interval == "nested"  # facts, then wordings within a fact


def test_causal_tracing_restores_the_answer_at_some_layer(lm):
    p = FACTS.paraphrases(FACTS.fact("capital/France"))[0]
    t = trace(lm, p, subject_noise_std(lm, [p]), draws=1, seed=0)
    assert t.p_clean > 0.5 and t.p_corrupt < 0.5 * t.p_clean and t.informative
    assert max(t.p_restored) > t.p_corrupt + 0.4 and len(t.p_restored) == lm.grid.n_layers
    assert t.p_restored[-1] < 0.5 * t.p_clean  # restoring the last layer at the subject comes too late


def test_an_edit_changes_the_fact_and_the_weights_come_back(lm):
    f = FACTS.fact("capital/France")
    before = lm.ffn.down[4].weight.detach().clone()
    rows = edit_fact_by_layer(
        lm, FACTS, f, " Madrid", [], [4], EditConfig(steps=8, covariance_tokens=2000), use_cache=False
    )
    assert rows[0]["p_new_edit"] > 0.5 and rows[0]["success"]
    assert torch.equal(lm.ffn.down[4].weight, before)  # restored exactly after the edit
    edit = FACTS.paraphrases(f)[0]
    assert bool(answer_stats(lm, [(edit.text, f.answer)]).greedy[0])  # the model answers Paris again
    with pytest.raises(RuntimeError):  # an error inside the edit still restores the weights
        with rank_one_edit(lm, 4, torch.ones(lm.grid.width), torch.ones(before.shape[0])):
            assert not torch.equal(lm.ffn.down[4].weight, before)
            raise RuntimeError("boom")
    assert torch.equal(lm.ffn.down[4].weight, before)


def test_zeroing_a_facts_neurons_moves_it_more_than_random_neurons(lm, facts_cache):
    cfg = ReliabilityConfig(control_draws=1, other_facts=1, modes=("zero",), bootstrap=100)
    res = run_reliability(lm, FACTS, ["capital/France", "capital/Germany"], cfg)
    located, random_ = (
        res.row("zero", "located", "held-out paraphrases"),
        res.row("zero", "random", "held-out paraphrases"),
    )
    assert located["facts"] == 2 and located["delta_logp"] < random_["delta_logp"] - 0.5
    assert abs(random_["delta_logp"]) < 0.5


def test_quantized_or_impossible_edits_are_refused(lm):
    from cnl_core.knowledge.editing import run_editing

    with pytest.raises(ParameterError, match="between 0 and"):
        run_editing(lm, FACTS, ["capital/France"], EditConfig(layers=(99,)))

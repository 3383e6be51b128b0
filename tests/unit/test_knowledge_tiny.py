"""Shapes and plumbing of tracing, editing and the study's table on a tiny random Llama (no real model)."""

import pytest
import torch

from cnl_core.knowledge.editing import EditConfig, edit_fact_by_layer
from cnl_core.knowledge.facts import builtin_facts
from cnl_core.knowledge.tracing import decoder_layers, run_tracing, subject_positions
from cnl_core.model.loading import load_model
from cnl_core.serialize import to_data


def test_tracing_and_editing_shapes_on_a_tiny_model(tiny_model_folder):
    lm = load_model(tiny_model_folder)
    facts = builtin_facts(shots=1, relations=("capital",))
    f = facts.facts[0]
    assert len(decoder_layers(lm)) == lm.grid.n_layers == 2
    ids, where = subject_positions(lm, facts.paraphrases(f)[2])
    assert lm.tokenizer.decode([ids[i] for i in where]).strip() == f.subject
    res = run_tracing(lm, facts, [f.id, facts.facts[1].id], site="mlp", draws=1)
    assert len(res.traces) == 12 and all(len(t.p_restored) == 2 for t in res.traces)
    assert res.agreement["prompts"] == len(res.informative) and res.agreement["informative_only"]
    assert len(res.mean_effect()) in (0, 2)
    assert to_data(res)["traces"][0]["peak_layer"] in (0, 1)
    # the two-level intervals beside the ones over facts (one per layer; none where no trace is informative)
    assert len(res.effect_curve["ci_facts_and_prompts"]) == len(res.effect_curve["ci"]) in (0, 2)
    assert "mean_ci_facts_and_prompts" in res.centre_of_mass
    weights = [w.detach().clone() for w in (d.weight for d in lm.ffn.down)]
    rows = edit_fact_by_layer(
        lm,
        facts,
        f,
        " Rome",
        facts.paraphrases(facts.facts[1])[:1],
        [0, 1],
        EditConfig(steps=2, covariance_tokens=2000),
        use_cache=False,
    )
    assert [r["layer"] for r in rows] == [0, 1] and all(0 <= r["p_new_paraphrases"] <= 1 for r in rows)
    assert all(r["essence_kl"] >= -1e-6 for r in rows)  # KL of "{subject} is a" after the edit, from before it
    assert all(torch.equal(w, d.weight) for w, d in zip(weights, lm.ffn.down))


def test_tracing_intervals_resample_the_wordings_within_each_fact():
    """The trace's two-level intervals (facts, then each fact's wordings) hold the mean and, where a fact's
    wordings spread widely around a steady fact mean, are wider than the interval over facts alone."""
    import numpy as np

    from cnl_core.knowledge.tracing import Trace
    from cnl_core.knowledge.tracing_stats import centre_of_mass_test, effect_curve

    rng = np.random.default_rng(3)
    traces, fact_of, relation_of = [], {}, {}
    for f in range(12):
        relation_of[f"f{f}"] = f"r{f % 3}"
        centre = 0.5 + rng.normal(0, 0.02)
        for w in range(4):
            early = float(np.clip(centre + rng.normal(0, 0.3), 0.0, 1.0))
            traces.append(Trace(f"f{f}#{w}", 1.0, 0.0, [early, 1.0 - early, 0.1], 1))
            fact_of[f"f{f}#{w}"] = f"f{f}"
    curve = effect_curve(traces, fact_of, draws=2000, seed=0)
    for mean, ci, two in zip(curve["mean"], curve["ci"], curve["ci_facts_and_prompts"]):
        assert two[0] - 1e-9 <= mean <= two[1] + 1e-9  # the last layer is constant: a point interval
        assert two[1] - two[0] >= ci[1] - ci[0]
    com = centre_of_mass_test(traces, fact_of, relation_of, permutations=50, draws=2000, seed=0)
    lo, hi = com["mean_ci_facts_and_prompts"]
    assert lo <= com["mean_over_facts"] <= hi and hi - lo >= com["mean_ci"][1] - com["mean_ci"][0]
    assert com["mean_over_facts"] == pytest.approx(com["mean"])  # every fact has 4 traces
    for group in ("same fact", "other fact, same relation"):
        g = com[group]
        assert g["ci_facts_and_prompts"][0] <= g["mean_distance"] <= g["ci_facts_and_prompts"][1]

"""Shapes and plumbing of tracing, editing and the study's table on a tiny random Llama (no real model)."""

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

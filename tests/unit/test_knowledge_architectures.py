"""Every knowledge entry point on a tiny random model of every adapter-table architecture (plumbing and shapes
only: 3 layers, fewer than 10, with the built-in tokenizer's vocabulary so that subjects are token spans): OPT's
flattened FFN, Gemma's scaled embeddings, sliding-window attention. The real behaviour is tested on the built-in
model in tests/integration/test_knowledge.py."""

import json
from dataclasses import replace

import pytest
import torch
from transformers import CONFIG_MAPPING, AutoModelForCausalLM, AutoTokenizer

from cnl_core.errors import ParameterError
from cnl_core.knowledge.editing import EditConfig, edit_layers, run_editing
from cnl_core.knowledge.facts import CAPITALS, LANGUAGES, FactSet, Relation
from cnl_core.knowledge.fidelity import FidelityConfig, run_fidelity
from cnl_core.knowledge.probe import check_known
from cnl_core.knowledge.reliability import NEURONS, TARGETS, ReliabilityConfig, relation_common_set, run_reliability
from cnl_core.knowledge.study import StudyConfig, run_study
from cnl_core.knowledge.tracing import attention_hooks, run_tracing, subject_noise_std
from cnl_core.model.architectures import FFNAccess
from cnl_core.model.loading import LoadedModel, ModelSpec
from cnl_core.serialize import to_data

from .test_architectures import PER_TYPE, TINY, TYPES

# two relations, two facts each, three wordings: every part has what it compares, at a third of the cost
FACTS = FactSet(tuple(Relation(r.name, r.templates[:3], r.pairs[:3]) for r in (CAPITALS, LANGUAGES)), shots=1)
LAYERS = 3
SLIDING = {"mistral": dict(sliding_window=4), "gemma2": dict(sliding_window=4), "gemma3_text": dict(sliding_window=4)}


@pytest.fixture(scope="module")
def tokenizer():
    from cnl_core.model.loading import _builtin_folder
    from cnl_core.options import DEFAULT_MODEL

    return AutoTokenizer.from_pretrained(_builtin_folder(DEFAULT_MODEL))


def knowledge_lm(model_type: str, tokenizer, **extra) -> LoadedModel:
    shape = {**PER_TYPE.get(model_type, TINY), "vocab_size": len(tokenizer), **extra}
    for key in ("n_layer", "num_hidden_layers"):
        if key in shape:
            shape[key] = LAYERS
    for key in ("n_positions", "max_position_embeddings"):
        if key in shape:
            shape[key] = 256
    for key in ("n_inner", "intermediate_size", "ffn_dim", "ffn_hidden_size"):  # room for random controls
        if key in shape:
            shape[key] = 96
    config = CONFIG_MAPPING[model_type](**shape, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    return LoadedModel(
        ModelSpec(model_type),
        model,
        tokenizer,
        model_type,
        FFNAccess(model, model_type),
        "float32",
        "none",
        f"tiny-knowledge-{model_type}",
    )


def no_hooks_left(lm: LoadedModel) -> bool:
    return all(not (m._forward_hooks or m._forward_pre_hooks) for m in lm.model.modules())


@pytest.mark.parametrize("model_type", TYPES)
def test_every_knowledge_entry_point_runs_on_a_shallow_model_of_each_architecture(model_type, tokenizer):
    lm = knowledge_lm(model_type, tokenizer, **SLIDING.get(model_type, {}))
    ids = [f.id for f in FACTS.facts]
    known = check_known(lm, FACTS)
    assert set(known.share) == set(ids)
    for site in ("hidden", "mlp", "attn"):
        res = run_tracing(lm, FACTS, ids[:1], site=site, draws=1)
        assert len(res.traces) == 3 and all(len(t.p_restored) == LAYERS for t in res.traces)
        assert all(0 <= t.p_corrupt <= 1 and 0 <= t.p_clean <= 1 for t in res.traces)
        assert res.noise_std > 0 and json.dumps(to_data(res))
    shapes: dict[int, tuple] = {}  # the attention trace's hooks read every layer's attention output, and write it
    ids_in = torch.tensor([[5, 9, 13, 17]])
    with torch.no_grad(), attention_hooks(lm, lambda layer, a: shapes.update({layer: tuple(a.shape)})):
        plain = lm.model(input_ids=ids_in).logits
    assert shapes == {layer: (1, 4, lm.model.config.get_text_config().hidden_size) for layer in range(LAYERS)}
    with torch.no_grad(), attention_hooks(lm, lambda layer, a: torch.zeros_like(a) if layer == 0 else None):
        assert not torch.allclose(lm.model(input_ids=ids_in).logits, plain)
    weights = [d.weight.detach().clone() for d in lm.ffn.down]
    cfg = EditConfig(
        steps=1, layer_count=2, covariance_tokens=300, key_prefixes=1, other_facts=1, trace_draws=1, bootstrap=10
    )
    edit = run_editing(lm, FACTS, ids[:1], cfg, use_cache=False)
    assert edit.layers == edit_layers(LAYERS, 2) == [0, 2]  # from the depth, not a 30-layer list
    row = edit.per_fact[0]["rows"][0]
    assert 0 <= row["p_new_edit"] <= 1 and row["same relation_delta_logp"] is not None
    assert row["other relations_delta_logp"] is not None
    assert all(torch.equal(w, d.weight) for w, d in zip(weights, lm.ffn.down))  # weights put back
    rel = run_reliability(
        lm,
        FACTS,
        ids,
        ReliabilityConfig(locate_on=2, control_draws=1, modes=("zero",), other_facts=1, bootstrap=10),
        use_cache=False,
    )
    assert {r["target"] for r in rel.summary} == set(TARGETS)
    assert {r["neurons"] for r in rel.summary} == set(NEURONS)
    assert all(r["ci_facts_and_prompts"] is not None for r in rel.summary if r["facts"])
    for row in rel.per_fact:  # a fact's set splits into what its relation's other fact holds and the rest
        assert row["n_fact_specific"] <= row["n_neurons"] and len(row["same_relation"]) == 1
    fid = run_fidelity(lm, FACTS, ids, FidelityConfig(draws=2, bootstrap=10), capability_n=2, use_cache=False)
    assert fid.group("same fact, other wording").pairs == len(ids) * 3
    subject = run_reliability(
        lm,
        FACTS,
        ids,
        ReliabilityConfig(
            position="subject", locate_on=2, control_draws=1, modes=("zero",), other_facts=1, bootstrap=10
        ),
    )
    assert subject.config.position == "subject" and subject.summary
    assert no_hooks_left(lm)
    if model_type == "opt":  # the CLI prints every part's result as written to its file (once is enough)
        from cnl_core.cli.knowledge_commands import _print_part
        from cnl_core.knowledge.editing import located_vs_best

        trace_json = to_data(res)
        for action, out in (
            ("trace", trace_json),
            ("reliability", to_data(rel)),
            ("fidelity", to_data(fid)),
            ("edit", {**to_data(edit), "located_vs_best": located_vs_best(edit)}),
        ):
            _print_part(action, json.loads(json.dumps(out)))


def test_the_noise_scale_is_what_the_model_adds_so_gemmas_embedding_scale_counts(tokenizer):
    """Gemma multiplies its embeddings by sqrt(hidden width) after the lookup: sigma is measured there."""
    prompts = [FACTS.paraphrases(f)[0] for f in FACTS.facts]
    for model_type, scale in (("gemma", TINY["hidden_size"] ** 0.5), ("llama", 1.0)):
        lm = knowledge_lm(model_type, tokenizer)
        emb = lm.model.get_input_embeddings().weight
        from cnl_core.knowledge.tracing import subject_positions

        ids = sorted({pos[0][k] for p in prompts for pos in [subject_positions(lm, p)] for k in pos[1]})
        raw = float(emb[torch.tensor(ids)].detach().float().std())
        assert subject_noise_std(lm, prompts) == pytest.approx(scale * raw, rel=0.15)


def test_a_study_writes_the_parts_that_finished_when_a_later_one_fails(tokenizer):
    lm = knowledge_lm("opt", tokenizer)
    seen = []
    cfg = StudyConfig(known_share=0.0, fidelity_facts=2, edit_facts=1, edit_layers=(LAYERS + 5,))
    with pytest.raises(ParameterError, match="between 0 and 2"):
        run_study(lm, FACTS, cfg, parts=("tracing", "editing"), on_part=lambda s: seen.append(to_data(s)))
    assert "tracing" in seen[0] and "failed" not in seen[0]
    assert seen[-1]["failed"]["part"] == "editing" and "tracing" in seen[-1] and "editing" not in seen[-1]


def test_the_cli_study_leaves_its_file_when_a_part_fails(tiny_model_folder, tmp_path):
    from cnl_core.cli import main

    out = tmp_path / "k.json"
    with pytest.raises(ParameterError):  # a random model knows no fact: fidelity has nothing to compare
        main(
            [
                "knowledge",
                "study",
                "--model",
                tiny_model_folder,
                "--device",
                "cpu",
                "--relations",
                "capital",
                "--facts-per-relation",
                "2",
                "--out",
                str(out),
            ],
            exit_on_error=False,
        )
    data = json.loads(out.read_text())
    assert data["failed"]["part"] == "fidelity" and data["known"]["share"]


@pytest.mark.parametrize("model_type", ["gpt2", "opt"])  # Conv1D stores [in, out]; OPT's fc2 is a Linear
def test_romes_rank_one_update_maps_the_key_to_its_value_and_spares_keys_c_calls_unrelated(model_type, tokenizer):
    from cnl_core.knowledge.rome import rank_one_edit

    lm = knowledge_lm(model_type, tokenizer)
    down, width = lm.ffn.down[1], lm.grid.width
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(width, width, generator=gen)
    covariance = a @ a.T / width + torch.eye(width)
    k, residual = torch.randn(width, generator=gen), torch.randn(16, generator=gen)
    direction = torch.linalg.solve(covariance, k)
    other = torch.randn(width, generator=gen)
    other -= (direction @ other) / (direction @ k) * k  # direction . other = 0: C-orthogonal to k
    with torch.no_grad():
        before = down(torch.stack([k, other]))
        with rank_one_edit(lm, 1, k, residual, direction):
            after = down(torch.stack([k, other]))
    torch.testing.assert_close(after[0], before[0] + residual, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(after[1], before[1], rtol=1e-4, atol=1e-4)


def test_the_relation_common_set_holds_what_a_share_p_of_the_other_facts_sets_hold():
    from cnl_core.model.neurons import NeuronGrid, NeuronSet

    grid = NeuronGrid(2, 4)
    sets = {
        "a": NeuronSet.from_flat(grid, [0, 1, 2]),
        "b": NeuronSet.from_flat(grid, [1, 2, 5]),
        "c": NeuronSet.from_flat(grid, [2, 7]),
    }
    assert relation_common_set(sets, ["a", "b", "c"], 0.5).flat.tolist() == [1, 2]  # in 2 or 3 of the 3
    assert relation_common_set(sets, ["a", "b", "c"], 1.0).flat.tolist() == [2]
    assert relation_common_set(sets, [], 0.5) is None  # no other fact of the relation: nothing is common


def test_subject_position_scores_read_the_subjects_last_token_only(tokenizer):
    from cnl_core.knowledge.scoring import paraphrase_scores
    from cnl_core.knowledge.tracing import subject_positions

    lm = knowledge_lm("llama", tokenizer)
    p = FACTS.paraphrases(FACTS.facts[0])[0]
    scores = paraphrase_scores(lm, FACTS, [p], position="subject").scores[0].float()
    prompt, subj = subject_positions(lm, p)
    answer = tokenizer(p.answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + answer])
    x = {}

    def keep(layer, a):
        a.requires_grad_(True)
        x[layer] = a

    from cnl_core.model.hooks import neuron_hooks

    with neuron_hooks(lm.ffn, keep), torch.enable_grad():
        logp = torch.log_softmax(lm.model(input_ids=ids).logits[0].float(), -1)
        gold = sum(logp[len(prompt) - 1 + i, t] for i, t in enumerate(answer))
        (g,) = torch.autograd.grad(gold, [x[1]])
    expected = (x[1][0, subj[-1]] * g[0, subj[-1]]).detach()
    # stored as float16 (as every score): values below its smallest normal are rounded
    torch.testing.assert_close(scores[1], expected, rtol=1e-2, atol=1e-7)
    assert int(scores[1].argmax()) == int(expected.argmax()) and float(expected.abs().max()) > 1e-6
    with pytest.raises(ParameterError, match="grad x act only"):
        paraphrase_scores(lm, FACTS, [p], "activation", position="subject")


def test_romes_kl_term_keeps_the_essence_prompt_where_it_was(tokenizer):
    """The value optimised with the essence-drift penalty moves "{subject} is a" less than the one without it."""
    from cnl_core.knowledge.rome import EditConfig, edit_target, essence_logprobs, optimize_edit
    from cnl_core.model.hooks import neuron_hooks

    lm = knowledge_lm("llama", tokenizer)
    p = FACTS.paraphrases(FACTS.facts[0])[0]
    t = edit_target(lm, p, " Rome", "{subject} is a")
    essence = tokenizer.decode(t.essence[0].tolist())
    assert essence.endswith(f"{FACTS.facts[0].subject} is a")
    assert tokenizer.decode(t.essence[0, : t.essence_position + 1].tolist()).endswith(FACTS.facts[0].subject)

    def drift(delta: torch.Tensor) -> float:
        at = {"position": t.position, "edit": True}

        def add(_layer, y):
            y = y.clone()
            y[0, at["position"]] += delta
            return y

        with torch.no_grad(), neuron_hooks(lm.ffn, lambda *_: None, layers=[1], output=add):
            after = essence_logprobs(lm, t, at)
        with torch.no_grad():
            plain = torch.log_softmax(lm.model(input_ids=t.essence).logits[0, -1].float(), -1)
        return float(torch.sum(plain.exp() * (plain - after)))

    cfg = EditConfig(steps=15, lr=0.5, clamp=1e6, weight_decay=0.0, kl_weight=0.0)
    with torch.enable_grad():
        key_free, free = optimize_edit(lm, 1, t, cfg)
        key_kept, kept = optimize_edit(lm, 1, t, replace(cfg, kl_weight=1000.0))
    assert torch.equal(key_free, key_kept)  # the key is the edit prompt's, never the essence prompt's
    assert free.norm() > 0 and kept.norm() > 0
    assert drift(kept) < 0.5 * drift(free)  # measured: 1.0e-4 without the term, 1.4e-5 with it
    with pytest.raises(ParameterError, match="essence prompt"):
        EditConfig(essence_prompt="is a")

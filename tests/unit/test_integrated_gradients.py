"""Integrated gradients with shared work (prompt once, layers below the scaled one once) against the plain loop:
one full forward+backward per (layer, alpha), on a tiny random model of every adapter-table architecture."""

import pytest
import torch

from cnl_core.data.samples import Sample
from cnl_core.locate import integrated_gradients as ig
from cnl_core.locate.scorers import ScoreConfig, score_batch
from cnl_core.model.architectures import FFNAccess
from cnl_core.model.forward import answer_logprob
from cnl_core.model.hooks import neuron_hooks
from cnl_core.model.loading import LoadedModel, ModelSpec

from .test_architectures import TYPES, tiny_model
from .test_generation import CharTokenizer

SAMPLES = [
    Sample("0", "q: what comes after abc? a:", " d, then e", "d"),
    Sample("1", "x", "yz", "yz"),
]  # the second: a one-token prompt


def tiny_lm(model_type: str) -> LoadedModel:
    model = tiny_model(model_type)
    return LoadedModel(
        ModelSpec(model_type),
        model,
        CharTokenizer(),
        model_type,
        FFNAccess(model, model_type),
        "float32",
        "none",
        "tiny",
    )


def plain_loop(lm: LoadedModel, sample: Sample, cfg: ScoreConfig, prob: bool = False) -> torch.Tensor:
    """[layers, width]: for each layer and alpha, the whole sequence forward and backward, one row."""
    batch = cfg.encode(lm, [sample])
    mask = batch.answer_mask.to(torch.float32).unsqueeze(-1)
    out = torch.zeros(lm.grid.n_layers, lm.grid.width)
    for layer in range(lm.grid.n_layers):
        for alpha in ig.alphas(cfg.ig_steps, cfg.ig_rule).tolist():
            store = {}

            def hook(_l, x, alpha=alpha, store=store):
                store["x"], store["xs"] = x.detach(), (x * (1 + (alpha - 1) * mask)).requires_grad_(True)
                return store["xs"]

            with neuron_hooks(lm.ffn, hook, layers=[layer]), torch.enable_grad():
                logits = lm.model(input_ids=batch.input_ids, use_cache=False).logits
                gold = answer_logprob(logits, batch)
                (g,) = torch.autograd.grad((gold.exp() if prob else gold).sum(), store["xs"])
            out[layer] += (store["x"] * g * mask).sum((0, 1)) / cfg.ig_steps
    return out


@pytest.mark.parametrize("layers_per_pass", [1, 2])
@pytest.mark.parametrize("model_type", TYPES)
def test_shared_work_gives_the_plain_loops_scores(model_type, layers_per_pass, monkeypatch):
    monkeypatch.setattr(ig, "layers_per_pass", lambda lm, m: layers_per_pass)
    lm = tiny_lm(model_type)
    cfg = ScoreConfig(
        method="integrated_gradients", ig_steps=3, ig_rule="midpoint", max_prompt_tokens=64, max_answer_tokens=16
    )
    scores, gold = score_batch(lm, SAMPLES, cfg)
    for i, sample in enumerate(SAMPLES):
        expected = plain_loop(lm, sample, cfg)
        assert expected.abs().max() > 0
        torch.testing.assert_close(scores[i], expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
        with torch.no_grad():
            batch = cfg.encode(lm, [sample])
            assert gold[i] == pytest.approx(
                float(answer_logprob(lm.model(input_ids=batch.input_ids).logits, batch)[0]), rel=1e-5
            )
    assert all(len(m._forward_pre_hooks) == 0 for m in lm.ffn.down)
    assert len(lm.model.get_output_embeddings()._forward_pre_hooks) == 0


@pytest.mark.parametrize("model_type", ["llama", "opt", "gpt2"])
def test_knowledge_neurons_probability_ig_is_the_plain_loop_of_p_and_differs_from_log_p(model_type, monkeypatch):
    monkeypatch.setattr(ig, "layers_per_pass", lambda lm, m: 2)
    lm = tiny_lm(model_type)
    cfg = ScoreConfig(method="integrated_gradients_prob", ig_steps=3, max_prompt_tokens=64, max_answer_tokens=16)
    scores, _ = score_batch(lm, SAMPLES[:1], cfg)
    expected = plain_loop(lm, SAMPLES[0], cfg, prob=True)
    torch.testing.assert_close(scores[0], expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    log_p = plain_loop(lm, SAMPLES[0], cfg)
    assert not torch.allclose(scores[0], log_p, rtol=1e-2)  # p weights each step by p: another score


@pytest.mark.parametrize("layers_per_pass, expected", [(1, [1, 5, 1, 1]), (2, [1, 10])])
def test_the_layers_below_a_group_run_one_row(layers_per_pass, expected, monkeypatch):
    monkeypatch.setattr(ig, "layers_per_pass", lambda lm, m: layers_per_pass)
    lm = tiny_lm("llama")
    rows = []

    def count(_module, args, kwargs):
        rows.append((args[0] if args else kwargs["hidden_states"]).shape[0])

    hooks = [layer.register_forward_pre_hook(count, with_kwargs=True) for layer in lm.model.model.layers]
    try:
        score_batch(lm, SAMPLES[:1], ScoreConfig(method="integrated_gradients", ig_steps=5))
    finally:
        for h in hooks:
            h.remove()
    # the prompt pass and the gold pass: one row through both layers; then each group's pass: one row up to the
    # group's first layer, whose FFN widens the residual to a row per (layer of the group, alpha)
    assert rows == [1, 1, 1, 1] + expected


def test_a_sliding_window_model_skips_the_prompt_pass(monkeypatch):
    lm = tiny_lm("mistral")
    lm.model.config.sliding_window = 4
    seen = []
    monkeypatch.setattr(ig, "prefix_cache", lambda *a: seen.append(a) or None)
    prefix, suffix = ig._split(lm, ScoreConfig().encode(lm, SAMPLES[:1]))
    assert prefix is None and seen == [] and suffix.input_ids.shape[1] == len(SAMPLES[0].prompt + SAMPLES[0].answer)


@pytest.mark.parametrize("model_type", ["llama", "opt"])
def test_completeness_zeroes_one_layer_per_row(model_type):
    """Row l + 1 zeroes layer l at the answer positions (OPT flattens its rows: the check must not break there)."""
    from cnl_core.locate.completeness import layer_zeroing_effects

    lm = tiny_lm(model_type)
    cfg = ScoreConfig(method="integrated_gradients", max_prompt_tokens=64, max_answer_tokens=16)
    effects = layer_zeroing_effects(lm, SAMPLES[0], cfg)
    batch = cfg.encode(lm, SAMPLES[:1])
    for layer in range(lm.grid.n_layers):
        with torch.no_grad():
            base = answer_logprob(lm.model(input_ids=batch.input_ids).logits, batch)[0]
            with neuron_hooks(
                lm.ffn, lambda _l, x: x * (1 - batch.answer_mask.to(x.dtype).view(*x.shape[:-1], 1)), layers=[layer]
            ):
                zeroed = answer_logprob(lm.model(input_ids=batch.input_ids).logits, batch)[0]
        assert float(effects[layer]) == pytest.approx(float(base - zeroed), rel=1e-4, abs=1e-6)


def test_layers_per_pass_weighs_repeated_rows_against_skippable_layers():
    lm = tiny_lm("llama")
    lm.ffn.grid = type(lm.grid)(32, lm.grid.width)  # a 32-layer model's count, for the formula only
    assert [ig.layers_per_pass(lm, m) for m in (2, 8, 20, 40)] == [4, 2, 1, 1]  # sqrt(32 / m) on a CPU, 1 to 4

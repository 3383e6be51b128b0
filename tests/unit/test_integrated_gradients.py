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

SAMPLES = [Sample("0", "q: what comes after abc? a:", " d, then e", "d"), Sample("1", "x", "yz", "yz")]  # the second: a one-token prompt


class CharTokenizer:
    pad_token_id, eos_token_id = 0, 2

    def __call__(self, text: str, **_) -> dict:
        return {"input_ids": [3 + ord(c) % 60 for c in text]}


def tiny_lm(model_type: str) -> LoadedModel:
    model = tiny_model(model_type)
    return LoadedModel(ModelSpec(model_type), model, CharTokenizer(), model_type, FFNAccess(model, model_type),
                       "float32", "none", "tiny")


def plain_loop(lm: LoadedModel, sample: Sample, cfg: ScoreConfig) -> torch.Tensor:
    """[layers, width]: for each layer and alpha, the whole sequence forward and backward, one row."""
    batch = cfg.encode(lm, [sample])
    mask = batch.answer_mask.to(torch.float32).unsqueeze(-1)
    out = torch.zeros(lm.grid.n_layers, lm.grid.width)
    for layer in range(lm.grid.n_layers):
        for alpha in ig.alphas(cfg.ig_steps, cfg.ig_rule).tolist():
            store = {}

            def hook(_l, x, alpha=alpha):
                store["x"], store["xs"] = x.detach(), (x * (1 + (alpha - 1) * mask)).requires_grad_(True)
                return store["xs"]

            with neuron_hooks(lm.ffn, hook, layers=[layer]), torch.enable_grad():
                logits = lm.model(input_ids=batch.input_ids, use_cache=False).logits
                (g,) = torch.autograd.grad(answer_logprob(logits, batch).sum(), store["xs"])
            out[layer] += (store["x"] * g * mask).sum((0, 1)) / cfg.ig_steps
    return out


@pytest.mark.parametrize("model_type", TYPES)
def test_shared_work_gives_the_plain_loops_scores(model_type):
    lm = tiny_lm(model_type)
    cfg = ScoreConfig(method="integrated_gradients", ig_steps=3, ig_rule="midpoint", max_prompt_tokens=64,
                      max_answer_tokens=16)
    scores, gold = score_batch(lm, SAMPLES, cfg)
    for i, sample in enumerate(SAMPLES):
        expected = plain_loop(lm, sample, cfg)
        assert expected.abs().max() > 0
        torch.testing.assert_close(scores[i], expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
        with torch.no_grad():
            batch = cfg.encode(lm, [sample])
            assert gold[i] == pytest.approx(float(answer_logprob(lm.model(input_ids=batch.input_ids).logits, batch)[0]),
                                            rel=1e-5)
    assert all(len(m._forward_pre_hooks) == 0 for m in lm.ffn.down)
    assert len(lm.model.get_output_embeddings()._forward_pre_hooks) == 0


def test_the_layers_below_the_scaled_one_run_one_row():
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
    # prompt pass: 1, 1; gold pass: 1, 1; layer 0's pass: 1, then 5 rows; layer 1's pass: 1, 1 (it widens after
    # its FFN, where no layer is left)
    assert rows == [1, 1, 1, 1, 1, 5, 1, 1]

"""Every adapter-table architecture, as a tiny random-weight model built from a config (no download)."""

import pytest
import torch
from transformers import CONFIG_MAPPING, AutoModelForCausalLM

from cnl_core.errors import UnsupportedModelError
from cnl_core.model.architectures import SUPPORTED_MODEL_TYPES, FFNAccess, adapter_for
from cnl_core.model.hooks import neuron_hooks
from cnl_core.model.neurons import NeuronSet

TINY = dict(
    vocab_size=64,
    hidden_size=16,
    intermediate_size=24,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    head_dim=8,
    max_position_embeddings=64,
)
PER_TYPE = {
    "gpt2": dict(vocab_size=64, n_embd=16, n_layer=2, n_head=2, n_inner=24, n_positions=64),
    "gptj": dict(vocab_size=64, n_embd=16, n_layer=2, n_head=2, n_inner=24, n_positions=64, rotary_dim=4),
    "gpt_neox": dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=64,
    ),
    "opt": dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_dim=24,
        word_embed_proj_dim=16,
        max_position_embeddings=64,
    ),
    "falcon": dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_hidden_size=24,
        new_decoder_architecture=True,
        num_kv_heads=2,
    ),
}
TYPES = [t for t in SUPPORTED_MODEL_TYPES if t != "gemma3"]  # gemma3 is multimodal; its text part is gemma3_text


SPECIAL = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)


def tiny_model(model_type):
    config = CONFIG_MAPPING[model_type](**PER_TYPE.get(model_type, TINY), **SPECIAL)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("model_type", TYPES)
def test_grid_and_zeroing_hook(model_type):
    model = tiny_model(model_type)
    ffn = FFNAccess(model, model_type)
    assert ffn.grid.n_layers == 2 and ffn.grid.width == 24
    ids = torch.randint(0, 64, (1, 6))
    seen = []
    with torch.no_grad():
        base = model(ids).logits
        with neuron_hooks(ffn, lambda layer, x: seen.append(x.shape[-1])):
            model(ids)
        with neuron_hooks(ffn, lambda layer, x: torch.zeros_like(x)):
            zeroed = model(ids).logits
        after = model(ids).logits
    assert seen == [24, 24]
    assert not torch.allclose(base, zeroed)
    assert torch.equal(base, after)  # hooks removed
    assert all(len(m._forward_pre_hooks) == 0 for m in ffn.down)


def test_hooks_removed_after_exception():
    model = tiny_model("llama")
    ffn = FFNAccess(model, "llama")
    with pytest.raises(RuntimeError):
        with neuron_hooks(ffn, lambda layer, x: None):
            raise RuntimeError("boom")
    assert all(len(m._forward_pre_hooks) == 0 for m in ffn.down)


@pytest.mark.parametrize("model_type", ["gpt2", "phi3", "llama"])
def test_finetune_masks_cover_only_the_neurons(model_type):
    from cnl_core.evaluate.finetune import _neuron_masks
    from cnl_core.model.loading import LoadedModel, ModelSpec

    model = tiny_model(model_type)
    ffn = FFNAccess(model, model_type)
    lm = LoadedModel(ModelSpec(model_type), model, None, model_type, ffn, "float32", "none", "x")
    masks = _neuron_masks(lm, NeuronSet.from_pairs(ffn.grid, [[1, 3], [1, 5]]))
    per_neuron = {1: model.config.hidden_size}
    for w, mask in masks:
        assert mask.sum() == 2 * per_neuron[1] * (2 if model_type == "phi3" and w.shape[0] == 48 else 1)


def test_unsupported_type_names_the_supported_ones():
    with pytest.raises(UnsupportedModelError, match="llama"):
        adapter_for("bert")


def test_neuron_set_rejects_missing_layers_and_indices():
    from cnl_core.errors import NeuronSetError
    from cnl_core.model.neurons import NeuronGrid

    grid = NeuronGrid(2, 24)
    with pytest.raises(NeuronSetError, match="Layer 5"):
        NeuronSet.from_pairs(grid, [[5, 0]])
    with pytest.raises(NeuronSetError, match="index 99"):
        NeuronSet.from_pairs(grid, [[0, 99]])
    with pytest.raises(NeuronSetError):
        NeuronSet.from_pairs(grid, [[0]])
    s = NeuronSet.from_pairs(grid, [[1, 2], [0, 3], [1, 2]])
    assert s.pairs() == [[0, 3], [1, 2]] and s.per_layer_counts() == [1, 1]


@pytest.mark.parametrize("model_type", TYPES)
def test_gold_logprob_runs_the_head_on_answer_positions_only(model_type):
    from cnl_core.model.forward import EncodedBatch, answer_logprob, gold_logprob
    from cnl_core.model.loading import LoadedModel, ModelSpec

    model = tiny_model(model_type)
    lm = LoadedModel(
        ModelSpec(model_type), model, None, model_type, FFNAccess(model, model_type), "float32", "none", ""
    )
    ids = torch.randint(3, 64, (2, 7))
    answer = torch.zeros(2, 7, dtype=torch.bool)
    answer[0, 3:6], answer[1, 1:3] = True, True  # row 1 is "padded" after position 3
    batch = EncodedBatch(ids, torch.ones_like(ids), answer, torch.randint(3, 64, (2, 7)))
    with torch.no_grad():
        torch.testing.assert_close(gold_logprob(lm, batch), answer_logprob(model(ids).logits, batch))


@pytest.mark.parametrize("model_type", TYPES)
def test_vocabulary_projection_runs_on_every_architecture(model_type):
    from cnl_core.inspect.neuron import output_direction, vocab_projection
    from cnl_core.model.loading import LoadedModel, ModelSpec

    model = tiny_model(model_type)

    class Tok:
        def decode(self, ids):
            return f"<{ids[0]}>"

    lm = LoadedModel(
        ModelSpec(model_type), model, Tok(), model_type, FFNAccess(model, model_type), "float32", "none", ""
    )
    assert lm.ffn.final_norm is not None
    direction = output_direction(lm, 1, 3)
    assert direction.shape == (
        model.config.hidden_size if hasattr(model.config, "hidden_size") else model.config.n_embd,
    )
    top, bottom = vocab_projection(lm, 1, 3, k=5)
    assert len(top) == 5 and top[0].logit >= top[-1].logit >= bottom[-1].logit >= bottom[0].logit


def test_neurons_of_another_grid_are_refused_with_one_sentence_wherever_they_are_used():
    """One grid check (NeuronGrid.check_on): the dashboard's session, the CLI, an intervention and a study say the
    same, naming both shapes (three sentences, one without the shapes, before)."""
    from types import SimpleNamespace

    from cnl_core.cli.commands import on_model
    from cnl_core.errors import ParameterError
    from cnl_core.experiments.locate_result import LocateResult
    from cnl_core.experiments.specificity import run_specificity
    from cnl_core.model.hooks import Edit, Intervention
    from cnl_core.model.neurons import NeuronGrid
    from ui.session import Session

    grid, lm = NeuronGrid(3, 10), SimpleNamespace(grid=NeuronGrid(30, 1536))
    words = "located on a 3 x 10 grid, but this model has 30 x 1536: load the model they were located on"
    neurons = NeuronSet.from_flat(grid, [1, 12])
    state = Session()
    state.model = lambda: lm
    located = {d: LocateResult("m", d, NeuronSet.from_flat(grid, [i])) for i, d in enumerate(("a", "b"))}
    for call in (
        lambda: grid.check_on(lm.grid),
        lambda: state.model_for(grid),
        lambda: on_model(LocateResult("m", "d", neurons), lm),
        lambda: Edit.of(lm, Intervention(neurons)),
        lambda: run_specificity(lm, located, 2),
    ):
        with pytest.raises(ParameterError, match=words):
            call()
    grid.check_on(NeuronGrid(3, 10))  # the same shape passes

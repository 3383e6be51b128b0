"""The real default model: loading, its neuron grid, hooks that edit neurons and leave no trace."""

import torch

from cnl_core.model.hooks import neuron_hooks
from cnl_core.model.loading import load_model


def test_default_model_grid_and_info(lm):
    assert lm.model_type == "llama"
    assert (lm.grid.n_layers, lm.grid.width) == (30, 1536)
    info = lm.info()
    assert info["n_neurons"] == 46080 and info["memory_mb"] > 100 and len(info["fingerprint"]) == 16


def test_second_load_reads_the_converted_copy_with_identical_weights(lm):
    from cnl_core.paths import cache_root

    again = load_model("smollm2-135m")  # its speed is a benchmark figure (bench/), not a timed test
    assert (cache_root() / "models" / "smollm2-135m" / "model.safetensors").exists()
    assert again.fingerprint == lm.fingerprint


def test_zeroing_neurons_changes_logits_and_is_undone(lm):
    ids = lm.tokenizer("Question: What is 2 + 3?\nAnswer:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = lm.model(ids).logits

        def zero_some(layer, x):
            x = x.clone()
            x[..., :64] = 0
            return x

        with neuron_hooks(lm.ffn, zero_some, layers=[3, 10]):
            edited = lm.model(ids).logits
        after = lm.model(ids).logits
    assert (before - edited).abs().max() > 1e-3
    assert torch.equal(before, after)
    assert all(len(m._forward_pre_hooks) == 0 for m in lm.ffn.down)

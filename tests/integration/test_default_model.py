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


def test_two_visitors_at_once_convert_the_builtin_model_once_and_both_load(tmp_path, monkeypatch):
    """The model panel's memory estimate and the first load both reach a fresh cache together (a real race)."""
    import threading

    from cnl_core.model.loading import load_model

    monkeypatch.setenv("CNL_CACHE_DIR", str(tmp_path))
    grids, errors = [], []

    def visit():
        try:
            grids.append(load_model("smollm2-135m").grid)
        except Exception as exc:  # noqa: BLE001  # recorded, asserted below
            errors.append(exc)

    visitors = [threading.Thread(target=visit) for _ in range(2)]
    for v in visitors:
        v.start()
    for v in visitors:
        v.join(300)
    assert errors == [] and [(g.n_layers, g.width) for g in grids] == [(30, 1536)] * 2
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["smollm2-135m"]  # no temporary left

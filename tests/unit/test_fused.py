"""model/fused.py on a CPU: which modules it would swap, and that its formulas are the eager modules' own (the
compiled kernels themselves run on CUDA only: tests/gpu)."""

import torch

from cnl_core.model.fused import _mlp_forward, _norm_forward, _swappable, fused_elementwise
from cnl_core.model.loading import load_model


def test_swaps_llama_norms_and_gated_mlps_with_the_same_formulas(tiny_model_folder, monkeypatch):
    import cnl_core.model.fused as fused

    monkeypatch.setattr(fused, "_compiled", lambda fn: fn)  # the formulas, uncompiled
    lm = load_model(tiny_model_folder)
    layer = lm.model.model.layers[0]
    assert _swappable(layer.input_layernorm) is _norm_forward and _swappable(layer.mlp) is _mlp_forward
    assert _swappable(layer.self_attn) is None and _swappable(lm.model.lm_head) is None
    x = torch.randn(2, 5, lm.model.config.hidden_size)
    torch.testing.assert_close(_norm_forward(layer.input_layernorm, x), layer.input_layernorm(x))
    torch.testing.assert_close(_mlp_forward(layer.mlp, x), layer.mlp(x))


def test_changes_nothing_on_a_cpu(tiny_model_folder):
    lm = load_model(tiny_model_folder)
    with fused_elementwise(lm.model) as swapped:
        assert swapped == 0
        assert not any("forward" in vars(m) for m in lm.model.modules())


def test_keeps_a_forward_another_library_wrapped(tiny_model_folder):
    """accelerate wraps the forward of modules whose weights it offloads to RAM (the wrapper brings them in): such a
    module keeps its wrapper (found on a GPU: a swapped norm saw its weights still on the meta device)."""
    lm = load_model(tiny_model_folder)
    norm = lm.model.model.layers[0].input_layernorm
    norm.forward = lambda x: x  # as accelerate's add_hook_to_module does
    assert _swappable(norm) is None


def test_loads_without_hub_kernels(tiny_model_folder):
    """transformers >= 5.25 would swap norms and activations for kernels fetched from the Hub on a GPU: not ours."""
    assert load_model(tiny_model_folder).model.use_kernels is False

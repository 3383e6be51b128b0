"""Layers offloaded by device_map (accelerate keeps their weights outside the module, which holds empty meta
tensors): the weight fingerprint reads the real values, and the neuron hooks score as on the plain model.
Disk offload on a CPU stands in for the GPU's offload to RAM (tests/gpu checks that one on CUDA)."""

import torch
from transformers import AutoModelForCausalLM

from cnl_core.locate.scorers import ScoreConfig, score_batch
from cnl_core.model.architectures import FFNAccess
from cnl_core.model.fingerprint import weight_fingerprint
from cnl_core.model.hooks import Intervention, intervene
from cnl_core.model.loading import LoadedModel, ModelSpec
from cnl_core.model.neurons import NeuronSet

from .test_architectures import tiny_model
from .test_integrated_gradients import SAMPLES, CharTokenizer

OFFLOADED = {
    "model.embed_tokens": "cpu",
    "model.layers.0": "cpu",
    "model.layers.1": "disk",
    "model.norm": "cpu",
    "model.rotary_emb": "cpu",
    "lm_head": "cpu",
}


def as_lm(model) -> LoadedModel:
    return LoadedModel(
        ModelSpec("llama"),
        model,
        CharTokenizer(),
        "llama",
        FFNAccess(model, "llama"),
        "float32",
        "none",
        weight_fingerprint(model),
    )


def test_offloaded_layers_are_fingerprinted_and_hooked_like_the_plain_model(tmp_path):
    tiny_model("llama").save_pretrained(tmp_path / "m")
    plain = as_lm(AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval())
    spread = as_lm(
        AutoModelForCausalLM.from_pretrained(
            tmp_path / "m", device_map=OFFLOADED, offload_folder=tmp_path / "off"
        ).eval()
    )
    assert any(p.is_meta for p in spread.model.parameters())  # layer 1 really waits on disk
    assert spread.fingerprint == plain.fingerprint
    for method in ("activation", "grad_x_act", "integrated_gradients"):
        cfg = ScoreConfig(method=method, ig_steps=2, max_prompt_tokens=64, max_answer_tokens=16)
        torch.testing.assert_close(score_batch(spread, SAMPLES, cfg)[0], score_batch(plain, SAMPLES, cfg)[0])
    zero = Intervention(NeuronSet.from_flat(plain.grid, [24 + 3, 24 + 5]), "zero")  # two neurons of the disk layer
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad(), intervene(spread, zero):
        spread_logits = spread.model(input_ids=ids).logits
    with torch.no_grad(), intervene(plain, zero):
        plain_logits = plain.model(input_ids=ids).logits
    torch.testing.assert_close(spread_logits, plain_logits)
    with torch.no_grad():
        assert not torch.allclose(plain.model(input_ids=ids).logits, plain_logits)

"""The inspector's vocabulary projection on bitsandbytes 8-bit and nf4 layers (CPU): it runs the quantized
layer itself, so its direction is the dequantized column of the float model, up to quantization error."""

import tempfile

import pytest
import torch

pytest.importorskip("bitsandbytes")


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("bits", ["8bit", "nf4"])
def test_output_direction_of_a_quantized_layer_is_the_dequantized_column(bits):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from cnl_core.inspect.neuron import output_direction, vocab_projection
    from cnl_core.model.architectures import FFNAccess
    from cnl_core.model.loading import LoadedModel, ModelSpec

    model = _tiny_llama()
    cfg = (
        BitsAndBytesConfig(load_in_8bit=True)
        if bits == "8bit"
        else BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    )
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        quantized = AutoModelForCausalLM.from_pretrained(folder, quantization_config=cfg, device_map="cpu")

    class Tok:
        def decode(self, ids):
            return f"<{ids[0]}>"

    lm = LoadedModel(ModelSpec("tiny"), quantized, Tok(), "llama", FFNAccess(quantized, "llama"), "float32", bits, "")
    assert "bit" in type(lm.ffn.down[1]).__name__.lower() or "4bit" in type(lm.ffn.down[1]).__name__
    column = model.model.layers[1].mlp.down_proj.weight[:, 7].detach()
    direction = output_direction(lm, 1, 7)
    err = float((direction - column).norm() / column.norm())
    assert err < (0.05 if bits == "8bit" else 0.25), err
    top, bottom = vocab_projection(lm, 1, 7, k=5)
    assert len(top) == 5 and top[0].logit > bottom[0].logit

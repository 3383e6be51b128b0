"""The GPU paths: run where CUDA is present (a lent GPU machine: scripts/gpu_check.sh), skipped elsewhere.

A small random-weight Llama saved as a folder loads through load_model like any user's model; no
download. Its tokenizer is the built-in model's, or the copy scripts/gpu_bench_pack.sh carries
(CNL_BENCH_TOKENIZER) to a machine without the built-in model.
"""

import os

import pytest

from tests.conftest import save_tiny_llama


@pytest.fixture(scope="session")
def gpu_model_folder(tmp_path_factory):
    from transformers import AutoTokenizer

    carried = os.environ.get("CNL_BENCH_TOKENIZER")
    if carried:
        tokenizer = AutoTokenizer.from_pretrained(carried)
    else:
        from cnl_core.model.loading import _builtin_folder
        from cnl_core.options import DEFAULT_MODEL

        tokenizer = AutoTokenizer.from_pretrained(_builtin_folder(DEFAULT_MODEL))
    # Wide FFNs and tied embeddings: the layers outweigh the 49,152-row embedding, so that device_map='auto' with
    # half the weights' memory on the GPU places some layers there and the rest in RAM (accelerate keeps room on
    # the GPU for the largest module, here the embedding, and fills the GPU in module order).
    return save_tiny_llama(
        tmp_path_factory.mktemp("gpu-llama"),
        tokenizer,
        hidden_size=256,
        intermediate_size=4096,
        num_hidden_layers=8,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
    )

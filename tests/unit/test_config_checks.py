"""Model configs and weight files checked before anything is built (issue #25): a sentence naming the value,
at once, for every bad shape; the memory estimate costs O(1) in the layer count; pickle-only folders refused."""

import json
from pathlib import Path

import pytest
import torch

from cnl_core.errors import ModelLoadError
from cnl_core.model.loading import ModelSpec, load_model, memory_plan

BASE = dict(
    model_type="llama",
    vocab_size=100,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    intermediate_size=128,
)


def _folder(tmp_path, **changes):
    (tmp_path / "config.json").write_text(json.dumps({**BASE, **changes}))
    return str(tmp_path)


@pytest.mark.parametrize(
    "changes,words",
    [
        ({"hidden_size": 65}, "hidden_size 65 is not a multiple of num_attention_heads 4"),
        ({"hidden_size": "64"}, "hidden_size: '64' is not a number"),
        ({"hidden_size": 64.5}, "hidden_size: 64.5 is not a whole number"),
        ({"num_attention_heads": 0}, "num_attention_heads: 0 is out of range"),
        ({"intermediate_size": -5}, "intermediate_size: -5 is out of range"),
        ({"num_hidden_layers": -1}, "num_hidden_layers: -1 is out of range"),
        ({"num_key_value_heads": 3}, "num_attention_heads 4 is not a multiple of num_key_value_heads 3"),
        ({"vocab_size": True}, "vocab_size: 'True' is not a number"),
        (
            {"num_hidden_layers": 100_000},
            "num_hidden_layers: 100,000 is out of range; give a whole number from 1 to 1024",
        ),
        ({"hidden_size": 10**7, "num_attention_heads": 1}, "hidden_size: 10,000,000 is out of range"),
    ],
)
def test_bad_model_configs_are_refused_with_the_offending_value(tmp_path, changes, words, monkeypatch):
    import cnl_core.model.memory as memory

    monkeypatch.setattr(
        memory, "_count", lambda config: pytest.fail("a model was built from a refused config"), raising=False
    )
    with pytest.raises(ModelLoadError, match=words):
        memory_plan(ModelSpec(_folder(tmp_path, **changes), device="cpu"))


def test_gpt2_style_names_are_checked_too(tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 30, "n_head": 4, "n_layer": 2}))
    with pytest.raises(ModelLoadError, match="hidden_size 30 is not a multiple of num_attention_heads 4"):
        memory_plan(ModelSpec(str(folder), device="cpu"))


@pytest.mark.parametrize(
    "content,words",
    [
        (b"\x00\x01\xff\xfe\x00binary", "is a binary file, not JSON text"),
        (b"{not json", "is not valid JSON: .* at line 1"),
        (b"[1, 2]", "must hold a JSON object, not a list"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
    ],
)
def test_a_config_file_that_is_not_a_config_says_what_it_is(tmp_path, content, words):
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(ModelLoadError, match=words):
        memory_plan(ModelSpec(str(tmp_path), device="cpu"))


def test_the_memory_estimate_builds_two_layers_whatever_the_layer_count(monkeypatch):
    """O(1) in the layer count: a config of 100,000 layers once took 178 s and 4.3 GB to be counted."""
    from transformers import LlamaConfig
    from transformers.models.llama import modeling_llama

    from cnl_core.model.memory import model_size

    built, real_init = [], modeling_llama.LlamaDecoderLayer.__init__
    monkeypatch.setattr(
        modeling_llama.LlamaDecoderLayer, "__init__", lambda self, *a, **k: built.append(1) or real_init(self, *a, **k)
    )
    v, h, i, layers = 100, 64, 128, 1000
    size = model_size(
        LlamaConfig(
            vocab_size=v,
            hidden_size=h,
            intermediate_size=i,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=4,
        )
    )
    per_layer = 4 * h * h + 3 * h * i  # q, k, v, o and the gated FFN
    assert size.quantizable == layers * per_layer  # counted exactly, from two layers
    assert size.params == 2 * v * h + layers * (per_layer + 2 * h) + h  # embeddings, head, norms
    assert len(built) <= 3


def test_a_pickle_only_folder_is_refused_unless_the_operator_allows_pickle(tiny_model_folder, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from cnl_core import shared_mode
    from cnl_core.shared_mode import Policy

    folder = tmp_path / "pickled"
    folder.mkdir()
    for f in Path(tiny_model_folder).iterdir():  # the same model, its weights as a pickle file
        if f.is_file() and f.suffix != ".safetensors":
            (folder / f.name).write_bytes(f.read_bytes())
    torch.save(load_file(f"{tiny_model_folder}/model.safetensors"), folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pickled files only \\(pytorch_model.bin\\).*CNL_ALLOW_PICKLE=1"):
        load_model(ModelSpec(str(folder), device="cpu"))
    monkeypatch.setattr(shared_mode, "_CURRENT", Policy(allow_pickle=True))  # the operator's explicit opt-in
    assert load_model(ModelSpec(str(folder), device="cpu")).grid.n_layers == 2


def test_a_loaded_model_stops_at_its_next_step_when_its_job_is_cancelled(tiny_model_folder):
    import threading

    from cnl_core.errors import Cancelled
    from cnl_core.progress import cancel_scope

    lm = load_model(ModelSpec(tiny_model_folder, device="cpu"))
    ids = torch.tensor([[1, 2, 3]])
    cancel = threading.Event()
    with cancel_scope(cancel):
        lm.model(input_ids=ids)  # runs
        cancel.set()
        with pytest.raises(Cancelled), lm.lock:
            lm.model(input_ids=ids)
    lm.model(input_ids=ids)  # outside the job's scope the model runs again
    assert lm.lock.acquire(timeout=1)  # and the lock was released on the way out
    lm.lock.release()

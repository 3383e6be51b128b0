"""Batched greedy generation against the plainest reference: one prompt, no cache, full recompute.

Tiny random-weight models of every adapter-table architecture check the plumbing (shared prefix,
pads between prefix and tail, positions, reserved cache, rows leaving the batch); the real model's
answers are checked in tests/integration/test_shared_context.py.
"""

import pytest
import torch

from cnl_core.model import generation
from cnl_core.model.architectures import FFNAccess
from cnl_core.model.generation import greedy_generate, shared_prefix_length
from cnl_core.model.loading import LoadedModel, ModelSpec

from .test_architectures import TYPES, tiny_model

EOS, PAD = 2, 0


class CharTokenizer:
    """One token per character, ids 3..62, so any tiny model's 64-token vocabulary fits."""

    pad_token_id, eos_token_id = PAD, EOS

    def __call__(self, text: str) -> dict:
        return {"input_ids": [3 + ord(c) % 60 for c in text]}

    def decode(self, ids, skip_special_tokens=False) -> str:
        return "".join(chr(ord("a") + (i % 26)) for i in ids if not (skip_special_tokens and i in (PAD, EOS)))


def tiny_lm(model_type: str) -> LoadedModel:
    model = tiny_model(model_type)
    model.generation_config.eos_token_id = EOS
    return LoadedModel(ModelSpec(model_type), model, CharTokenizer(), model_type, FFNAccess(model, model_type),
                       "float32", "none", "tiny")


def reference(lm: LoadedModel, prompt: str, n: int) -> list[int]:
    ids = lm.tokenizer(prompt)["input_ids"]
    out = []
    with torch.no_grad():
        for _ in range(n):
            t = int(lm.model(input_ids=torch.tensor([ids + out])).logits[0, -1].argmax())
            out.append(t)
            if t == EOS:
                break
    return out


PROMPTS = ["shared few-shot prefix. q1: ab", "shared few-shot prefix. q2: a much longer question", "shared few-shot prefix. q3"]


def test_shared_prefix_length_leaves_every_row_a_token():
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix_length([[7], [7, 8]]) == 0
    assert shared_prefix_length([[1, 2], [3, 4]]) == 0


@pytest.mark.parametrize("tails", ["one_by_one", "padded"])
@pytest.mark.parametrize("model_type", TYPES)
def test_batched_generation_equals_one_prompt_at_a_time(model_type, tails, monkeypatch):
    if tails == "padded":  # the GPU strategy (and the CPU's for short tails)
        monkeypatch.setattr(generation, "_one_by_one", lambda cache, device, tails: False)
    else:  # the CPU strategy for long tails of mixed length
        monkeypatch.setattr(generation, "_one_by_one", lambda cache, device, tails: generation._plain_dynamic(cache))
    lm = tiny_lm(model_type)
    batched = greedy_generate(lm, PROMPTS, max_new_tokens=6, stop_strings=())
    assert batched == [reference(lm, p, 6) for p in PROMPTS]
    assert not any("forward" in vars(m) for m in lm.model.modules())  # the CPU linear swap is undone


def test_rows_stop_at_their_own_stop_string():
    lm = tiny_lm("llama")
    free = greedy_generate(lm, PROMPTS, max_new_tokens=8, stop_strings=())
    stop = lm.tokenizer.decode(free[1][2:4])  # a string that row 1 produces at its 4th token
    stopped = greedy_generate(lm, PROMPTS, max_new_tokens=8, stop_strings=(stop,))
    assert stopped[1] == free[1][:4]
    for got, full in zip(stopped, free):  # the other rows are unchanged up to wherever they stopped
        assert got == full[: len(got)]


def test_an_existing_instance_forward_is_left_in_place():
    lm = tiny_lm("llama")
    head = lm.model.lm_head
    wrapped = head.forward  # what accelerate's device-map hooks look like: an instance attribute
    head.forward = wrapped
    greedy_generate(lm, PROMPTS[:2], max_new_tokens=2, stop_strings=())
    assert vars(head)["forward"] is wrapped


def test_short_tails_share_one_padded_pass_and_long_mixed_ones_run_alone():
    from transformers.cache_utils import DynamicCache

    cache = DynamicCache()
    cpu = torch.device("cpu")
    assert not generation._one_by_one(cache, cpu, [[1] * 10, [1] * 14, [1] * 12])  # 10 pads < two passes
    assert generation._one_by_one(cache, cpu, [[1] * 40, [1] * 300, [1] * 120])  # 440 pads > two passes
    assert not generation._one_by_one(None, cpu, [[1] * 40, [1] * 300])  # nothing shared: one pass

"""Batched greedy generation against the plainest reference: one prompt, no cache, full recompute.

Tiny random-weight models of every adapter-table architecture check the plumbing (shared prefix,
pads between prefix and tail, positions, reserved cache, rows leaving the batch); the real model's
answers are checked in tests/integration/test_shared_context.py.
"""

import pytest
import torch

from cnl_core.model import context_attention, decoding, generation
from cnl_core.model.architectures import FFNAccess
from cnl_core.model.generation import greedy_generate, prompts_context_length
from cnl_core.model.hooks import Edit, Intervention
from cnl_core.model.loading import LoadedModel, ModelSpec
from cnl_core.model.neurons import NeuronSet

from .test_architectures import TYPES, tiny_model

EOS, PAD = 2, 0


class CharTokenizer:
    """One token per character, ids 3..62, so any tiny model's 64-token vocabulary fits."""

    pad_token_id, eos_token_id = PAD, EOS

    def __call__(self, text: str | list[str], **_) -> dict:  # one text or a batch, as a Hugging Face tokenizer
        ids = lambda t: [3 + ord(c) % 60 for c in t]  # noqa: E731
        return {"input_ids": ids(text) if isinstance(text, str) else [ids(t) for t in text]}

    def decode(self, ids, skip_special_tokens=False) -> str:
        return "".join(chr(ord("a") + (i % 26)) for i in ids if not (skip_special_tokens and i in (PAD, EOS)))


def tiny_lm(model_type: str) -> LoadedModel:
    model = tiny_model(model_type)
    model.generation_config.eos_token_id = EOS
    return LoadedModel(
        ModelSpec(model_type),
        model,
        CharTokenizer(),
        model_type,
        FFNAccess(model, model_type),
        "float32",
        "none",
        "tiny",
    )


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


PROMPTS = [
    "shared few-shot prefix. q1: ab",
    "shared few-shot prefix. q2: a much longer question",
    "shared few-shot prefix. q3",
]


def test_prompts_context_length_leaves_every_row_a_token():
    assert prompts_context_length([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert prompts_context_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert prompts_context_length([[7], [7, 8]]) == 0
    assert prompts_context_length([[1, 2], [3, 4]]) == 0


@pytest.mark.parametrize("tails", ["one_by_one", "padded"])
@pytest.mark.parametrize("model_type", TYPES)
def test_batched_generation_equals_one_prompt_at_a_time(model_type, tails, monkeypatch):
    if tails == "padded":  # the GPU strategy (and the CPU's for short tails)
        monkeypatch.setattr(generation, "_one_by_one", lambda cache, device, tails: False)
    else:  # the CPU strategy for long tails of mixed length
        monkeypatch.setattr(generation, "_one_by_one", lambda cache, device, tails: generation.plain_dynamic(cache))
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


def gqa_llama() -> LoadedModel:
    """Four query heads reading two key/value heads, as SmolLM2 and most current models do."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=24,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.generation_config.eos_token_id = EOS
    return LoadedModel(
        ModelSpec("llama"), model, CharTokenizer(), "llama", FFNAccess(model, "llama"), "float32", "none", "tiny"
    )


@pytest.mark.parametrize("shared_context", [True, False])
def test_grouped_query_heads_decode_as_one_prompt_at_a_time(shared_context, monkeypatch):
    monkeypatch.setattr(context_attention, "eligible", lambda model: shared_context)
    lm = gqa_llama()
    assert greedy_generate(lm, PROMPTS, max_new_tokens=6, stop_strings=()) == [reference(lm, p, 6) for p in PROMPTS]


def test_shared_context_attention_is_used_where_it_applies():
    assert context_attention.eligible(gqa_llama().model)
    assert not context_attention.eligible(tiny_lm("gpt2").model)  # not verified for it: contexts are copied per row
    assert not context_attention.eligible(tiny_lm("gemma2").model)  # sliding windows and soft-capping


@pytest.mark.parametrize("shared_context", [True, False])
def test_conditions_decoded_together_equal_each_decoded_alone(shared_context, monkeypatch):
    """Rows of several interventions in one decoding batch, each with its own neurons changed, give what each
    intervention gives alone (the evaluator decodes baseline, intervened and controls this way)."""
    monkeypatch.setattr(context_attention, "eligible", lambda model: shared_context)
    lm = gqa_llama()
    width = lm.grid.width
    ivs = [
        None,
        Intervention(NeuronSet.from_pairs(lm.grid, [[0, i] for i in range(0, width, 2)]), "zero"),
        Intervention(NeuronSet.from_pairs(lm.grid, [[1, i] for i in range(width // 2)]), "amplify", 4.0),
    ]
    rows = [lm.tokenizer(p)["input_ids"] for p in PROMPTS]
    alone, parts = [], []
    for iv in ivs:
        alone.append(greedy_generate(lm, PROMPTS, max_new_tokens=8, stop_strings=(), iv=iv))
        with torch.no_grad():
            parts.append(generation.prompt_pass(lm, rows, Edit.of(lm, iv)))
    assert alone[0] != alone[1] and alone[0] != alone[2]  # the interventions change the answers
    assert generation.decode(lm, parts, 8, (), ivs) == alone


def test_parts_share_a_decoding_batch_up_to_the_row_limit(monkeypatch):
    monkeypatch.setattr(generation, "MAX_DECODE_ROWS", 20)
    assert generation._decode_batches([8, 8, 8, 8], together=True) == [slice(0, 2), slice(2, 4)]
    assert generation._decode_batches([30, 8], together=True) == [slice(0, 1), slice(1, 2)]  # a big part alone
    assert generation._decode_batches([4, 4, 4], together=False) == [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert generation._decode_batches([4], together=False) == [slice(0, 1)]


def test_guessed_tokens_are_the_row_own_earlier_continuation():
    assert decoding._draft([5, 6, 7, 8, 9, 1, 5, 6, 7]) == [8, 9, 1, 5, 6]  # after the last "5 6 7"
    assert decoding._draft([1, 2, 3, 4, 2]) == [3, 4, 2]  # "7 ... 2" never seen: the last token alone
    assert decoding._draft([1, 2, 3]) == []


@pytest.mark.parametrize("shared_context", [True, False])
def test_checked_guesses_save_passes_and_change_nothing(shared_context, monkeypatch):
    monkeypatch.setattr(context_attention, "eligible", lambda model: shared_context)
    lm = gqa_llama()
    passes = []
    lm.model.get_output_embeddings().register_forward_hook(lambda *a: passes.append(1))

    def run():
        passes.clear()
        return greedy_generate(lm, PROMPTS[:2], max_new_tokens=24, stop_strings=()), len(passes)

    guessed, with_guesses = run()
    monkeypatch.setattr(decoding, "DRAFT_ROWS", 0)
    plain, without = run()
    assert guessed == plain == [reference(lm, p, 24) for p in PROMPTS[:2]]
    assert with_guesses < without  # guesses were kept: fewer passes for the same tokens


def test_guesses_under_an_answer_position_intervention_change_nothing(monkeypatch):
    """Every token a decoding step checks predicts an answer token: the intervention applies to all of them."""
    lm = gqa_llama()
    iv = Intervention(
        NeuronSet.from_pairs(lm.grid, [[1, i] for i in range(lm.grid.width // 2)]), "amplify", 4.0, positions="answer"
    )

    def run():
        return greedy_generate(lm, PROMPTS[:1], max_new_tokens=24, stop_strings=(), iv=iv)

    guessed = run()
    monkeypatch.setattr(decoding, "DRAFT_ROWS", 0)
    assert guessed == run()


SLIDING = ("gemma2", "gemma3_text", "mistral")  # sliding-window caches are not cut by hand: generated per condition


@pytest.mark.parametrize("model_type", [t for t in TYPES if t not in SLIDING])
def test_every_architecture_decodes_conditions_together_as_alone(model_type):
    """Per-row neuron factors whatever shape a layer hands its down projection (OPT flattens rows and tokens)."""
    lm = tiny_lm(model_type)
    ivs = [
        None,
        Intervention(NeuronSet.from_pairs(lm.grid, [[1, i] for i in range(lm.grid.width // 2)]), "amplify", 9.0),
    ]
    rows = [lm.tokenizer(p)["input_ids"] for p in PROMPTS]
    alone, parts = [], []
    for iv in ivs:
        alone.append(greedy_generate(lm, PROMPTS, max_new_tokens=6, stop_strings=(), iv=iv))
        with torch.no_grad():
            parts.append(generation.prompt_pass(lm, rows, Edit.of(lm, iv)))
    assert isinstance(parts[0], generation.Prompted)
    assert generation.decode(lm, parts, 6, (), ivs) == alone


def test_mistral_without_a_sliding_window_reads_shared_contexts_once_and_matches():
    """Mistral's later releases have no sliding window: the shared-context attention applies and must agree."""
    from transformers import AutoModelForCausalLM, MistralConfig

    config = MistralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=24,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=64,
        sliding_window=None,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(2)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.generation_config.eos_token_id = EOS
    lm = LoadedModel(
        ModelSpec("mistral"), model, CharTokenizer(), "mistral", FFNAccess(model, "mistral"), "float32", "none", "tiny"
    )
    assert context_attention.eligible(model)
    assert greedy_generate(lm, PROMPTS, max_new_tokens=6, stop_strings=()) == [reference(lm, p, 6) for p in PROMPTS]

"""Our batched greedy decoder against transformers' own `model.generate(do_sample=False)`, token for token.

model/generation.py, kv_cache.py and context_attention.py build caches by hand and swap the attention function
through transformers internals (DynamicLayer, the attention and mask registries, `_attn_implementation`): a
transformers release that changes them could change our answers without an error. `generate` is the public
reference. Both sides get the same prompts of different lengths in one batch (`generate` left-padded, as
transformers asks of decoder-only models), and the same intervention: ours through `greedy_generate(iv=...)` and
the evaluator's gold pass + `decode`, the reference inside `intervene` (hooks on every pass `generate` runs; an
answer-position intervention changes each row's last position, the one that predicts the next token).
Tiny random-weight models of every adapter-table architecture: plumbing, not behaviour. The sliding-window
architectures run twice: with their default window (wider than these prompts) and with a 4-token window, which
bites; there a shared context run apart with the tails padded after it gave other tokens than `generate` (the
window counted the pads), so such models now run their prompts whole (generation.prompt_pass).
"""

import pytest
import torch
from transformers import CONFIG_MAPPING, AutoModelForCausalLM

from cnl_core.model import generation
from cnl_core.model.architectures import FFNAccess
from cnl_core.model.forward import teacher_forced_logprob
from cnl_core.model.generation import decode, greedy_generate
from cnl_core.model.hooks import Edit, Intervention, intervene
from cnl_core.model.loading import LoadedModel, ModelSpec
from cnl_core.model.neurons import NeuronSet

from .test_architectures import SPECIAL, TINY, TYPES
from .test_generation import EOS, PAD, CharTokenizer, tiny_lm

NEW_TOKENS = 8
BATCHES = {
    "shared prefix": [  # a few-shot prefix every prompt shares, run once by our decoder
        "shared few-shot prefix. q1: ab",
        "shared few-shot prefix. q2: a much longer question",
        "shared few-shot prefix. q3",
    ],
    "nothing shared": ["a", "another, longer prompt", "mid length"],
}
CONDITIONS = ["unmodified", "zero, every position", "amplify, answer positions"]
WINDOWED = ("gemma2", "gemma3_text", "mistral")  # sliding-window attention: their caches are not cut by hand
CASES = [*TYPES, *(f"{t}, window 4" for t in WINDOWED)]


def build(case: str) -> LoadedModel:
    """The case's tiny model, its down projections x30: at random initialisation the FFN's share of the residual
    stream is too small for an intervention to move a greedy token, and a comparison under an intervention that
    changes nothing would prove nothing."""
    model_type, _, window = case.partition(", window ")
    if window:
        config = CONFIG_MAPPING[model_type](**TINY, **SPECIAL, sliding_window=int(window))
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config).eval()
        model.generation_config.eos_token_id = EOS
        lm = LoadedModel(
            ModelSpec(model_type),
            model,
            CharTokenizer(),
            model_type,
            FFNAccess(model, model_type),
            "float32",
            "none",
            "",
        )
    else:
        lm = tiny_lm(model_type)
    with torch.no_grad():
        for layer in range(lm.grid.n_layers):
            lm.ffn.down_weight(layer).mul_(30.0)
    return lm


def condition(lm: LoadedModel, name: str) -> Intervention | None:
    grid = lm.grid
    if name == "unmodified":
        return None
    if name == "zero, every position":
        first_half = [[layer, i] for layer in range(grid.n_layers) for i in range(grid.width // 2)]
        return Intervention(NeuronSet.from_pairs(grid, first_half), "zero")
    half = [[layer, i] for layer in range(grid.n_layers) for i in range(0, grid.width, 2)]
    return Intervention(NeuronSet.from_pairs(grid, half), "amplify", 9.0, positions="answer")


def until_eos(tokens: list[int]) -> list[int]:
    """New tokens up to and including the first EOS (what our decoder returns; `generate` pads after it)."""
    return tokens[: tokens.index(EOS) + 1] if EOS in tokens else tokens


def reference(lm: LoadedModel, prompts: list[str], iv: Intervention | None) -> list[list[int]]:
    """`generate`'s greedy tokens for the left-padded batch, with `iv` applied to every pass it runs."""
    rows = [lm.tokenizer(p)["input_ids"] for p in prompts]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, width - len(row) :] = torch.tensor(row)
        mask[b, width - len(row) :] = 1
    with intervene(lm, iv), torch.no_grad():
        out = lm.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=PAD,
            eos_token_id=EOS,
        )
    return [until_eos(row[width:].tolist()) for row in out]


@pytest.fixture(scope="module")
def models() -> dict[str, LoadedModel]:
    return {case: build(case) for case in CASES}


@pytest.mark.parametrize("tails", ["padded", "one_by_one"])
@pytest.mark.parametrize("batch", list(BATCHES))
@pytest.mark.parametrize("case", CASES)
def test_greedy_generate_equals_model_generate(models, case, batch, tails, monkeypatch):
    """Both prompt-pass strategies (the GPU's one padded pass, the CPU's tails one by one after the shared
    prefix), each under no intervention, zeroing, and amplifying at the answer positions."""
    keep = tails == "one_by_one"
    monkeypatch.setattr(generation, "_one_by_one", lambda cache, device, t: keep and generation.plain_dynamic(cache))
    lm, prompts = models[case], BATCHES[batch]
    got = {name: greedy_generate(lm, prompts, NEW_TOKENS, (), iv=condition(lm, name)) for name in CONDITIONS}
    for name in CONDITIONS:
        assert got[name] == reference(lm, prompts, condition(lm, name)), name
    assert any(got[name] != got["unmodified"] for name in CONDITIONS[1:])  # the hooks reach the answers


@pytest.mark.parametrize("model_type", [t for t in TYPES if t not in WINDOWED])
def test_the_evaluators_gold_pass_then_decode_equals_model_generate(models, model_type):
    """Evaluation keeps the prompts' keys and values from the gold-answer pass and decodes every condition in one
    batch (`decode`); architectures whose cache cannot be cut by hand (a sliding window) generate per condition
    instead, which the test above covers."""
    lm, prompts = models[model_type], BATCHES["shared prefix"]
    ivs = [condition(lm, name) for name in CONDITIONS]
    with lm.lock:
        parts = [
            teacher_forced_logprob(lm, Edit.of(lm, iv), prompts, [" xy", " z", " abc"], 64, keep_prompts=True).prompted
            for iv in ivs
        ]
        assert all(p is not None for p in parts)
        got = decode(lm, parts, NEW_TOKENS, (), ivs)
    assert got == [reference(lm, prompts, iv) for iv in ivs]

"""The evaluator's batched generation gives the answers a one-prompt-at-a-time `generate` loop gives."""

import torch

from cnl_core.answers import STOP_STRINGS
from cnl_core.datasets import get_dataset
from cnl_core.evaluation import fewshot_prefix
from cnl_core.generation import greedy_generate


def test_batched_answers_equal_one_at_a_time_generate(lm):
    rows = get_dataset("gsm8k").rows()
    prefix = fewshot_prefix(rows[10:12])  # ends "\n\n": tokenized apart from "Question:" it would differ
    prompts = [prefix + s.prompt for s in rows[:3]]
    tok = lm.tokenizer
    expected = []
    for p in prompts:
        enc = tok(p, return_tensors="pt")
        with torch.no_grad():
            out = lm.model.generate(**enc, max_new_tokens=20, do_sample=False, pad_token_id=tok.pad_token_id,
                                    stop_strings=list(STOP_STRINGS), tokenizer=tok)
        expected.append(out[0, enc["input_ids"].shape[1]:].tolist())
    assert greedy_generate(lm, prompts, max_new_tokens=20, stop_strings=STOP_STRINGS) == expected

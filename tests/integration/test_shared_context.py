"""The evaluator's shared few-shot context changes nothing but the speed, on the real model."""

import pytest
import torch

from cnl_core.data.samples import get_dataset
from cnl_core.errors import ParameterError
from cnl_core.evaluate import accuracy as evaluation
from cnl_core.evaluate.accuracy import EvalConfig, fewshot_prefix
from cnl_core.evaluate.answers import STOP_STRINGS
from cnl_core.model import forward, generation
from cnl_core.model.generation import greedy_generate
from cnl_core.model.hooks import Edit, Intervention

from .test_interventions_eval import some_neurons

ROWS = get_dataset("gsm8k").rows()
SHOTS = ROWS[10:12]  # two worked examples: a shared context of over 300 tokens, where the conditions differ
PREFIX = fewshot_prefix(SHOTS[:1])  # one (over 100 tokens, at a third of the cost); ends "\n\n": tokenized apart
# from "Question:" it would differ


def test_batched_answers_equal_one_at_a_time_generate(lm):
    prompts = [PREFIX + s.prompt for s in ROWS[:2]]
    tok = lm.tokenizer
    expected = []
    for p in prompts:
        enc = tok(p, return_tensors="pt")
        with torch.no_grad():
            out = lm.model.generate(
                **enc,
                max_new_tokens=12,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                stop_strings=list(STOP_STRINGS),
                tokenizer=tok,
            )
        expected.append(out[0, enc["input_ids"].shape[1] :].tolist())
    assert greedy_generate(lm, prompts, max_new_tokens=12, stop_strings=STOP_STRINGS) == expected


@pytest.mark.parametrize("positions", [None, "all", "answer"])
def test_shared_context_gives_the_gold_loglik_of_full_passes(lm, monkeypatch, positions):
    iv = None if positions is None else Intervention(some_neurons(lm), "zero", positions=positions)
    chunk = ROWS[:2]

    def gold():
        return torch.tensor(evaluation._gold_loglik(lm, Edit.of(lm, iv), chunk, PREFIX, EvalConfig())[0])

    batch = forward.encode_teacher_forced(
        lm.tokenizer, [(PREFIX + s.prompt, s.answer) for s in chunk], 2048, 512, lm.input_device
    )
    assert forward.batch_context_length(batch) > 100  # the worked example, shared
    shared = gold()
    monkeypatch.setattr(forward, "batch_context_length", lambda batch, least=16: 0)
    torch.testing.assert_close(shared, gold(), atol=1e-4, rtol=1e-4)


def test_conditions_evaluated_together_equal_each_run_alone(lm, monkeypatch):
    """The evaluator's fast path (the gold pass keeps the prompts' keys and values; every condition's rows decode
    in one batch over shared contexts) gives the answers and log-likelihoods of generating each condition
    afresh, on the real model: interventions at every position and at answer positions only, side by side."""
    spec = get_dataset("gsm8k")
    neurons = some_neurons(lm)
    # amplifying (zeroing through the shared context: test_shared_context_gives_the_gold_loglik_of_full_passes)
    ivs = [None, *(Intervention(neurons, "amplify", 3.0, positions) for positions in ("all", "answer"))]
    cfg = EvalConfig(max_new_tokens=8)  # the conditions' answers part within 6 tokens
    fast = evaluation.evaluate_conditions(lm, spec, ROWS[:2], SHOTS, cfg, ivs)
    monkeypatch.setattr(forward, "plain_dynamic", lambda cache: False)  # no prompts kept: generate each afresh
    slow = [evaluation.evaluate_samples(lm, spec, ROWS[:2], SHOTS, cfg, iv) for iv in ivs]
    assert [[r.output for r in c] for c in fast] == [[r.output for r in c] for c in slow]
    assert [r.output for r in fast[0]] != [r.output for r in fast[1]]  # the conditions differ
    assert [r.output for r in fast[1]] != [r.output for r in fast[2]]  # and so do the two kinds of positions
    torch.testing.assert_close(
        torch.tensor([[r.gold_loglik for r in c] for c in fast]),
        torch.tensor([[r.gold_loglik for r in c] for c in slow]),
        atol=1e-5,
        rtol=1e-5,
    )


def test_conditions_decode_fewer_at_a_time_where_memory_is_short_with_the_same_results(lm, monkeypatch):
    """Where the free memory holds one condition's keys and values, conditions are kept and decoded one at a time
    (at least one, whatever the memory says), and every answer and log-likelihood is as when all fit together."""
    spec, cfg = get_dataset("add1"), EvalConfig()  # short prompts: what is shown holds for any length
    rows, shots = spec.rows()[10:14], spec.rows()[:3]
    ivs = [None, Intervention(some_neurons(lm), "amplify", 3.0)]
    parts_per_decode = []
    real_decode = evaluation.decode
    monkeypatch.setattr(
        evaluation,
        "decode",
        lambda lm_, parts, *a, **k: parts_per_decode.append(len(parts)) or real_decode(lm_, parts, *a, **k),
    )
    together = evaluation.evaluate_conditions(lm, spec, rows, shots, cfg, ivs)
    monkeypatch.setattr(generation, "free_bytes_for", lambda model: 1)
    apart = evaluation.evaluate_conditions(lm, spec, rows, shots, cfg, ivs)
    assert parts_per_decode == [2, 1, 1]
    assert [[(r.output, r.gold_loglik) for r in c] for c in apart] == [
        [(r.output, r.gold_loglik) for r in c] for c in together
    ]


def test_out_of_memory_retries_the_batch_in_halves_with_the_same_results_and_says_so_at_one(lm, monkeypatch):
    """A batch that runs out of GPU memory is evaluated again in halves (nothing of it counted twice, its hooks
    gone); running out while decoding also halves the rows that decode together; another error is not retried;
    where one sample decoded alone does not fit, a sentence says what to change."""
    spec, cfg = get_dataset("add1"), EvalConfig(batch_size=4)
    rows, shots = spec.rows()[10:14], spec.rows()[:5]
    ivs = [None, Intervention(some_neurons(lm), "zero")]
    plain = evaluation.evaluate_conditions(lm, spec, rows, shots, cfg, ivs)

    def same(results):
        assert [[(r.id, r.output, r.correct) for r in c] for c in results] == [
            [(r.id, r.output, r.correct) for r in c] for c in plain
        ]
        torch.testing.assert_close(
            torch.tensor([[r.gold_loglik for r in c] for c in results]),
            torch.tensor([[r.gold_loglik for r in c] for c in plain]),
            atol=1e-5,
            rtol=1e-5,
        )

    real_gold, real_answers, seen = evaluation._gold_loglik, evaluation._answers, []

    def gold_that_fits_two(lm_, edit, chunk, *args):  # the second condition's pass, under its hooks, fails
        seen.append(len(chunk))
        if len(chunk) > 2 and len(seen) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_gold(lm_, edit, chunk, *args)

    monkeypatch.setattr(evaluation, "_gold_loglik", gold_that_fits_two)
    updates = []
    halves = evaluation.evaluate_conditions(
        lm, spec, rows, shots, cfg, ivs, progress=lambda done, total, msg: updates.append((done, msg))
    )
    assert seen == [4, 4, 2, 2, 2, 2]  # the batch of 4 failed at its second condition, then halves
    same(halves)
    assert [done for done, msg in updates if "out of memory; batches of 2" in msg] == [0]  # the failed batch uncounted
    assert updates[-1][0] == 2 * len(ivs) * len(rows)
    assert all(len(m._forward_pre_hooks) == 0 for m in lm.ffn.down)

    decoded = []

    def answers_that_fit_two_rows(lm_, parts, *args):
        decoded.append(len(parts) * len(args[2]))  # conditions x questions decoding together
        if decoded[-1] > 2:
            raise RuntimeError("CUDA error: out of memory")
        return real_answers(lm_, parts, *args)

    monkeypatch.setattr(evaluation, "_gold_loglik", real_gold)
    monkeypatch.setattr(evaluation, "_answers", answers_that_fit_two_rows)
    same(evaluation.evaluate_conditions(lm, spec, rows, shots, cfg, ivs))
    assert decoded == [8, 4, 2, 2, 2, 2]  # batches of 4, 2, then 1 with both conditions together

    monkeypatch.setattr(evaluation, "_answers", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):  # not a memory error: not retried
        evaluation.evaluate_conditions(lm, spec, rows, shots, cfg, ivs)

    def never_fits(*_):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(evaluation, "_gold_loglik", never_fits)
    with pytest.raises(ParameterError, match="one sample of add1 ran out of memory. Load the model in 8-bit"):
        evaluation.evaluate_conditions(lm, spec, rows[:1], shots, cfg, ivs)

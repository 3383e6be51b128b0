"""Scores on the real model, and the on-disk cache: hits, extension, resume, corruption."""

import pytest
import torch

from cnl_core.data.samples import get_dataset
from cnl_core.locate.collect import collect_scores
from cnl_core.locate.scorers import ScoreConfig, score_batch
from cnl_core.locate.select import LocateParams, locate

ARITH = get_dataset("arithmetic")


@pytest.mark.parametrize("method", ["activation", "grad_x_act", "integrated_gradients"])
def test_methods_give_finite_scores_of_the_grid_shape(lm, method):
    rows = ARITH.rows()[:2]
    scores, gold = score_batch(lm, rows, ScoreConfig(method=method, ig_steps=3))
    assert scores.shape == (2, 30, 1536) and torch.isfinite(scores).all()
    assert scores.abs().sum() > 0 and (gold < 0).all()
    assert all(len(m._forward_pre_hooks) == 0 for m in lm.ffn.down)


def test_grad_x_act_agrees_with_integrated_gradients_on_top_neurons(lm):
    rows = ARITH.rows()[10:12]
    gx, _ = score_batch(lm, rows, ScoreConfig(method="grad_x_act"))
    ig, _ = score_batch(lm, rows, ScoreConfig(method="integrated_gradients", ig_steps=6))
    for a, b in zip(gx, ig):
        top = a.flatten().abs().topk(100).indices
        sign_agree = (a.flatten()[top].sign() == b.flatten()[top].sign()).float().mean()
        rank_overlap = len(set(top.tolist()) & set(b.flatten().abs().topk(100).indices.tolist())) / 100
        assert sign_agree > 0.8
        assert rank_overlap > 0.3  # chance is 100 / 46080


def test_batching_does_not_change_scores(lm):
    rows = ARITH.rows()[20:23]
    together, _ = score_batch(lm, rows, ScoreConfig())
    alone = torch.cat([score_batch(lm, [r], ScoreConfig())[0] for r in rows])
    # float32 kernels round differently for other batch shapes (seen: 4e-4 on scores of magnitude 1 on one
    # AVX-512 CPU); a padding leak would move scores by their own magnitude.
    scale = float(alone.abs().max())
    torch.testing.assert_close(together, alone, atol=2e-3 * scale, rtol=1e-2)
    for a, b in zip(together, alone):
        top_a, top_b = (set(x.flatten().abs().topk(200).indices.tolist()) for x in (a, b))
        assert len(top_a & top_b) >= 190


def test_cache_hit_extension_and_equality_with_fresh_scores(lm, score_cache):
    ids = [r.id for r in ARITH.rows()[:4]]
    first = collect_scores(lm, ARITH, ids[:2], ScoreConfig())
    assert (first.computed, first.reused) == (2, 0)
    again = collect_scores(lm, ARITH, ids[:2], ScoreConfig())
    assert (again.computed, again.reused) == (0, 2)
    assert torch.equal(again.scores, first.scores)
    extended = collect_scores(lm, ARITH, ids, ScoreConfig())
    assert (extended.computed, extended.reused) == (2, 2)
    fresh = collect_scores(lm, ARITH, ids, ScoreConfig(), use_cache=False)
    params = LocateParams(tau=0.1, p=0.5)
    assert locate(extended.scores, params).pairs() == locate(fresh.scores, params).pairs()
    other = collect_scores(lm, ARITH, ids[:1], ScoreConfig(method="activation"))
    assert other.key != first.key and other.computed == 1


def test_corrupted_shard_is_reported_and_recomputed(lm, score_cache):
    ids = [r.id for r in ARITH.rows()[:2]]
    first = collect_scores(lm, ARITH, ids, ScoreConfig(), batch_size=1)
    shards = sorted((score_cache / "scores" / first.key).glob("shard-*.safetensors"))
    assert len(shards) == 2
    raw = bytearray(shards[0].read_bytes())
    raw[-10] ^= 0x55
    shards[0].write_bytes(bytes(raw))
    again = collect_scores(lm, ARITH, ids, ScoreConfig(), batch_size=1)
    assert (again.computed, again.reused) == (1, 1)
    assert any("corrupt" in n for n in again.notes)
    assert torch.allclose(again.scores.float(), first.scores.float(), atol=1e-3)


def test_unwritable_cache_goes_on_without_caching(lm, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("CNL_CACHE_DIR", str(blocker))
    table = collect_scores(lm, ARITH, [ARITH.rows()[0].id], ScoreConfig())
    assert table.computed == 1 and any("cannot be written" in n for n in table.notes)


def test_gold_logprob_on_answer_positions_equals_the_full_logits_computation(lm):
    from cnl_core.model.forward import answer_logprob, encode_teacher_forced, gold_logprob

    pairs = [(s.prompt, s.answer) for s in get_dataset("gsm8k").rows()[:3]]
    batch = encode_teacher_forced(lm.tokenizer, pairs, 384, 128, lm.input_device)
    seen = []
    spy = lm.model.get_output_embeddings().register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape)))
    with torch.no_grad():
        fast = gold_logprob(lm, batch)
        spy.remove()
        full = lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert seen == [(1, int(batch.answer_mask.sum()), full.shape[-1])]  # the head saw the answer positions only
    torch.testing.assert_close(fast, answer_logprob(full, batch), atol=1e-3, rtol=1e-5)


def test_a_batch_is_tokenized_as_each_pair_alone_with_the_same_cuts(lm):
    from cnl_core.model.forward import _token_ids

    tok = lm.tokenizer
    pairs = [(s.prompt, s.answer) for s in get_dataset("gsm8k").rows()[:6]] + [("Question: 2+2?\nAnswer:", "")]
    for cut_p, cut_a in ((2048, 512), (40, 8)):  # nothing cut; prompts cut from the left and answers at the end
        alone = [
            (tok(p)["input_ids"][-cut_p:], tok(a, add_special_tokens=False)["input_ids"][:cut_a] or [tok.eos_token_id])
            for p, a in pairs
        ]
        assert _token_ids(tok, pairs, cut_p, cut_a) == alone
    assert alone[-1][1] == [tok.eos_token_id] and len(alone[0][0]) == 40


def test_activation_and_grad_x_act_equal_their_definitions_on_full_logits(lm):
    """Scores from score_batch against the definitions, computed plainly: the mean activation over the answer
    positions, and the sum over them of activation x gradient of the gold log-probability (full logits)."""
    from cnl_core.model.forward import answer_logprob
    from cnl_core.model.hooks import neuron_hooks

    rows = get_dataset("gsm8k").rows()[:2]
    cfg = ScoreConfig(max_prompt_tokens=200, max_answer_tokens=40)
    batch = cfg.encode(lm, rows)
    mask = batch.answer_mask.unsqueeze(-1).float()
    acts = [None] * lm.grid.n_layers

    def keep(layer, x):
        acts[layer] = x.requires_grad_(True) if not x.requires_grad else x

    with neuron_hooks(lm.ffn, keep), torch.enable_grad():
        logits = lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        grads = torch.autograd.grad(answer_logprob(logits, batch).sum(), acts)
    mean = torch.stack([(x.detach() * mask).sum(1) / mask.sum(1) for x in acts], 1)
    gxa = torch.stack([(x.detach() * g * mask).sum(1) for x, g in zip(acts, grads)], 1)
    for method, expected in (("activation", mean), ("grad_x_act", gxa)):
        scores, _ = score_batch(lm, rows, ScoreConfig(method, max_prompt_tokens=200, max_answer_tokens=40))
        assert scores.dtype == torch.float32 and scores.shape == expected.shape
        torch.testing.assert_close(scores, expected, atol=1e-4 * float(expected.abs().max()), rtol=1e-3)

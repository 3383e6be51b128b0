"""Our activation collection against another engine's on the same batch (nnsight), same numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from bench.figures import _best, _dataset, _model, _samples, _verdict


def alternatives(gpu: bool) -> list:
    """Activation collection against nnsight tracing (installed only in bench/.env by `make bench`).

    One batch: both run one forward pass; ours runs the LM head on answer positions only and, on a
    CPU, like-length samples together instead of one padded pass. A dataset slice: what a user gets
    from each, our collection (longest-first batches too) against the loop one would write with
    nnsight over the same samples in dataset order.
    """
    env = Path(__file__).resolve().parent / ".env"
    if env.is_dir() and str(env) not in sys.path:
        sys.path.append(str(env))
    try:
        from nnsight import NNsight
    except ImportError:
        return [("activation collection vs nnsight trace+save", "nnsight not installed (make bench installs it)", "",
                 ">= 1x", "NOT RUN")]
    from cnl_core.locate.collect import collect_scores
    from cnl_core.locate.scorers import ScoreConfig, score_batch

    lm = _model(gpu)
    wrapped = NNsight(lm.model)
    cfg = ScoreConfig(method="activation")

    def nnsight_batch(samples):
        # Save each layer's down_proj input inside the trace, then the masked mean over answer positions.
        batch = cfg.encode(lm, samples)
        mask = batch.answer_mask.unsqueeze(-1).float()
        saved = []
        with wrapped.trace(batch.input_ids, attention_mask=batch.attention_mask, use_cache=False):
            for i in range(lm.grid.n_layers):
                saved.append(wrapped.model.layers[i].mlp.down_proj.input.save())
        return torch.stack([(x.float() * mask).sum(1).cpu() / mask.sum(1).cpu() for x in saved], 1)

    def close(a, b):
        return float((a.float() - b.float()).abs().max() / b.float().abs().max()) < 1e-3

    rows = []
    one = _samples(8)
    same = close(score_batch(lm, one, cfg)[0], nnsight_batch(one))
    t_theirs = _best(lambda: nnsight_batch(one))
    t_ours = _best(lambda: score_batch(lm, one, cfg))
    rows.append(("activation scores vs nnsight trace+save, one batch of 8 GSM8K samples",
                 f"{t_ours * 1e3:.0f} ms vs {t_theirs * 1e3:.0f} ms; equal: {same}", f"{t_theirs / t_ours:.2f}x",
                 ">= 1x", _verdict(t_theirs / t_ours >= 1.0 and same)))

    many = _samples(24)
    ids, dataset = [s.id for s in many], _dataset("gsm8k")

    def theirs():
        return torch.cat([nnsight_batch(many[i : i + 8]) for i in range(0, len(many), 8)])

    def ours():
        return collect_scores(lm, dataset, ids, cfg, batch_size=8, use_cache=False).scores

    same = close(ours(), theirs())
    t_theirs, t_ours = _best(theirs, repeat=2), _best(ours, repeat=2)
    rows.append(("activation collection vs an nnsight loop, 24 GSM8K samples in batches of 8 (no cache)",
                 f"{t_ours:.1f} s vs {t_theirs:.1f} s; equal: {same}", f"{t_theirs / t_ours:.2f}x", ">= 1x",
                 _verdict(t_theirs / t_ours >= 1.0 and same)))
    return rows

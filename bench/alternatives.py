"""Our activation collection against other engines' on the same batch (nnsight, TransformerLens), same numbers."""

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
        return [
            (
                "activation collection vs nnsight trace+save",
                "nnsight not installed (make bench installs it)",
                "",
                ">= 1x",
                "NOT RUN",
            )
        ]
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

    tol = 1e-3 if lm.dtype == "float32" else 3e-2  # bf16: another attention kernel (theirs passes a mask) rounds apart

    def close(a, b):
        return float((a.float() - b.float()).abs().max() / b.float().abs().max()) < tol

    rows = []
    one = _samples(8)
    same = close(score_batch(lm, one, cfg)[0], nnsight_batch(one))
    t_theirs = _best(lambda: nnsight_batch(one))
    t_ours = _best(lambda: score_batch(lm, one, cfg))
    rows.append(
        (
            "activation scores vs nnsight trace+save, one batch of 8 GSM8K samples",
            f"{t_ours * 1e3:.0f} ms vs {t_theirs * 1e3:.0f} ms; equal: {same}",
            f"{t_theirs / t_ours:.2f}x",
            ">= 1x",
            _verdict(t_theirs / t_ours >= 1.0 and same),
        )
    )

    many = _samples(24)
    ids, dataset = [s.id for s in many], _dataset("gsm8k")

    def theirs():
        return torch.cat([nnsight_batch(many[i : i + 8]) for i in range(0, len(many), 8)])

    def ours():
        return collect_scores(lm, dataset, ids, cfg, batch_size=8, use_cache=False).scores

    same = close(ours(), theirs())
    t_theirs, t_ours = _best(theirs, repeat=2), _best(ours, repeat=2)
    rows.append(
        (
            "activation collection vs an nnsight loop, 24 GSM8K samples in batches of 8 (no cache)",
            f"{t_ours:.1f} s vs {t_theirs:.1f} s; equal: {same}",
            f"{t_theirs / t_ours:.2f}x",
            ">= 1x",
            _verdict(t_theirs / t_ours >= 1.0 and same),
        )
    )
    rows.extend(transformer_lens(lm, gpu, cfg, one))
    return rows


def transformer_lens(lm, gpu: bool, cfg, samples) -> list:
    """Activation collection against TransformerLens 4's `run_with_cache` (its TransformerBridge around the same
    weights, loaded a second time: the bridge switches the model it wraps to eager attention), one batch.

    TransformerLens caches every hook it is asked for over every position; we reduce the down projection's
    input over answer positions inside the pass. Same numbers up to eager-vs-sdpa rounding (about 1e-3)."""
    name = "activation scores vs TransformerLens run_with_cache, one batch of 8 GSM8K samples"
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:
        return [(name, "transformer-lens not installed (make bench installs it)", "", ">= 1x", "NOT RUN")]
    if gpu:
        return [
            (name, "CPU only: the GPU model is a random 7B without a config folder to boot from", "", "", "NOT RUN")
        ]
    from cnl_core.locate.scorers import score_batch
    from cnl_core.model.loading import _builtin_folder, load_model
    from cnl_core.options import DEFAULT_MODEL

    twin = load_model(DEFAULT_MODEL)
    bridge = TransformerBridge.boot_transformers(
        str(_builtin_folder(DEFAULT_MODEL)), hf_model=twin.model, tokenizer=twin.tokenizer, device="cpu"
    )
    hooks = [f"blocks.{i}.mlp.out.hook_in" for i in range(lm.grid.n_layers)]  # the down projection's input

    def theirs():
        batch = cfg.encode(lm, samples)
        mask = batch.answer_mask.unsqueeze(-1).float()
        with torch.no_grad():
            _, cache = bridge.run_with_cache(
                batch.input_ids, attention_mask=batch.attention_mask, names_filter=lambda n: n in hooks
            )
        return torch.stack([(cache[h].float() * mask).sum(1) / mask.sum(1) for h in hooks], 1)

    ours = score_batch(lm, samples, cfg)[0]
    gap = float((ours.float() - theirs().float()).abs().max() / theirs().float().abs().max())
    t_theirs, t_ours = _best(theirs), _best(lambda: score_batch(lm, samples, cfg))
    return [
        (
            name,
            f"{t_ours * 1e3:.0f} ms vs {t_theirs * 1e3:.0f} ms; largest difference {gap:.1e} of the max",
            f"{t_theirs / t_ours:.2f}x",
            ">= 1x, same numbers (<= 1e-2)",
            _verdict(t_theirs / t_ours >= 1 and gap <= 1e-2),
        )
    ]

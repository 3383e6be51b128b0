"""Integrated gradients: the shared-work IG (cnl_core/locate/integrated_gradients.py) against the plain loop,
one full pass per (layer, alpha), with equal results; on a GPU, the time per sample at m = 20 for 256 tokens."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

from bench.figures import _best, _model, _random_7b, _samples, _verdict


def integrated_gradients(gpu: bool) -> list:
    """IG with shared work (locate/integrated_gradients.py) vs the plain loop, one full pass per (layer, alpha),
    equal results; and on a GPU the time per sample at m = 20 for 256 tokens."""
    from cnl_core.locate.scorers import ScoreConfig, score_batch
    from cnl_core.model.forward import answer_logprob
    from cnl_core.model.hooks import neuron_hooks

    # float32 for the comparison (bf16 rounds each pass's sums apart by a few percent on a random 7B)
    lm = _random_7b("none", torch.float32) if gpu else _model(False)
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    sample = _samples(1, "arithmetic")
    cfg = ScoreConfig(method="integrated_gradients", ig_steps=4)
    score_batch(lm, sample, cfg)  # warm-up
    sync()
    t0 = time.perf_counter()
    shared, _ = score_batch(lm, sample, cfg)
    sync()
    t_shared = time.perf_counter() - t0

    n_layers, m = lm.grid.n_layers, cfg.ig_steps
    batch = cfg.encode(lm, sample)
    mask = batch.answer_mask.to(lm.model.dtype).unsqueeze(-1)
    naive = torch.zeros_like(shared[0])
    t0 = time.perf_counter()
    for layer in range(n_layers):
        for k in range(1, m + 1):
            store = {}

            def hook(_l, x, alpha=k / m, store=store):  # called within this turn; the default binds it (B023)
                store["x0"], store["xs"] = x.detach(), (x * (1 + (alpha - 1) * mask)).requires_grad_(True)
                return store["xs"]

            with neuron_hooks(lm.ffn, hook, layers=[layer]), torch.enable_grad():
                logits = lm.model(input_ids=batch.input_ids, use_cache=False).logits
                (g,) = torch.autograd.grad(answer_logprob(logits, batch).sum(), store["xs"])
            naive[layer] += (store["x0"] * g * mask).sum((0, 1)).float().cpu() / m
    sync()
    t_naive = time.perf_counter() - t0
    err = float((naive - shared[0]).abs().max() / naive.abs().max())
    tol = 1e-3
    tokens = batch.input_ids.shape[1]
    speed = t_naive / t_shared
    rows = [
        (
            f"IG per sample (m=4, {tokens} tokens), shared work vs one pass per layer and alpha "
            f"({n_layers} x {m} passes)",
            f"{t_shared:.2f} s vs {t_naive:.2f} s",
            f"{speed:.1f}x",
            "faster, equal results",
            _verdict(speed > 1.0 and err < tol),
        ),
        (
            "IG shared work vs plain loop, max difference relative to the largest score",
            f"{err:.1e}",
            "",
            f"< {tol:g} ({lm.dtype})",
            _verdict(err < tol),
        ),
    ]
    if gpu:
        del lm, naive, shared
        torch.cuda.empty_cache()
        rows.extend(_ig_256(_model(gpu), sync))
    return rows


def _ig_256(lm, sync) -> list:
    """Integrated gradients at m = 20 on one 256-token sample: a 2-shot GSM8K prompt cut from the left, and the
    gold answer of the third question (up to 128 tokens)."""
    from cnl_core.data.samples import Sample
    from cnl_core.locate import integrated_gradients as ig
    from cnl_core.locate.scorers import ScoreConfig, score_batch

    rows = _samples(3)
    prompt = "".join(f"{s.prompt}{s.answer}\n\n" for s in rows[:2]) + rows[2].prompt
    sample = [Sample("ig-256", prompt, rows[2].answer, rows[2].target)]
    answer = min(128, len(lm.tokenizer(rows[2].answer, add_special_tokens=False)["input_ids"]))
    cfg = ScoreConfig(
        method="integrated_gradients", ig_steps=20, max_prompt_tokens=256 - answer, max_answer_tokens=answer
    )
    tokens = cfg.encode(lm, sample).input_ids.shape[1]
    chosen = ig.layers_per_pass(lm, cfg.ig_steps)

    @contextmanager
    def settings(per_pass: int, fused: bool):
        """Passes of `per_pass` layers (the module's choice swapped for the run), with or without the fused norms and
        activations (model/fused.py)."""
        pick, was = ig.layers_per_pass, ig.FUSED
        ig.layers_per_pass, ig.FUSED = (lambda *_: per_pass), fused
        try:
            yield
        finally:
            ig.layers_per_pass, ig.FUSED = pick, was

    def run():
        out = score_batch(lm, sample, cfg)[0]
        sync()
        return out

    def timed(per_pass: int, fused: bool = True) -> float:
        with settings(per_pass, fused):
            return _best(run, repeat=2)  # best of 2 after a warm-up

    times = {k: timed(k) for k in sorted({1, 2, chosen})}
    eager = timed(chosen, fused=False)
    t = times[chosen]
    kinds, scores = [], {}
    for fused, wall in ((True, t), (False, eager)):
        with settings(chosen, fused):
            kinds.append(_kernel_kinds(run, wall, "fused, " if fused else "eager, "))
            scores[fused] = run()
    err = float((scores[True] - scores[False]).abs().max() / scores[False].abs().max())
    return kinds + [
        (
            f"IG per sample, m=20, {tokens} tokens ({answer} of them answer), GPU 7B-shape {lm.dtype}, "
            f"{chosen} layers per pass (layers_per_pass), fused norms and activations",
            f"{t:.2f} s",
            "",
            "<= 2 s",
            _verdict(t <= 2.0),
        ),
        (
            "IG per sample as above, fused vs eager norms and activations (model/fused.py)",
            f"{t:.2f} s vs {eager:.2f} s; scores differ by {err:.1e} of the largest ({lm.dtype})",
            f"{eager / t:.2f}x",
            "faster",
            _verdict(t < eager),
        ),
        (
            f"IG per sample as above, layers per pass {chosen} vs 1 (and 2: {times[2]:.2f} s)",
            f"{t:.2f} s vs {times[1]:.2f} s",
            f"{times[1] / t:.2f}x",
            "the chosen size is the fastest measured",
            _verdict(t <= min(times.values()) * 1.02),
        ),
    ]


KERNEL_KINDS = (
    ("matrix products", ("gemm", "nvjet", "cutlass", "xmma", "sm90_", "splitk")),
    ("attention", ("flash", "fmha", "attention", "efficient", "sdpa")),
    ("reductions and norms", ("reduce", "norm", "softmax", "logsumexp")),
)


def _kernel_kinds(run, wall: float, label: str = "") -> tuple:
    """Where one IG sample's GPU time goes, by kernel kind (PyTorch's profiler; names matched to kinds), and how much
    of the wall time the GPU was busy: what bounds the time per sample."""
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            run()
    except Exception as exc:  # noqa: BLE001  # the timing rows stand without the breakdown
        return (
            "IG per sample, GPU time by kernel kind",
            f"profiler failed: {type(exc).__name__}",
            "",
            "reported",
            "info",
        )
    kinds: dict[str, float] = {}
    launches = 0
    for event in prof.events():
        if event.device_type.name != "CUDA":
            continue
        name = event.name.lower()
        kind = next((k for k, words in KERNEL_KINDS if any(w in name for w in words)), "elementwise and copies")
        kinds[kind] = kinds.get(kind, 0.0) + event.time_range.elapsed_us() / 1e6
        launches += 1
    busy = sum(kinds.values())
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return (
        f"IG per sample as below ({label}one run), GPU time by kernel kind ({launches} kernels)",
        f"{parts}; busy {busy:.2f} s",
        f"{busy / wall:.2f} of the wall time",
        "reported",
        "info",
    )

"""The benchmark figures. Each returns rows: (figure, measured, ratio, target, pass|FAIL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.common import (
    ROOT,
    _best,
    _builtin_missing,
    _dataset,
    _model,
    _random_7b,
    _samples,
    _smol_folder,
    _verdict,
)


def model_load(gpu: bool) -> list:
    """Loading the built-in model again (from its converted safetensors copy in cache/models)."""
    from cnl_core.model.loading import load_model

    load_model("smollm2-135m")  # converts once if needed
    t = _best(lambda: load_model("smollm2-135m"), repeat=2)
    return [("second load of the built-in model", f"{t:.2f} s", "", "well under 2 s", _verdict(t < 2.0))]


def collection_overhead(gpu: bool) -> list:
    """activation vs plain forward; grad_x_act vs plain forward+backward, same model and batch. The verdict is
    against the plain passes without an attention mask: the same computation as ours on a right-padded batch
    (causal attention alone keeps real tokens from pads); the masked passes a notebook would run are shown too."""
    from cnl_core.locate.scorers import ScoreConfig, score_batch
    from cnl_core.model.forward import answer_logprob

    rows = []
    for quant in ["none", "4bit"] if gpu else ["none"]:
        lm = _model(gpu, quant)
        samples = _samples(8)
        cfg = ScoreConfig()
        batch = cfg.encode(lm, samples)
        sync = torch.cuda.synchronize if gpu else (lambda: None)

        # Each timed closure runs inside the loop turn that made it: the defaults bind this turn's values (ruff B023).
        def plain_forward(mask: bool, lm=lm, batch=batch, sync=sync):
            def run():
                with torch.no_grad():
                    lm.model(
                        input_ids=batch.input_ids,
                        attention_mask=batch.attention_mask if mask else None,
                        use_cache=False,
                    )
                sync()

            return run

        def plain_backward(mask: bool, lm=lm, batch=batch, sync=sync):
            def run():
                emb = lm.model.get_input_embeddings()(batch.input_ids).detach().requires_grad_(True)
                logits = lm.model(
                    inputs_embeds=emb, attention_mask=batch.attention_mask if mask else None, use_cache=False
                ).logits
                torch.autograd.grad(answer_logprob(logits, batch).sum(), emb)
                sync()

            return run

        def ours(method, lm=lm, samples=samples, sync=sync):
            def run():
                score_batch(lm, samples, ScoreConfig(method=method))
                sync()

            return run

        tag = f"{'GPU 7B-shape ' + quant if gpu else 'CPU SmolLM2-135M'}"
        rounds = 3 if gpu else 1  # the GPU issue asks for three runs with their spread: three rounds on one machine
        for name, base, mine in (
            ("activation vs forward", plain_forward, ours("activation")),
            ("grad_x_act vs forward+backward", plain_backward, ours("grad_x_act")),
        ):
            measured = sorted((_best(mine), _best(base(False)), _best(base(True))) for _ in range(rounds))
            ratios = sorted(m / b for m, b, _ in measured)
            t_mine, t_base, t_masked = measured[len(measured) // 2]
            ratio = ratios[len(ratios) // 2]
            spread = f" (rounds: {', '.join(f'{r:.3f}' for r in ratios)})" if rounds > 1 else ""
            limit = 1.05 if gpu else 1 / 0.9  # the GPU issue's target; the CPU's from the first performance issue
            rows.append(
                (
                    f"collection time, {name} ({tag}, batch 8; plain passes without / with attention mask)",
                    f"{t_mine * 1e3:.1f} ms vs {t_base * 1e3:.1f} / {t_masked * 1e3:.1f} ms",
                    f"{ratio:.3f}x{spread} / {t_mine / t_masked:.3f}x the time",
                    f"<= {limit:.2f}x (without mask)",
                    _verdict(ratio <= limit),
                )
            )
    return rows


def batch_sizes(gpu: bool) -> list:
    """GPU only: how much of the launch-bound overhead at batch 8 a larger GPU batch takes away."""
    return _batch_sizes(_model(gpu)) if gpu else []


def _batch_sizes(lm, n: int = 64) -> list:
    """collect_scores on n GSM8K samples (no cache) with batches of 16 and 32 against 8: how much of the launch-bound
    overhead at batch 8 a larger GPU batch takes away. Reported, no target."""
    from cnl_core.locate.collect import collect_scores
    from cnl_core.locate.scorers import ScoreConfig

    data = _dataset("gsm8k")
    ids = [s.id for s in data.rows()[:n]]
    rows = []
    for method in ("activation", "grad_x_act"):
        cfg = ScoreConfig(method=method)

        said: dict[int, set[str]] = {}  # an out-of-memory retry at a smaller batch says so in the table's notes

        def run(size: int, said=said, cfg=cfg) -> None:  # defaults: this loop turn's (ruff B023)
            said.setdefault(size, set()).update(
                collect_scores(lm, data, ids, cfg, batch_size=size, use_cache=False).notes
            )
            torch.cuda.synchronize()

        times = {size: _best(lambda size=size: run(size), repeat=2) for size in (8, 16, 32)}
        for size in (16, 32):
            notes = "; ".join(sorted(said[size]))
            rows.append(
                (
                    f"{method} scores of {len(ids)} GSM8K samples, batch {size} vs 8 (GPU 7B-shape bf16)"
                    + (f" ({notes})" if notes else ""),
                    f"{times[size] / len(ids) * 1e3:.1f} vs {times[8] / len(ids) * 1e3:.1f} ms a sample",
                    f"{times[8] / times[size]:.2f}x the speed of batch 8",
                    "reported",
                    "info",
                )
            )
    return rows


_MEMORY_CHILD = """
import json, random, sys
import torch
from cnl_core.experiments.locate import run_locate
from cnl_core.model.loading import load_model
from cnl_core.locate.scorers import ScoreConfig
from cnl_core.data.uploads import dataset_from_records

def status(key):
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith(key + ":"))

# Sums of three-digit numbers: every sample has the same token count, so n is the only thing that differs.
rng = random.Random(0)
pairs = [(rng.randint(100, 499), rng.randint(100, 499)) for _ in range(400)]
spec, _ = dataset_from_records([{"q": f"Question: What is {a} plus {b}?\\nAnswer:", "a": str(a + b)} for a, b in pairs],
                               "uniform-sums", "q", "a")
if sys.argv[2] == "gpu":
    from bench.common import _random_7b
    lm = _random_7b("none")
else:
    lm = load_model()
lengths = {ScoreConfig().length(lm.tokenizer, s) for s in spec.rows()}
cuda = lm.input_device.type == "cuda"
if cuda:  # the activations live on the GPU: its allocator's peak
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() // 1024
else:
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # reset the kernel's peak-RSS mark: exact, not sampled
        fh.write("5")
run_locate(lm, "uniform-sums", int(sys.argv[1]), 1, 0, batch_size=8)
peak = torch.cuda.max_memory_allocated() // 1024 if cuda else status("VmHWM")
print(json.dumps({"before_kb": before, "peak_kb": peak, "lengths": sorted(lengths),
                  "what": "peak GPU memory allocated" if cuda else "exact peak RSS"}))
"""


def memory(gpu: bool) -> list:
    """Peak memory of a locate run for n and 4n (fresh processes), and bytes on disk per sample.

    The peak is the largest batch's activations: batch size x its longest sample, both capped
    (ScoreConfig's token limits). On real data a larger n can draw a longer sample and so a larger
    first batch; samples of one length leave n as the only difference.
    """
    from cnl_core.locate.score_store import list_cache

    cache = Path(os.environ["CNL_CACHE_DIR_BENCH"]) / "mem"
    (cache).mkdir(parents=True, exist_ok=True)
    if not gpu and not (cache / "models").exists():
        (cache / "models").symlink_to(_smol_folder().parent)
    peaks, lengths = {}, set()
    for n in (16, 64):
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "CNL_CACHE_DIR": str(cache), "PYTHONPATH": path}
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, str(n), "gpu" if gpu else "cpu"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=ROOT,
        )
        data = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[n] = (data["peak_kb"] - data["before_kb"]) / 1024
        lengths.update(data["lengths"])
        what = data["what"]
    growth = peaks[64] / max(peaks[16], 1e-9)
    os.environ["CNL_CACHE_DIR"] = str(cache)
    try:
        (entry,) = [e for e in list_cache(cache / "scores")]
    finally:
        del os.environ["CNL_CACHE_DIR"]
    per_sample = entry["bytes"] / entry["samples"]
    grid = json.loads((cache / "scores" / entry["key"] / "record.json").read_text())["grid"]
    bound = grid["n_layers"] * grid["width"] * 2
    return [
        (
            f"locate peak memory above the loaded model, n=16 vs n=64 ({what}; samples of "
            f"{'/'.join(map(str, sorted(lengths)))} tokens)",
            f"{peaks[16]:.0f} MB vs {peaks[64]:.0f} MB",
            f"{growth:.2f}x",
            "does not grow with n (<= 1.25x)",
            _verdict(growth <= 1.25),
        ),
        (
            "score cache on disk per sample",
            f"{per_sample / 1024:.1f} KiB",
            f"{per_sample / bound:.3f} of bound",
            "<= neurons x 2 bytes + metadata",
            _verdict(per_sample <= bound * 1.05),
        ),
    ]


def cache_speed(gpu: bool) -> list:
    """Re-localizing 1,000 cached samples; a repeated locate run against the first."""
    from cnl_core.experiments.locate import run_locate
    from cnl_core.locate.select import LocateParams, locate

    scores = (torch.randn(1000, 30, 1536) ** 3).to(torch.float16)  # heavy-tailed, like real scores
    t_reloc = _best(lambda: locate(scores, LocateParams(tau=0.3, p=0.4)))
    models = _smol_folder().parent
    folder = Path(os.environ["CNL_CACHE_DIR_BENCH"]) / "speed"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "models").exists():
        (folder / "models").symlink_to(models)
    os.environ["CNL_CACHE_DIR"] = str(folder)
    try:
        lm = _model(False)
        t0 = time.perf_counter()
        run_locate(lm, "gsm8k", 8, 2, 0).result()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_locate(lm, "gsm8k", 8, 2, 0).result()
        second = time.perf_counter() - t0
    finally:
        del os.environ["CNL_CACHE_DIR"]
    return [
        ("re-localize 1,000 cached samples (new tau, p)", f"{t_reloc:.3f} s", "", "< 0.5 s", _verdict(t_reloc < 0.5)),
        (
            "repeated locate (n=8, k=2) vs first",
            f"{second:.2f} s vs {first:.1f} s",
            f"{first / second:.0f}x",
            ">= 20x",
            _verdict(first / second >= 20),
        ),
    ]


def generation(gpu: bool) -> list:
    """Our batched greedy generation vs the loop a user would write: one `generate` per prompt.

    The built-in model with its real weights in float32 (on CUDA in GPU mode). On a GPU machine
    without it, a random 7B-shape model in float32: its answers are noise, but identical noise still
    proves the batching (pads, positions, cache) changes nothing.
    """
    from cnl_core.evaluate.accuracy import EvalConfig, _generate, fewshot_prefix
    from cnl_core.evaluate.answers import STOP_STRINGS, cut_at_stop
    from cnl_core.model.loading import ModelSpec, load_model

    if gpu and _builtin_missing():  # a bare GPU machine: the 7B shape, float32 so that rounding is no excuse
        lm, what = _random_7b("none", torch.float32), "random 7B-shape float32"
    else:
        lm, what = load_model(ModelSpec("smollm2-135m", dtype="float32")), "SmolLM2-135M"
    tok = lm.tokenizer
    samples = _samples(8)
    prefix = fewshot_prefix(_samples(12)[10:12])
    cfg = EvalConfig(max_new_tokens=48)

    def one_at_a_time(prompt: str) -> str:
        enc = tok(prompt, return_tensors="pt").to(lm.input_device)
        with torch.no_grad():
            out = lm.model.generate(
                **enc,
                max_new_tokens=48,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                stop_strings=list(STOP_STRINGS),
                tokenizer=tok,
            )
        return cut_at_stop(tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))

    t0 = time.perf_counter()
    batched = _generate(lm, None, prefix, [s.prompt for s in samples], cfg, 48)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [one_at_a_time(prefix + s.prompt) for s in samples]
    t_single = time.perf_counter() - t0
    same = sum(a == b for a, b in zip(batched, single))
    ratio = t_single / t_batch
    where = "CUDA" if gpu else "CPU"
    rows = [
        (
            f"batched generation throughput vs one at a time ({where} {what}, 8 prompts, 2-shot, 48 tokens)",
            f"{t_batch:.1f} s vs {t_single:.1f} s; {same}/8 identical",
            f"{ratio:.2f}x",
            ">= 3x, identical answers",
            _verdict(ratio >= 3 and same == len(samples)),
        )
    ]
    return rows + _gold_pass(lm, samples, prefix, where)


def _gold_pass(lm, samples, prefix: str, where: str) -> list:
    """The evaluator's gold log-likelihood pass: few-shot context run once and shared, vs full passes."""
    from cnl_core.evaluate import accuracy as evaluation
    from cnl_core.model import forward
    from cnl_core.model.hooks import NO_EDIT

    cfg = evaluation.EvalConfig()
    shared_fn = forward.batch_context_length

    def run(shared: bool):
        forward.batch_context_length = shared_fn if shared else (lambda batch, least=16: 0)
        try:
            return evaluation._gold_loglik(lm, NO_EDIT, samples, prefix, cfg)[0]
        finally:
            forward.batch_context_length = shared_fn

    same = max(abs(a - b) for a, b in zip(run(True), run(False))) < 1e-3
    t_full, t_shared = _best(lambda: run(False), repeat=2), _best(lambda: run(True), repeat=2)
    return [
        (
            f"gold log-likelihood pass, shared few-shot context vs full passes ({where}, 8 prompts, 2-shot)",
            f"{t_shared:.2f} s vs {t_full:.2f} s; equal: {same}",
            f"{t_full / t_shared:.2f}x",
            "faster, equal results",
            _verdict(t_full > t_shared and same),
        )
    ]

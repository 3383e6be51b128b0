"""GPU memory paths that a CPU run cannot show: running out of GPU memory mid-evaluation and mid-locate on the
real device (the allocator's own error, the halving, the memory given back), evaluation's memory-bounded
condition batching on CUDA, quantized weights on this process's GPU, and torchrun with one NCCL process per GPU.

An out-of-memory error is forced where a batch is larger than a bound: the wrapped call first asks the CUDA
allocator for twice the card's memory, so the error is the allocator's own (torch.OutOfMemoryError, raised
mid-call with the batch's tensors alive), not a stand-in exception.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnl_core.evaluate import accuracy as evaluation
from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.locate import collect
from cnl_core.locate.collect import collect_scores
from cnl_core.locate.scorers import ScoreConfig
from cnl_core.model import generation
from cnl_core.model.hooks import Intervention
from tests.gpu.test_cuda_paths import ROOT, SAMPLES, SPEC, load, some_neurons

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def too_much() -> None:
    """Ask the CUDA allocator for twice the card: its own out-of-memory error."""
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    torch.empty(2 * total, dtype=torch.uint8, device="cuda")


def failing_above(fn, rows_of, bound: int, calls: list):
    """fn, except that a call whose rows_of(args) exceed bound runs out of GPU memory first."""

    def wrapped(*args, **kwargs):
        rows = rows_of(*args, **kwargs)
        calls.append(rows)
        if rows > bound:
            too_much()
        return fn(*args, **kwargs)

    return wrapped


def test_evaluation_out_of_gpu_memory_halves_and_gives_the_same_results(gpu_model_folder, monkeypatch):
    lm = load(gpu_model_folder, dtype="float32")
    ivs = [None, Intervention(some_neurons(lm), "zero")]
    cfg = EvalConfig(max_new_tokens=10, num_fewshot=2, batch_size=6)
    plain = evaluation.evaluate_conditions(lm, SPEC, SAMPLES[2:8], SAMPLES[:2], cfg, ivs)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    calls: list[int] = []
    monkeypatch.setattr(
        evaluation,
        "decode",
        failing_above(generation.decode, lambda _lm, parts, *a, **k: sum(len(p.own) for p in parts), 2, calls),
    )
    notes: list[str] = []
    halved = evaluation.evaluate_conditions(
        lm, SPEC, SAMPLES[2:8], SAMPLES[:2], cfg, ivs, progress=lambda done, total, text: notes.append(text)
    )
    failed = [c for c in calls if c > 2]  # decodes that ran out, each half the rows of the one before, then none
    assert failed and calls[: len(failed)] == failed and max(calls[len(failed) :]) <= 2, calls
    assert any("out of memory" in n for n in notes), notes
    assert [[r.output for r in c] for c in halved] == [[r.output for r in c] for c in plain]
    torch.testing.assert_close(
        torch.tensor([[r.gold_loglik for r in c] for c in halved]),
        torch.tensor([[r.gold_loglik for r in c] for c in plain]),
        atol=1e-4,
        rtol=1e-4,
    )
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= before + 1024**2  # nothing of the failed batches is kept


def test_locate_out_of_gpu_memory_halves_the_batch_and_gives_the_same_scores(gpu_model_folder, monkeypatch):
    lm = load(gpu_model_folder, dtype="float32")
    ids = [s.id for s in SAMPLES]
    cfg = ScoreConfig(method="grad_x_act")
    plain = collect_scores(lm, SPEC, ids, cfg, batch_size=8, use_cache=False)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    calls: list[int] = []
    monkeypatch.setattr(
        collect, "score_batch", failing_above(collect.score_batch, lambda _lm, chunk, *_: len(chunk), 2, calls)
    )
    halved = collect_scores(lm, SPEC, ids, cfg, batch_size=8, use_cache=False)
    assert calls[:3] == [8, 4, 2], calls
    assert any("retrying with batch size 2" in n for n in halved.notes), halved.notes
    torch.testing.assert_close(halved.scores.float(), plain.scores.float(), rtol=2e-3, atol=1e-3)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= before + 1024**2


def test_conditions_decode_one_at_a_time_when_the_free_gpu_memory_says_so(gpu_model_folder, monkeypatch):
    """parts_that_fit on CUDA: the free memory it reads is the card's; where it holds no second condition's keys and
    values the conditions decode one by one, and give what decoding them together gives."""
    lm = load(gpu_model_folder, dtype="float32")
    ivs = [None, Intervention(some_neurons(lm), "zero"), Intervention(some_neurons(lm), "amplify", 3.0)]
    cfg = EvalConfig(max_new_tokens=10, num_fewshot=2)
    seen: list[int] = []
    spy = lambda _lm, parts, *a, **k: (seen.append(len(parts)), generation.decode(_lm, parts, *a, **k))[1]  # noqa: E731
    monkeypatch.setattr(evaluation, "decode", spy)
    together = evaluation.evaluate_conditions(lm, SPEC, SAMPLES[2:6], SAMPLES[:2], cfg, ivs)
    assert seen == [3]  # a whole H200/H100 holds three conditions of four tiny prompts
    free = generation.free_bytes_for(lm.model)
    assert free > 0.5 * torch.cuda.mem_get_info()[0]  # the card's free memory, not the host's
    per_token = generation.kv_bytes_per_token(lm.model.config, 4)
    monkeypatch.setattr(generation, "free_bytes_for", lambda _m: int(20 * per_token / generation.MARGIN))
    seen.clear()
    apart = evaluation.evaluate_conditions(lm, SPEC, SAMPLES[2:6], SAMPLES[:2], cfg, ivs)
    assert seen == [1, 1, 1], seen
    assert [[r.output for r in c] for c in apart] == [[r.output for r in c] for c in together]


@pytest.mark.parametrize("quant", ["8bit", "4bit"])
def test_quantized_weights_load_on_this_process_gpu(gpu_model_folder, quant):
    """bitsandbytes places quantized weights on the device_map's device: this process's GPU (torchrun sets it)."""
    lm = load(gpu_model_folder, quantization=quant)
    here = torch.cuda.current_device()
    assert {p.device for p in lm.model.parameters()} == {torch.device("cuda", here)}
    assert lm.input_device == torch.device("cuda", here)


_TWO_PROCESSES = """
import json, sys
from cnl_core import parallel
from cnl_core.data.uploads import dataset_from_records
from cnl_core.experiments.locate import run_locate
from cnl_core.model.loading import ModelSpec, load_model
from tests.gpu.test_cuda_paths import RECORDS

launch = parallel.launched()
if launch is not None:
    parallel.join(launch, cuda=True)
dataset_from_records(RECORDS, "gpu-sums", "q", "a")
lm = load_model(ModelSpec(sys.argv[1], device="cuda", dtype="float32"))
run = run_locate(lm, "gpu-sums", 4, 2, 0, batch_size=1, launch=launch)
if launch is None or launch.is_main:
    print(json.dumps({"neurons": run.result().neurons.pairs(), "scores": run.table.scores.float().sum().item()}))
parallel.leave()
"""


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL needs one GPU per process: two GPUs")
def test_two_nccl_processes_locate_what_one_process_locates(gpu_model_folder, tmp_path):
    child = tmp_path / "child.py"
    child.write_text(_TWO_PROCESSES)
    out = {}
    for nproc in (1, 2):
        env = {
            **os.environ,
            "CNL_CACHE_DIR": str(tmp_path / f"cache{nproc}"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        }
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                str(nproc),
                str(child),
                gpu_model_folder,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(ROOT),
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        out[nproc] = json.loads(run.stdout.strip().splitlines()[-1])
    assert out[1]["neurons"] == out[2]["neurons"]
    assert out[1]["scores"] == pytest.approx(out[2]["scores"], rel=1e-5)


def test_fused_norms_and_activations_give_the_eager_scores(gpu_model_folder, monkeypatch):
    """model/fused.py on CUDA: every RMSNorm and gated MLP swapped while the context is open, integrated gradients
    equal to the eager model's in float32, and the eager forward back afterwards."""
    from cnl_core.locate import integrated_gradients as ig
    from cnl_core.locate.scorers import score_batch
    from cnl_core.model.fused import fused_elementwise

    lm = load(gpu_model_folder, dtype="float32")
    with fused_elementwise(lm.model) as swapped:
        assert swapped == 3 * lm.grid.n_layers + 1  # two norms and the MLP of each layer, and the final norm
    assert not any("forward" in vars(m) for m in lm.model.modules())  # the classes' own forward again
    cfg = ScoreConfig(method="integrated_gradients", ig_steps=4)
    monkeypatch.setattr(ig, "FUSED", False)
    eager = score_batch(lm, SAMPLES, cfg)[0]
    monkeypatch.setattr(ig, "FUSED", True)
    fused = score_batch(lm, SAMPLES, cfg)[0]
    torch.testing.assert_close(fused, eager, rtol=1e-4, atol=1e-5 * float(eager.abs().max()))

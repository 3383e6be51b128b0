"""What only a CUDA machine can show: loading in bf16, 8-bit and nf4 on the GPU, hooks that read, edit and take
gradients through bitsandbytes layers, device_map="auto" with layers offloaded to RAM, the choice of
quantization 'auto', the evaluator's fast decoding on CUDA, and torchrun with NCCL.

The model is random (tests/gpu/conftest.py): these tests check that each path runs and agrees with the
plain one, not what a real model does (tests/integration does that on the built-in model, on a CPU).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnl_core.data.uploads import dataset_from_records
from cnl_core.evaluate import accuracy as evaluation
from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.locate.scorers import ScoreConfig, score_batch
from cnl_core.model import forward, loading, memory
from cnl_core.model.hooks import Intervention, intervene
from cnl_core.model.loading import ModelSpec, load_model
from cnl_core.model.neurons import NeuronSet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ROOT = Path(__file__).resolve().parents[2]
RECORDS = [
    {"q": f"Question: What is {a} plus {b}?\nAnswer:", "a": f" {a + b}"}
    for a, b in [(12, 7), (30, 45), (8, 8), (101, 23), (5, 60), (77, 11), (19, 2), (40, 40)]
]
SPEC, _ = dataset_from_records(RECORDS, "gpu-sums", "q", "a")
SAMPLES = SPEC.rows()


def load(folder: str, **kw):
    return load_model(ModelSpec(folder, device="cuda", **kw))


def some_neurons(lm) -> NeuronSet:
    return NeuronSet.from_flat(lm.grid, list(range(0, lm.grid.total, 7)))


def gold(lm, iv=None) -> torch.Tensor:
    with intervene(lm, iv), torch.no_grad():
        return forward.gold_logprob(lm, ScoreConfig().encode(lm, SAMPLES)).float().cpu()


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]).float())[0, 1])


@pytest.fixture(scope="module")
def reference(gpu_model_folder):
    """The model in float32 on the CPU: what the GPU paths are compared with."""
    lm = load_model(ModelSpec(gpu_model_folder, device="cpu", dtype="float32"))
    return {
        m: score_batch(lm, SAMPLES, ScoreConfig(method=m, ig_steps=4))[0]
        for m in ("activation", "grad_x_act", "integrated_gradients")
    }


def test_float32_on_cuda_gives_the_cpu_scores(gpu_model_folder, reference):
    lm = load(gpu_model_folder, dtype="float32")
    assert lm.input_device.type == "cuda" and next(lm.model.parameters()).is_cuda
    for method, expected in reference.items():
        scores, _ = score_batch(lm, SAMPLES, ScoreConfig(method=method, ig_steps=4))
        torch.testing.assert_close(scores, expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()))


def test_auto_dtype_on_cuda_is_half_precision_and_close(gpu_model_folder, reference):
    lm = load(gpu_model_folder)
    assert lm.dtype in ("bfloat16", "float16") and lm.quantization == "none"
    for method, expected in reference.items():
        scores, golds = score_batch(lm, SAMPLES, ScoreConfig(method=method, ig_steps=4))
        assert torch.isfinite(scores).all() and (golds < 0).all()
        assert corr(scores, expected) > 0.98, method


@pytest.mark.parametrize("quant", ["8bit", "4bit"])
def test_bitsandbytes_layers_on_cuda_read_edit_and_take_gradients(gpu_model_folder, reference, quant):
    import bitsandbytes as bnb

    lm = load(gpu_model_folder, quantization=quant)
    kind = bnb.nn.Linear8bitLt if quant == "8bit" else bnb.nn.Linear4bit
    assert lm.quantization == quant
    assert all(isinstance(m, kind) and m.weight.is_cuda for m in lm.ffn.down)  # the hooked modules themselves
    for method in ("activation", "grad_x_act", "integrated_gradients"):  # read; read + gradients
        scores, _ = score_batch(lm, SAMPLES, ScoreConfig(method=method, ig_steps=4))
        assert torch.isfinite(scores).all()
        assert corr(scores, reference[method]) > 0.5, method  # quantization noise: another model correlates near 0
    base = gold(lm)
    assert torch.equal(gold(lm, Intervention(NeuronSet.from_flat(lm.grid, []), "zero")), base)  # an empty edit
    zeroed = gold(lm, Intervention(some_neurons(lm), "zero"))
    amplified = gold(lm, Intervention(some_neurons(lm), "amplify", 3.0))
    assert not torch.allclose(zeroed, base) and not torch.allclose(amplified, base)
    assert torch.equal(gold(lm), base)  # the hooks are gone
    assert lm.model.get_memory_footprint() < load(gpu_model_folder).model.get_memory_footprint()


def test_device_map_auto_on_one_gpu_equals_the_plain_load(gpu_model_folder):
    plain, spread = load(gpu_model_folder), load(gpu_model_folder, device_map_auto=True)
    assert spread.plan.offload and all(p.is_cuda for p in spread.model.parameters())  # all of it fits one GPU
    cfg = ScoreConfig(method="grad_x_act")
    torch.testing.assert_close(
        score_batch(spread, SAMPLES, cfg)[0], score_batch(plain, SAMPLES, cfg)[0], rtol=1e-3, atol=1e-6
    )


SMALL = memory.Workload("grad_x_act", rows=1, tokens=32)  # a pass whose activations the weights outweigh


def planned(folder: str, quant: str) -> memory.MemoryEstimate:
    return loading.memory_plan(ModelSpec(folder, device="cuda", quantization=quant), SMALL).estimate


def with_free_gpu(monkeypatch, free: float) -> None:
    monkeypatch.setattr(loading, "free_gpu_bytes", lambda: int(free / memory.MARGIN))


def test_layers_offloaded_to_ram_when_the_gpu_is_short(gpu_model_folder, monkeypatch):
    """Too little GPU memory for the whole model: device_map='auto' keeps some layers in RAM, and every
    analysis still runs and agrees with the model held on the GPU alone."""
    plain = load(gpu_model_folder, dtype="float32")
    est = loading.memory_plan(ModelSpec(gpu_model_folder, device="cuda", dtype="float32"), SMALL).estimate
    with_free_gpu(monkeypatch, est.peak_bytes + est.weight_bytes / 2)
    lm = load_model(ModelSpec(gpu_model_folder, device="cuda", dtype="float32"), SMALL)
    assert lm.plan.offload
    assert {"0", "cpu"} <= set(map(str, lm.model.hf_device_map.values())), lm.model.hf_device_map
    for method in ("activation", "grad_x_act", "integrated_gradients"):
        cfg = ScoreConfig(method=method, ig_steps=3)
        torch.testing.assert_close(
            score_batch(lm, SAMPLES, cfg)[0], score_batch(plain, SAMPLES, cfg)[0], rtol=1e-3, atol=1e-5
        )
    iv = Intervention(some_neurons(lm), "zero")
    torch.testing.assert_close(gold(lm, iv), gold(plain, iv), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("expected", ["none", "8bit", "4bit"])
def test_quantize_if_needed_picks_the_lightest_precision_that_fits(gpu_model_folder, monkeypatch, expected):
    """quantization='auto' on a GPU: bf16 where it fits, else 8-bit, else nf4; what is planned is what loads."""
    need = {q: planned(gpu_model_folder, q).need_bytes for q in ("none", "8bit", "4bit")}
    assert need["4bit"] < need["8bit"] < need["none"]
    if expected != "none":  # free memory between this precision's need and the next heavier one's
        heavier = "none" if expected == "8bit" else "8bit"
        with_free_gpu(monkeypatch, (need[expected] + need[heavier]) / 2)
    lm = load_model(ModelSpec(gpu_model_folder, device="cuda", quantization="auto"), SMALL)
    assert lm.quantization == expected == lm.plan.quantization and not lm.plan.offload
    assert type(lm.ffn.down[0]).__module__.startswith("bitsandbytes") == (expected != "none")
    assert torch.isfinite(score_batch(lm, SAMPLES[:2], ScoreConfig())[0]).all()


def test_conditions_decoded_together_on_cuda_equal_each_run_alone(gpu_model_folder, monkeypatch):
    """The evaluator's fast path on CUDA (prompts kept from the gold pass, all conditions' rows in one batch over
    shared contexts, per-row neuron factors) against generating each condition afresh, in float32."""
    lm = load(gpu_model_folder, dtype="float32")
    neurons = some_neurons(lm)
    ivs = [None, Intervention(neurons, "zero"), Intervention(neurons, "amplify", 3.0, "answer")]
    cfg = EvalConfig(max_new_tokens=12, num_fewshot=2)
    fast = evaluation.evaluate_conditions(lm, SPEC, SAMPLES[2:6], SAMPLES[:2], cfg, ivs)
    monkeypatch.setattr(forward, "plain_dynamic", lambda cache: False)
    slow = [evaluation.evaluate_samples(lm, SPEC, SAMPLES[2:6], SAMPLES[:2], cfg, iv) for iv in ivs]
    assert [[r.output for r in c] for c in fast] == [[r.output for r in c] for c in slow]
    torch.testing.assert_close(
        torch.tensor([[r.gold_loglik for r in c] for c in fast]),
        torch.tensor([[r.gold_loglik for r in c] for c in slow]),
        atol=1e-4,
        rtol=1e-4,
    )


_TORCHRUN_CHILD = """
import json, sys
import torch
from cnl_core import parallel
from cnl_core.data.uploads import dataset_from_records
from cnl_core.experiments.locate import run_locate
from cnl_core.model.loading import ModelSpec, load_model
from tests.gpu.test_cuda_paths import RECORDS

launch = parallel.Launch(0, 1, 0)  # one process on one GPU (launched() calls a world of one a plain run)
parallel.join(launch, cuda=True)
dataset_from_records(RECORDS, "gpu-sums", "q", "a")
lm = load_model(ModelSpec(sys.argv[1], device="cuda"))
run = run_locate(lm, "gpu-sums", 2, 2, 0, batch_size=1, launch=launch)
if launch.is_main:
    print(json.dumps({"backend": torch.distributed.get_backend(), "device": str(lm.input_device),
                      "computed": run.table.computed, "neurons": len(run.result().neurons)}))
parallel.leave()
"""


def test_torchrun_joins_with_nccl_and_locates(gpu_model_folder, tmp_path):
    """The NCCL process group and the gathering of scores, in a group of one (one GPU here)."""
    env = {
        **os.environ,
        "CNL_CACHE_DIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    child = tmp_path / "child.py"
    child.write_text(_TORCHRUN_CHILD)
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", str(child), gpu_model_folder],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == "nccl" and result["device"].startswith("cuda") and result["computed"] == 4

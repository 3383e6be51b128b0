"""Every path on bitsandbytes 8-bit and nf4 models on a CPU: loading, the memory estimate, scores of
every method (close to the float model's), localization, zero/amplify, evaluation, the neuron inspector,
fine-tuning's refusal, and "quantize if needed" choosing from the free RAM. Tiny random models: seconds."""

import pytest
import torch

pytest.importorskip("bitsandbytes")

from cnl_core.data.samples import get_dataset  # noqa: E402
from cnl_core.errors import ParameterError  # noqa: E402
from cnl_core.model.loading import ModelSpec, load_model  # noqa: E402

QUANTS = ["8bit", "4bit"]


@pytest.fixture(scope="module")
def models(tiny_model_folder):
    """The same tiny model in float32, 8-bit and nf4, all on the CPU."""
    return {q: load_model(ModelSpec(tiny_model_folder, device="cpu", quantization=q)) for q in ["none", *QUANTS]}


def _samples(n=3):
    return get_dataset("add1").rows()[:n]


@pytest.mark.parametrize("quant", QUANTS)
def test_loads_quantized_on_a_cpu_and_the_estimate_matches_the_footprint(models, quant):
    lm, full = models[quant], models["none"]
    assert lm.quantization == quant and lm.input_device.type == "cpu"
    assert type(lm.ffn.down[0]).__name__ == {"8bit": "Linear8bitLt", "4bit": "Linear4bit"}[quant]
    measured = lm.model.get_memory_footprint()
    assert abs(lm.plan.estimate.weight_bytes - measured) / measured < 0.15, (lm.plan.estimate.weight_bytes, measured)
    assert lm.plan.estimate.weight_bytes < full.plan.estimate.weight_bytes
    assert lm.fingerprint != full.fingerprint  # quantized scores never share the float model's cache entries


@pytest.mark.parametrize("quant", QUANTS)
def test_the_float_weights_file_is_let_go_after_a_quantized_load(tiny_model_folder, tmp_path, quant):
    import shutil

    folder = shutil.copytree(tiny_model_folder, tmp_path / "copy")  # a file no float model here maps
    lm = load_model(ModelSpec(str(folder), device="cpu", quantization=quant))
    with open("/proc/self/maps") as fh:  # its pages no longer count against the RAM
        assert not [line for line in fh if str(folder) in line], "the weights file is still mapped"
    assert lm.model.lm_head.weight is lm.model.model.embed_tokens.weight  # still tied after the copy


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten().float(), b.flatten().float()]))[0, 1])


@pytest.mark.parametrize("quant", QUANTS)
def test_scores_of_every_method_follow_the_float_model(models, quant):
    from cnl_core.locate.scorers import ScoreConfig, score_batch, scorer_names

    for method in scorer_names():
        cfg = ScoreConfig(method=method, ig_steps=2)
        scores, gold = score_batch(models[quant], _samples(), cfg)
        ref, ref_gold = score_batch(models["none"], _samples(), cfg)
        assert scores.shape == ref.shape == (3, 2, 256) and torch.isfinite(scores).all() and scores.abs().sum() > 0
        assert _corr(scores, ref) > 0.8, (method, _corr(scores, ref))
        assert torch.allclose(gold, ref_gold, rtol=0.1, atol=0.5), (gold, ref_gold)


@pytest.mark.parametrize("quant", QUANTS)
def test_locate_then_zero_and_amplify_change_the_evaluation(models, quant, score_cache):
    from cnl_core.evaluate.accuracy import EvalConfig
    from cnl_core.experiments.evaluate import run_evaluate
    from cnl_core.experiments.locate import run_locate
    from cnl_core.locate.scorers import ScoreConfig
    from cnl_core.locate.select import LocateParams
    from cnl_core.model.hooks import Intervention

    lm = models[quant]
    res = run_locate(lm, "add1", 3, 2, 0, ScoreConfig("activation"), LocateParams(rule="topk", top_k=20)).result()
    assert 0 < res.n_located and res.model_info["quantization"] == quant and len(res.pairwise) == 1
    cfg = EvalConfig(num_fewshot=0, max_new_tokens=2, bootstrap=0)
    for mode in ("zero", "amplify"):
        ev = run_evaluate(
            lm,
            "add1",
            3,
            0,
            Intervention(res.neurons, mode),
            control_draws=0,
            located_ids=res.located_sample_ids(),
            cfg=cfg,
        )
        assert ev.intervened.gold_loglik != ev.baseline.gold_loglik, mode
        assert ev.baseline.accuracy is not None and 0 <= ev.baseline.accuracy <= 1


@pytest.mark.parametrize("quant", QUANTS)
def test_neuron_inspector_reads_quantized_layers(models, quant):
    from cnl_core.inspect.neuron import inspect_neuron

    rep = inspect_neuron(models[quant], 1, 7, [get_dataset("add1")], n=3, top_k=2)
    full = inspect_neuron(models["none"], 1, 7, [get_dataset("add1")], n=3, top_k=2)
    assert rep.stats["add1"].samples == 3 and len(rep.top_examples) == 2
    assert rep.top_examples[0].sample_id == full.top_examples[0].sample_id
    assert (
        abs(rep.top_examples[0].max_activation - full.top_examples[0].max_activation)
        < 0.3 * abs(full.top_examples[0].max_activation) + 1e-3
    )


@pytest.mark.parametrize("quant", QUANTS)
def test_finetuning_a_quantized_model_is_refused_in_plain_words(models, quant):
    from cnl_core.evaluate.finetune import finetuned
    from cnl_core.model.neurons import NeuronSet

    lm = models[quant]
    with pytest.raises(ParameterError, match="unquantized"):
        with finetuned(lm, NeuronSet.from_pairs(lm.grid, [[0, 1]]), _samples(), steps=1):
            pass


def test_quantize_if_needed_picks_from_the_free_ram(tiny_model_folder, monkeypatch):
    import cnl_core.model.loading as loading
    from cnl_core.errors import ModelLoadError
    from cnl_core.model.loading import memory_plan
    from cnl_core.model.memory import Workload

    spec = ModelSpec(tiny_model_folder, device="cpu", quantization="auto")
    work = Workload("activation", 1, 16, False)
    monkeypatch.setattr(loading, "free_ram_bytes", lambda: 10**12)
    full = memory_plan(spec, work).estimate
    assert full.quantization == "none" and full.fits
    eight = memory_plan(ModelSpec(tiny_model_folder, device="cpu", quantization="8bit"), work).estimate
    room = (eight.need_bytes + full.need_bytes) // 2  # 8-bit fits, float32 does not
    monkeypatch.setattr(loading, "free_ram_bytes", lambda: int(room / 0.9))
    lm = load_model(spec, work)
    assert lm.quantization == "8bit" and lm.plan.estimate.where == "RAM"
    monkeypatch.setattr(loading, "free_ram_bytes", lambda: 1000)
    with pytest.raises(ModelLoadError, match=r"needs about .* GiB \(.* in nf4: .*\), but only 0.00 GiB"):
        load_model(spec, work)

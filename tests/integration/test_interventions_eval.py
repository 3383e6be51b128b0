"""Interventions and evaluation on the real model."""

import threading

import numpy as np
import pytest
import torch

from cnl_core.data.samples import get_dataset
from cnl_core.evaluate.accuracy import EvalConfig, evaluate_samples
from cnl_core.evaluate.controls import random_like
from cnl_core.evaluate.finetune import _neuron_masks, finetuned
from cnl_core.experiments.dose import run_dose_response
from cnl_core.experiments.eval_results import EvalResult
from cnl_core.experiments.evaluate import eval_split, run_evaluate, run_matrix
from cnl_core.experiments.finetune import run_finetune
from cnl_core.model.hooks import Intervention, intervene
from cnl_core.model.neurons import NeuronSet
from cnl_core.serialize import from_data, to_data

FAST = EvalConfig(num_fewshot=1, max_new_tokens=24, batch_size=4, bootstrap=200)


def some_neurons(lm, per_layer=20, layers=(2, 5, 9, 20)):
    return NeuronSet.from_pairs(lm.grid, [[layer, i * 7] for layer in layers for i in range(per_layer)])


def test_intervention_changes_outputs_and_is_fully_undone(lm):
    ids = lm.tokenizer("Question: What is 7 times 6?\nAnswer:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = lm.model(ids).logits
        with intervene(lm, Intervention(some_neurons(lm), "amplify", 5.0)):
            amplified = lm.model(ids).logits
        with pytest.raises(ValueError):
            with intervene(lm, Intervention(some_neurons(lm), "zero")):
                raise ValueError("boom")
        after = lm.model(ids).logits
    assert (before - amplified).abs().max() > 1e-2
    assert torch.equal(before, after)
    assert all(len(m._forward_pre_hooks) == 0 for m in lm.ffn.down)


def test_zeroing_a_whole_layer_changes_the_gold_loglik(lm):
    spec = get_dataset("arithmetic")
    samples = spec.rows()[:4]
    layer = NeuronSet.from_pairs(lm.grid, [[4, i] for i in range(lm.grid.width)])
    base = evaluate_samples(lm, spec, samples, [], FAST)
    zero = evaluate_samples(lm, spec, samples, [], FAST, Intervention(layer, "zero"))
    assert abs(np.mean([r.gold_loglik for r in base]) - np.mean([r.gold_loglik for r in zero])) > 0.05


def test_random_control_matches_sizes_per_layer(lm):
    located = some_neurons(lm, per_layer=5, layers=(0, 3, 3, 29))
    for seed in range(3):
        ctrl = random_like(located, seed)
        assert ctrl.per_layer_counts() == located.per_layer_counts()
    assert random_like(located, 0).pairs() != random_like(located, 1).pairs()
    assert random_like(located, 0).pairs() == random_like(located, 0).pairs()


def test_evaluation_samples_avoid_located_and_fewshot_samples():
    located = [s.id for s in get_dataset("gsm8k").rows()[:600]]
    ids, shots = eval_split("gsm8k", 50, 5, seed=3, exclude=located)
    assert not set(ids) & set(located) and not set(shots) & set(located) and not set(ids) & set(shots)


def test_run_evaluate_reports_baseline_intervention_and_control(lm):
    neurons = some_neurons(lm)
    located = [s.id for s in get_dataset("arithmetic").rows()[:10]]
    typed = run_evaluate(
        lm,
        "arithmetic",
        4,
        seed=0,
        intervention=Intervention(neurons, "zero"),
        control_draws=2,
        located_ids=located,
        cfg=FAST,
    )
    res = to_data(typed)
    assert to_data(from_data(EvalResult, res)) == res  # the JSON reads back to the same result
    assert res["n"] == 4 and not set(res["sample_ids"]) & set(located)
    for part in ("baseline", "intervened", "control"):
        assert 0.0 <= res[part]["accuracy"] <= 1.0 and np.isfinite(res[part]["gold_loglik"])
        lo, hi = res[part]["gold_loglik_ci"]
        assert lo <= res[part]["gold_loglik"] <= hi
    assert len(res["control"]["draws"]) == 2
    controls = res["intervention"]["control_neurons"]  # the control draws' own neurons, per draw
    assert len(controls) == 2 and all(len(c) == len(neurons) for c in controls)
    assert not {tuple(x) for c in controls for x in c} & {tuple(x) for x in neurons.pairs()}
    assert res["intervened"]["delta_gold_loglik"] == pytest.approx(
        res["intervened"]["gold_loglik"] - res["baseline"]["gold_loglik"], abs=1e-6
    )
    assert res["examples"] and "before" in res["examples"][0] and "after" in res["examples"][0]


def test_choice_task_accuracy_and_matrix(lm):
    neurons = some_neurons(lm)
    res = to_data(
        run_matrix(
            lm,
            {"arith": (Intervention(neurons, "amplify", 3.0), [])},
            ["imdb", "arithmetic"],
            2,
            seed=1,
            cfg=EvalConfig(num_fewshot=0, max_new_tokens=8, bootstrap=50),
        )
    )
    for target in ("imdb", "arithmetic"):
        cell = res["cells"]["arith"][target]
        assert cell["delta_gold_loglik"] is not None and np.isfinite(cell["delta_gold_loglik"])
        assert 0.0 <= res["baseline"][target]["accuracy"] <= 1.0


def test_the_dose_response_honours_the_token_positions(lm):
    """Issue #28: positions reach every point of the dose curve (the tab's radio was dropped before)."""
    neurons = some_neurons(lm, per_layer=40)
    cfg = EvalConfig(num_fewshot=0, max_new_tokens=4, bootstrap=0)
    curves = {
        p: run_dose_response(lm, "add1", neurons, (0.0, 1.0), 2, seed=1, cfg=cfg, positions=p)
        for p in ("all", "answer")
    }
    assert curves["all"][1] == curves["answer"][1]  # factor 1: the unmodified model either way
    assert curves["all"][0].delta_gold_loglik != curves["answer"][0].delta_gold_loglik


def test_finetuning_changes_only_the_located_neurons_and_is_restored(lm):
    spec = get_dataset("arithmetic")
    neurons = NeuronSet.from_pairs(lm.grid, [[3, 10], [3, 11], [17, 500]])
    masks = _neuron_masks(lm, neurons)
    originals = [w.detach().clone() for w, _ in masks]
    others = {n: p.detach().clone() for n, p in lm.model.named_parameters() if "layers.3." in n or "layers.17." in n}
    with finetuned(lm, neurons, spec.rows()[:4], steps=3, lr=1e-2) as losses:
        assert len(losses) == 3
        for (w, mask), orig in zip(masks, originals):
            changed = w.detach() != orig
            assert changed.any()
            assert not (changed & ~mask).any()  # nothing outside the neurons' rows/columns moved
        touched = {id(w) for w, _ in masks}
        for name, p in lm.model.named_parameters():
            if name in others and id(p) not in touched:
                assert torch.equal(p.detach(), others[name])
    for (w, _), orig in zip(masks, originals):
        assert torch.equal(w.detach(), orig)
    assert not any(p.requires_grad for p in lm.model.parameters())


def test_run_finetune_compares_located_with_random(lm):
    neurons = some_neurons(lm, per_layer=4)
    train = [s.id for s in get_dataset("arithmetic").rows()[:4]]
    res = to_data(run_finetune(lm, "arithmetic", neurons, train, 2, steps=2, lr=1e-3, cfg=FAST))
    assert {"baseline", "located", "random"} <= set(res) and len(res["located"]["losses"]) == 2


def test_concurrent_interventions_never_leak(lm):
    """Threads evaluating with different interventions get exactly what each gets alone."""
    spec = get_dataset("arithmetic")
    samples = spec.rows()[30:32]
    cfg = EvalConfig(num_fewshot=0, max_new_tokens=6, batch_size=2, bootstrap=0)
    ivs = [None, Intervention(some_neurons(lm), "zero"), Intervention(some_neurons(lm), "amplify", 4.0)]
    alone = [[(r.gold_loglik, r.output) for r in evaluate_samples(lm, spec, samples, [], cfg, iv)] for iv in ivs]
    results = [None] * 6
    errors = []

    def work(k):
        try:
            results[k] = [(r.gold_loglik, r.output) for r in evaluate_samples(lm, spec, samples, [], cfg, ivs[k % 3])]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(6):
        assert results[k] == alone[k % 3]
    assert all(len(m._forward_pre_hooks) == 0 for m in lm.ffn.down)


def test_finetune_on_another_dataset_draws_its_own_training_samples(lm):
    from cnl_core.errors import ParameterError

    neurons = some_neurons(lm, per_layer=2)
    with pytest.raises(ParameterError, match="must come from 'arithmetic'"):
        run_finetune(lm, "arithmetic", neurons, ["gsm8k/00001"], 1, steps=1, cfg=FAST)
    res = to_data(run_finetune(lm, "arithmetic", neurons, None, 1, n_train=2, steps=1, cfg=FAST))
    assert len(res["train_ids"]) == 2 and not set(res["train_ids"]) & set(res["sample_ids"])

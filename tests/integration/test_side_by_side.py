"""Issue #32: one visitor's job never changes another's numbers, by construction.

A hook acts only in the thread that installed it, so a model pass that forgets the lock (the inspector's
one-off projection did) sees the unmodified model while another visitor's edit is on. And different
visitors' jobs run at once (intervene, inspect, steer, dose, an isolated lm-eval run) give exactly the
numbers each gives alone."""

import threading

import pytest
import torch

from cnl_core.data.samples import get_dataset
from cnl_core.evaluate.accuracy import EvalConfig, evaluate_samples
from cnl_core.evaluate.steer import steer
from cnl_core.experiments.dose import run_dose_response
from cnl_core.inspect.neuron import inspect_neuron, output_direction
from cnl_core.model.hooks import Edit, Intervention, edited
from cnl_core.model.neurons import NeuronSet
from cnl_core.serialize import to_data

CFG = EvalConfig(num_fewshot=1, max_new_tokens=4, batch_size=4, bootstrap=0)


def located(lm):
    return NeuronSet.from_pairs(lm.grid, [[layer, i * 11] for layer in range(20, lm.grid.n_layers) for i in range(40)])


def test_a_pass_that_forgets_the_lock_sees_no_other_visitors_edit(lm):
    ids = lm.tokenizer("Question: What is 3 plus 4?\nAnswer:", return_tensors="pt")["input_ids"]
    every = NeuronSet.from_pairs(lm.grid, [[layer, i] for layer in range(lm.grid.n_layers) for i in range(0, 1536, 3)])
    with torch.no_grad():
        clean, column = lm.model(ids).logits, output_direction(lm, 29, 7)
    inside, leave = threading.Event(), threading.Event()

    def visitor_a():  # an edit that changes a third of every layer's neurons, held on while B runs
        with edited(lm, Edit.of(lm, Intervention(every, "zero"))):
            with torch.no_grad():
                seen["a"] = lm.model(ids).logits
            inside.set()
            leave.wait(60)

    seen = {}
    a = threading.Thread(target=visitor_a)
    a.start()
    try:
        assert inside.wait(60)
        with torch.no_grad():  # visitor B, without the model's lock (what a forgetful code path does)
            b_logits, b_column = lm.model(ids).logits, output_direction(lm, 29, 7)
    finally:
        leave.set()
        a.join(60)
    assert (seen["a"] - clean).abs().max() > 1e-2  # A's edit was on
    assert torch.equal(b_logits, clean) and torch.equal(b_column, column)  # B saw none of it


def _jobs(lm, tmp_path):
    from tests.integration.test_harness_isolation import task_folder

    spec, neurons = get_dataset("add1"), located(lm)
    samples = spec.rows()[200:204]
    zero = Intervention(neurons, "zero")
    folder = task_folder(tmp_path, rows=4)

    def intervene_job():
        return [(r.gold_loglik, r.output) for r in evaluate_samples(lm, spec, samples, [], CFG, zero)]

    def inspect_job():
        return to_data(inspect_neuron(lm, 27, 11, [spec], n=3))

    def steer_job():
        return to_data(steer(lm, "Question: What is 2 plus 5?\nAnswer:", {"baseline": None, "intervened": zero}, 3))

    def dose_job():
        return [
            (p.factor, p.accuracy, p.gold_loglik)
            for p in run_dose_response(lm, "add1", neurons, (0.0, 2.0), n=3, cfg=CFG)
        ]

    def harness_job():
        from cnl_core.evaluate.harness import HarnessSettings
        from cnl_core.evaluate.harness_sandbox import IsolatedHarness

        with IsolatedHarness(lm, HarnessSettings(tasks=("iso_sums",), include_path=str(folder))) as h:
            return {k: m.value for k, m in h.evaluate(zero)[0]["iso_sums"].metrics.items()}

    return {
        "intervene": intervene_job,
        "inspect": inspect_job,
        "steer": steer_job,
        "dose": dose_job,
        "lm-eval": harness_job,
    }


def test_visitors_jobs_at_once_give_what_each_gives_alone(lm, tmp_path):
    pytest.importorskip("lm_eval")
    jobs = _jobs(lm, tmp_path)
    alone = {name: job() for name, job in jobs.items()}
    together, errors = {}, []

    def run(name, k):
        try:
            together[(name, k)] = jobs[name]()
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append((name, exc))

    threads = [threading.Thread(target=run, args=(name, k)) for k in range(2) for name in jobs]  # 10 visitors
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors
    for (name, _k), value in together.items():
        assert value == alone[name], name
    assert all(len(m._forward_pre_hooks) == 0 for m in lm.ffn.down)

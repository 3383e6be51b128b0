"""One contract per architecture: every neuron-touching entry point on each adapter type's tiny random model.

Locate, evaluate (and its random controls), dose-response, steering, the neuron inspector and the lm-eval bridge
(loglikelihood and generation, offline) run on a 2-layer model of every adapter-table architecture, with the
built-in tokenizer's vocabulary so the built-in datasets tokenize as they do for real. What is checked can fail:
shapes on the model's own grid, that an intervention on the located neurons changes what is measured while an
empty one changes nothing, that zeroing through the hooks equals zeroing the down projection's weights, and that
no hook is left behind. Random weights: plumbing only, no behaviour is claimed. The knowledge parts have their
own file (test_knowledge_architectures.py); generation against `model.generate`, test_generation_reference.py.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from transformers import CONFIG_MAPPING, AutoModelForCausalLM, AutoTokenizer

from cnl_core.data.samples import get_dataset
from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.evaluate.steer import steer
from cnl_core.experiments.dose import run_dose_response
from cnl_core.experiments.evaluate import run_evaluate
from cnl_core.experiments.locate import run_locate
from cnl_core.inspect.neuron import inspect_neuron
from cnl_core.locate.scorers import ScoreConfig
from cnl_core.locate.select import LocateParams
from cnl_core.model.architectures import FFNAccess
from cnl_core.model.hooks import Intervention, intervene
from cnl_core.model.loading import LoadedModel, ModelSpec
from cnl_core.model.neurons import NeuronSet

from .test_architectures import PER_TYPE, SPECIAL, TINY, TYPES

DATASET = "add1"  # built in, offline, numeric answers: generation and gold log-likelihood both run
EVAL = EvalConfig(num_fewshot=1, max_new_tokens=3, bootstrap=0)
PROMPT = "What is 2 + 3?"


@pytest.fixture(scope="module")
def tokenizer():
    from cnl_core.model.loading import _builtin_folder
    from cnl_core.options import DEFAULT_MODEL

    tok = AutoTokenizer.from_pretrained(_builtin_folder(DEFAULT_MODEL))
    if tok.pad_token is None:  # as load_model sets it
        tok.pad_token = tok.eos_token
    return tok


def contract_lm(model_type: str, tokenizer) -> LoadedModel:
    """The architecture's tiny model (2 layers x 24 neurons) with the tokenizer's vocabulary."""
    config = CONFIG_MAPPING[model_type](**{**PER_TYPE.get(model_type, TINY), "vocab_size": len(tokenizer)}, **SPECIAL)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.requires_grad_(False)  # as load_model leaves it
    ffn = FFNAccess(model, model_type)
    return LoadedModel(
        ModelSpec(model_type), model, tokenizer, model_type, ffn, "float32", "none", f"contract-{model_type}"
    )


@pytest.fixture(scope="module")
def models() -> dict[str, LoadedModel]:
    """The models built so far in this module, by architecture (each test of one architecture reuses its model)."""
    return {}


@pytest.fixture()
def lm(models, tokenizer, request) -> Iterator[LoadedModel]:
    """One model per architecture for the module; after each test, not a hook left on any module."""
    model_type = request.node.callspec.params["model_type"]
    if model_type not in models:
        models[model_type] = contract_lm(model_type, tokenizer)
    yield models[model_type]
    left = [n for n, m in models[model_type].model.named_modules() if m._forward_hooks or m._forward_pre_hooks]
    assert not left, f"hooks left on {left}"


def located(lm: LoadedModel) -> NeuronSet:
    """Neurons in both layers (a fixed set, so that every entry point's test stands alone)."""
    return NeuronSet.from_pairs(lm.grid, [[layer, i] for layer in range(lm.grid.n_layers) for i in range(0, 24, 3)])


def empty(lm: LoadedModel) -> NeuronSet:
    return NeuronSet.from_pairs(lm.grid, [])


@contextmanager
def columns_zeroed(lm: LoadedModel, neurons: NeuronSet) -> Iterator[None]:
    """The neurons' input columns of the down projections set to 0 in the weights (put back on exit). A Linear
    keeps its weight [out, in]; GPT-2's Conv1D keeps it [in, out]."""
    saved = []
    try:
        with torch.no_grad():
            for layer, idx in neurons.by_layer().items():
                weight = lm.ffn.down_weight(layer)
                saved.append((weight, weight.clone()))
                if hasattr(lm.ffn.down[layer], "nf"):
                    weight[torch.from_numpy(idx)] = 0
                else:
                    weight[:, torch.from_numpy(idx)] = 0
        yield
    finally:
        with torch.no_grad():
            for weight, before in saved:
                weight.copy_(before)


@pytest.mark.parametrize("model_type", TYPES)
def test_zeroing_through_the_hooks_equals_zeroing_the_weights_columns(lm, model_type):
    ids = lm.tokenizer([PROMPT, "What is 7 + 1? The answer"], padding=True, return_tensors="pt")["input_ids"]
    neurons = located(lm)
    with torch.no_grad():
        plain = lm.model(input_ids=ids).logits
        with intervene(lm, Intervention(neurons, "zero")):
            hooked = lm.model(input_ids=ids).logits
        with intervene(lm, Intervention(empty(lm), "zero")):
            untouched = lm.model(input_ids=ids).logits
        with columns_zeroed(lm, neurons):
            by_weights = lm.model(input_ids=ids).logits
    assert hooked.shape == plain.shape == (2, ids.shape[1], len(lm.tokenizer))
    torch.testing.assert_close(hooked, by_weights, rtol=1e-5, atol=1e-6)
    assert torch.equal(untouched, plain)
    assert not torch.allclose(hooked, plain)


@pytest.mark.parametrize("model_type", TYPES)
def test_locate_scores_every_neuron_of_the_grid_and_locates_on_it(lm, model_type):
    cfg = ScoreConfig("grad_x_act", max_prompt_tokens=64, max_answer_tokens=8)
    run = run_locate(lm, DATASET, 2, 2, 0, cfg, LocateParams(rule="topk", top_k=5), use_cache=False)
    grid = lm.grid
    assert run.table.scores.shape == (4, grid.n_layers, grid.width)
    assert torch.isfinite(run.table.scores.float()).all() and run.table.scores.abs().sum() > 0
    assert run.prominence().shape == (grid.n_layers, grid.width)
    res = run.result()
    assert res.neurons.grid == grid and 5 <= res.n_located <= 4 * 5
    assert [len(s.sample_ids) for s in res.splits] == [2, 2] and len(res.pairwise) == 1
    assert res.model_info["n_neurons"] == grid.total and res.model_info["model_type"] == model_type


@pytest.mark.parametrize("model_type", TYPES)
def test_evaluate_moves_under_the_located_neurons_and_not_under_an_empty_set(lm, model_type):
    neurons = located(lm)
    ev = run_evaluate(lm, DATASET, 3, 0, Intervention(neurons, "zero"), control_draws=1, cfg=EVAL)
    assert len(ev.sample_ids) == 3 and len(ev.fewshot_ids) == 1 and not set(ev.sample_ids) & set(ev.fewshot_ids)
    assert ev.intervened.gold_loglik != ev.baseline.gold_loglik
    assert 0 <= ev.baseline.accuracy <= 1 and len(ev.examples) == 3
    control = NeuronSet.from_pairs(lm.grid, ev.intervention["control_neurons"][0])
    assert control.per_layer_counts() == neurons.per_layer_counts()  # as many per layer, elsewhere
    assert not set(control.flat.tolist()) & set(neurons.flat.tolist())
    same = run_evaluate(lm, DATASET, 3, 0, Intervention(empty(lm), "zero"), control_draws=0, cfg=EVAL)
    assert same.intervened.gold_loglik == same.baseline.gold_loglik == ev.baseline.gold_loglik
    assert same.intervened.accuracy == same.baseline.accuracy
    assert [e.after for e in same.examples] == [e.before for e in same.examples]


@pytest.mark.parametrize("model_type", TYPES)
def test_dose_response_has_a_point_per_factor_and_factor_one_is_the_unmodified_model(lm, model_type):
    points = run_dose_response(lm, DATASET, located(lm), factors=(0.0, 1.0, 3.0), n=3, cfg=EVAL)
    assert [p.factor for p in points] == [0.0, 1.0, 3.0]
    one = points[1]
    assert one.delta_gold_loglik == 0.0
    assert all(p.gold_loglik != one.gold_loglik and p.delta_gold_loglik != 0 for p in (points[0], points[2]))


@pytest.mark.parametrize("model_type", TYPES)
def test_steering_scores_the_baselines_tokens_under_every_condition(lm, model_type):
    conditions = {
        "baseline": None,
        "intervened": Intervention(located(lm), "amplify", 20.0),
        "control": Intervention(empty(lm), "zero"),
    }
    res = steer(lm, PROMPT, conditions, max_new_tokens=4)
    base = res.answers["baseline"]
    for answer in res.answers.values():
        assert 1 <= len(answer.token_ids) <= 4 and len(answer.tokens) == len(answer.logprobs) == len(answer.token_ids)
    assert res.answers["control"].token_ids == base.token_ids  # no neurons: the unmodified answer
    assert {k: len(v) for k, v in res.baseline_under.items()} == dict.fromkeys(conditions, len(base.token_ids))
    torch.testing.assert_close(torch.tensor(res.baseline_under["baseline"]), torch.tensor(base.logprobs))
    assert res.baseline_under["control"] == res.baseline_under["baseline"]
    assert res.baseline_under["intervened"] != res.baseline_under["baseline"]
    assert res.intervention["n_neurons"] == len(located(lm))


@pytest.mark.parametrize("model_type", TYPES)
def test_the_inspector_reads_one_neuron_on_every_token(lm, model_type):
    rep = inspect_neuron(lm, 1, 7, [get_dataset(DATASET)], n=3, top_k=2)
    assert len(rep.vocab_top) == len(rep.vocab_bottom) == 15
    assert rep.stats[DATASET].samples == 3 and len(rep.top_examples) == 2
    for example in rep.top_examples:
        assert len(example.tokens) == len(example.activations) and example.max_activation == max(example.activations)
    assert rep.top_examples[0].max_activation >= rep.top_examples[1].max_activation


@pytest.mark.parametrize("model_type", TYPES)
def test_the_lm_eval_bridge_applies_the_intervention_to_its_requests(lm, model_type):
    """The harness's own HF model class around ours, answering through `batched_lm` (what `Harness` hands
    simple_evaluate): an empty set answers as the unmodified model, zeroing through the hooks as zeroed weights."""
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from cnl_core.evaluate.harness import batched_lm

    hf = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=2)
    pairs = [(PROMPT, " 5"), ("What is 7 + 1?", " 8 apples")]
    loglik = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    until = {"until": ["\n"], "max_gen_toks": 3, "do_sample": False}
    gen = [Instance("generate_until", {}, (p, until), i) for i, (p, _) in enumerate(pairs)]

    def ask(iv, op, requests):
        return getattr(batched_lm(hf, lm, iv, 1), op)(requests)

    neurons = located(lm)
    plain = ask(None, "loglikelihood", loglik)
    assert len(plain) == 2 and all(isinstance(ll, float) and isinstance(greedy, bool) for ll, greedy in plain)
    assert ask(Intervention(empty(lm), "zero"), "loglikelihood", loglik) == plain
    zeroed = ask(Intervention(neurons, "zero"), "loglikelihood", loglik)
    assert [ll for ll, _ in zeroed] != [ll for ll, _ in plain]
    with columns_zeroed(lm, neurons):
        by_weights = ask(None, "loglikelihood", loglik)
    assert [ll for ll, _ in zeroed] == pytest.approx([ll for ll, _ in by_weights], rel=1e-5, abs=1e-5)
    texts = ask(None, "generate_until", gen)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert ask(Intervention(empty(lm), "zero"), "generate_until", gen) == texts

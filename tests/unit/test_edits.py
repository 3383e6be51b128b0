"""Every intervention mode on every adapter-table architecture (tiny random models), OPT included.

An edit must change exactly the neurons it names, at the positions it names, by its factors, whatever shape a
layer hands its down projection (OPT flattens rows and tokens into one dimension): checked against plain torch
hooks on either side of the edit's, which know the rows and tokens from the input ids, not from neuron_hooks.
The passes that read neurons (inspector, scorers) are checked against the same plain hooks.
"""

import pytest
import torch

from cnl_core.data.samples import DatasetSpec, Sample
from cnl_core.inspect.neuron import token_activations
from cnl_core.locate.scorers import ScoreConfig, score_batch
from cnl_core.model.forward import answer_logprob, encode_teacher_forced, teacher_forced_logprob
from cnl_core.model.hooks import LAST, NO_EDIT, Edit, Intervention, edited, intervene, neuron_hooks
from cnl_core.model.neurons import NeuronSet

from .test_architectures import TYPES
from .test_generation import tiny_lm

ROWS, TOKENS = 3, 7
ANSWERS = torch.tensor([[0, 0, 0, 1, 1, 1, 0], [0, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 1]], dtype=torch.bool)
A = [[0, 1], [0, 5], [1, 2], [1, 7], [1, 23]]  # (layer, index) pairs
B = [[1, 0], [1, 7], [1, 11]]


def plain_hooks(lm, layers, fn):
    """Plain forward pre-hooks on the down projections: fn(layer, x as [rows, tokens, width])."""

    def hook(layer):
        return lambda _m, args: fn(layer, args[0].detach().reshape(ROWS, TOKENS, -1).clone())

    return [lm.ffn.down[layer].register_forward_pre_hook(hook(layer)) for layer in layers]


def before_and_after(lm, ids, block):
    """Per layer, the down projection's input before the edit's hook and after it, in one pass inside `block`."""
    layers, seen = range(lm.grid.n_layers), {}
    handles = plain_hooks(lm, layers, lambda layer, x: seen.__setitem__(layer, [x]))
    try:
        with block:
            handles += plain_hooks(lm, layers, lambda layer, x: seen[layer].append(x))  # they run after the edit's
            with torch.no_grad():
                lm.model(input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    return seen


def factors_by_hand(lm, pairs, scale, rows=slice(None), positions=None):
    """[layers, rows, tokens, width] float32: `scale` at the pairs' neurons for `rows` at `positions` (a [rows,
    tokens] mask; None: all), 1 elsewhere."""
    out = torch.ones(lm.grid.n_layers, ROWS, TOKENS, lm.grid.width)
    where = torch.ones(ROWS, TOKENS, dtype=torch.bool) if positions is None else positions
    for layer, index in pairs:
        out[layer, rows, :, index] = torch.where(where[rows], torch.tensor(scale), out[layer, rows, :, index])
    return out


def mode(lm, name):
    """(the context the pass runs in, the factors it should apply by hand) for one intervention mode."""
    a, b = NeuronSet.from_pairs(lm.grid, A), NeuronSet.from_pairs(lm.grid, B)
    last = torch.zeros(ROWS, TOKENS, dtype=torch.bool)
    last[:, -1] = True
    if name == "every position, zero":
        return edited(lm, Edit.of(lm, Intervention(a, "zero"))), factors_by_hand(lm, A, 0.0)
    if name == "every position, amplify":
        iv = Intervention(a, "amplify", 1.3, positions="answer")  # answer positions, but the pass says "all of them"
        return edited(lm, Edit.of(lm, iv).at(None)), factors_by_hand(lm, A, 1.3)
    if name == "answer positions":
        iv = Intervention(a, "amplify", 3.0, positions="answer")
        return edited(lm, Edit.of(lm, iv).at(ANSWERS)), factors_by_hand(lm, A, 3.0, positions=ANSWERS)
    if name == "intervene, answer positions":  # a pass that does not say: each row's last position
        iv = Intervention(a, "zero", positions="answer")
        return intervene(lm, iv), factors_by_hand(lm, A, 0.0, positions=last)
    if name == "intervene, every position":
        return intervene(lm, Intervention(b, "amplify", 2.5)), factors_by_hand(lm, B, 2.5)
    if name == "per row":  # row 0 unmodified, row 1 zeroes A, row 2 amplifies B
        ivs = [None, Intervention(a, "zero"), Intervention(b, "amplify", 4.0)]
        expected = factors_by_hand(lm, A, 0.0, rows=slice(1, 2)) * factors_by_hand(lm, B, 4.0, rows=slice(2, 3))
        return edited(lm, Edit.rows(lm, ivs, [1, 1, 1])), expected
    if name == "per row and position":  # integrated gradients' kind: whole layer 1, a factor per row at answers
        factor = torch.tensor([0.25, 0.5, 0.75]).view(ROWS, 1, 1)
        edit = Edit({1: factor}, {1: None}, where=ANSWERS)
        expected = torch.ones(lm.grid.n_layers, ROWS, TOKENS, lm.grid.width)
        expected[1] = torch.where(ANSWERS.unsqueeze(-1), factor, 1.0).expand(ROWS, TOKENS, lm.grid.width)
        return edited(lm, edit), expected
    raise ValueError(name)


MODES = [
    "every position, zero",
    "every position, amplify",
    "answer positions",
    "intervene, answer positions",
    "intervene, every position",
    "per row",
    "per row and position",
]


@pytest.mark.parametrize("name", MODES)
@pytest.mark.parametrize("model_type", TYPES)
def test_an_edit_changes_exactly_its_neurons_at_its_positions(model_type, name):
    lm = tiny_lm(model_type)
    torch.manual_seed(1)
    ids = torch.randint(3, 64, (ROWS, TOKENS))
    block, factors = mode(lm, name)
    seen = before_and_after(lm, ids, block)
    changed = 0
    for layer, (before, after) in seen.items():
        torch.testing.assert_close(after, before * factors[layer], rtol=0, atol=0)  # bit for bit
        changed += int((after != before).sum())
        assert torch.equal(after != before, (factors[layer] != 1) & (before != 0))  # nothing else moved
    assert changed > 0
    assert all(len(m._forward_pre_hooks) == 0 for m in [*lm.ffn.down, *lm.ffn.blocks])


@pytest.mark.parametrize("model_type", TYPES)
def test_hooks_see_rows_tokens_width_and_gradients_reach_what_they_mark(model_type):
    """OPT hands its FFN [rows x tokens, width]: the hook still sees [rows, tokens, width], and a tensor it marks
    for gradients is the one the down projection reads."""
    lm = tiny_lm(model_type)
    lm.model.requires_grad_(False)  # as loaded: the activations are leaves, marked by the hook
    ids = torch.randint(3, 64, (ROWS, TOKENS))
    marked = {}

    def mark(layer, x):
        marked[layer] = x.requires_grad_(True)

    with neuron_hooks(lm.ffn, mark), torch.enable_grad():
        logits = lm.model(input_ids=ids).logits
    grads = torch.autograd.grad(logits[:, -1].sum(), [marked[layer] for layer in sorted(marked)])
    assert [tuple(x.shape) for x in marked.values()] == [(ROWS, TOKENS, lm.grid.width)] * lm.grid.n_layers
    assert all(g.abs().sum() > 0 for g in grads)


PROMPTS = ["shared prefix of text. q1: ab", "shared prefix of text. q2: longer", "shared prefix of text. q3"]
ANSWER_TEXTS = [" xy", " z", " abc d"]


@pytest.mark.parametrize("model_type", TYPES)
def test_gold_pass_under_an_answer_position_edit_equals_editing_the_activations_by_hand(model_type):
    """The evaluator's gold pass (a shared context run once, then the rows) against one plain pass whose hooks
    amplify the neurons at the answer positions by hand."""
    lm = tiny_lm(model_type)
    half = [[layer, i] for layer in range(lm.grid.n_layers) for i in range(0, lm.grid.width, 2)]
    iv = Intervention(NeuronSet.from_pairs(lm.grid, half), "amplify", 9.0, positions="answer")
    with lm.lock:
        got = teacher_forced_logprob(lm, Edit.of(lm, iv), PROMPTS, ANSWER_TEXTS, 64).total
        plain = teacher_forced_logprob(lm, NO_EDIT, PROMPTS, ANSWER_TEXTS, 64).total
    batch = encode_teacher_forced(lm.tokenizer, list(zip(PROMPTS, ANSWER_TEXTS)), 64, 512)
    rows, tokens = batch.input_ids.shape
    by_layer = iv.neurons.by_layer()

    def by_hand(layer):
        def hook(_m, args):
            x = args[0].reshape(rows, tokens, -1).clone()
            idx = torch.from_numpy(by_layer[layer])
            x[..., idx] = torch.where(batch.answer_mask.unsqueeze(-1), x[..., idx] * 9.0, x[..., idx])
            return (x.reshape(args[0].shape), *args[1:])

        return hook

    handles = [lm.ffn.down[layer].register_forward_pre_hook(by_hand(layer)) for layer in by_layer]
    try:
        with torch.no_grad():
            expected = answer_logprob(lm.model(input_ids=batch.input_ids).logits, batch)
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=2e-5)
    assert (got - plain).abs().max() > 2e-3  # the edit did something, a hundred times the tolerance


@pytest.mark.parametrize("model_type", TYPES)
def test_inspector_and_scorers_read_the_neurons_on_every_architecture(model_type):
    """The inspector's per-token values and the activation scorer's answer-position means, against plain hooks."""
    lm = tiny_lm(model_type)
    samples = [Sample("a", "hello", " w", "w"), Sample("b", "hi there", " vu", "vu")]
    spec = DatasetSpec("tiny", "", "", "loglik", "", lambda: samples)
    batch = encode_teacher_forced(lm.tokenizer, [(s.prompt, s.answer) for s in samples], 512, 512)
    rows, tokens = batch.input_ids.shape
    raw = {}
    handles = [
        lm.ffn.down[layer].register_forward_pre_hook(
            lambda _m, args, layer=layer: raw.__setitem__(layer, args[0].reshape(rows, tokens, -1).clone())
        )
        for layer in range(lm.grid.n_layers)
    ]
    try:
        with torch.no_grad():
            lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    finally:
        for h in handles:
            h.remove()
    found = token_activations(lm, spec, ["a", "b"], 1, 7)
    for row, example in enumerate(found):
        n = int(batch.attention_mask[row].sum())
        assert example.activations == pytest.approx(raw[1][row, :n, 7].tolist(), rel=1e-5, abs=1e-6)
    scores, _ = score_batch(lm, samples, ScoreConfig(method="activation", max_prompt_tokens=64, max_answer_tokens=16))
    weights = batch.answer_mask.float() / batch.answer_mask.sum(1, keepdim=True)
    for layer in range(lm.grid.n_layers):
        torch.testing.assert_close(
            scores[:, layer], torch.einsum("rt,rtw->rw", weights, raw[layer]), rtol=1e-4, atol=1e-5
        )
    grads, _ = score_batch(lm, samples, ScoreConfig(method="grad_x_act", max_prompt_tokens=64, max_answer_tokens=16))
    assert torch.isfinite(grads).all() and grads.abs().sum() > 0


def test_an_edit_refuses_a_set_of_another_grid_and_changes_nothing_without_neurons():
    from cnl_core.errors import ParameterError
    from cnl_core.model.neurons import NeuronGrid

    lm = tiny_lm("llama")
    with pytest.raises(ParameterError, match="neurons were located on a 3 x 24 grid, but this model has 2 x 24"):
        Edit.of(lm, Intervention(NeuronSet.from_pairs(NeuronGrid(3, 24), [[0, 1]])))
    assert Edit.of(lm, None) is NO_EDIT and not Edit.rows(lm, [None, None], [2, 1]).factors
    empty = Intervention(NeuronSet.from_pairs(lm.grid, []), "zero")
    assert Edit.of(lm, empty) is NO_EDIT
    assert Edit.of(lm, Intervention(NeuronSet.from_pairs(lm.grid, A), "zero")).at(ANSWERS).where is None  # all
    assert (
        Edit.of(lm, Intervention(NeuronSet.from_pairs(lm.grid, A), "zero", positions="answer")).at(LAST).where == LAST
    )


def test_rows_leaving_a_decoding_batch_leave_their_factors():
    lm = tiny_lm("llama")
    a = NeuronSet.from_pairs(lm.grid, A)
    edit = Edit.rows(lm, [None, Intervention(a, "zero"), Intervention(a, "amplify", 2.0)], [2, 1, 1])
    kept = edit.keep(torch.tensor([0, 3]))
    assert kept.factors[0][:, 0].tolist() == [[1.0, 1.0], [2.0, 2.0]]
    assert edit.factors[0].shape[0] == 4  # the original is left as it was
    single = Edit.of(lm, Intervention(a, "zero"))
    assert single.keep(torch.tensor([1])).factors[0] is single.factors[0]  # one row serves every row

"""The neuron inspector and the steering playground on the real built-in model."""

import torch

from cnl_core.data.samples import get_dataset
from cnl_core.evaluate.steer import steer
from cnl_core.inspect.neuron import inspect_neuron, output_direction, token_activations, vocab_projection
from cnl_core.model.hooks import Intervention
from cnl_core.model.neurons import NeuronSet
from cnl_core.serialize import to_data


def test_vocabulary_projection_is_the_direct_matrix_product(lm):
    layer, index = 20, 345
    top, bottom = vocab_projection(lm, layer, index, k=10)
    column = lm.ffn.down[layer].weight[:, index].detach()
    torch.testing.assert_close(output_direction(lm, layer, index), column.float(), atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        direct = lm.model.lm_head(lm.model.model.norm(column.view(1, 1, -1))).view(-1)
    expected = direct.topk(10)
    assert [t.token for t in top] == [lm.tokenizer.decode([int(i)]) for i in expected.indices]
    assert [t.logit for t in top] == [float(v) for v in expected.values]
    assert bottom[0].logit == float(direct.min()) and top[0].logit >= top[-1].logit


def test_top_examples_really_are_the_highest_and_stats_add_up(lm):
    from cnl_core.data.splits import draw_disjoint

    specs = [get_dataset("add1"), get_dataset("tweet_sentiment")]  # two short kinds of text
    rep = inspect_neuron(lm, 12, 100, specs, n=6, top_k=3)
    assert set(rep.stats) == {"add1", "tweet_sentiment"} and rep.stats["add1"].samples == 6
    everything = [
        e
        for spec in specs  # the same samples, recomputed independently
        for e in token_activations(lm, spec, draw_disjoint([s.id for s in spec.rows()], [6], 0)[0], 12, 100)
    ]
    best = sorted((max(e.activations) for e in everything), reverse=True)[:3]
    assert [e.max_activation for e in rep.top_examples] == best
    for ex in rep.top_examples:
        assert len(ex.tokens) == len(ex.activations) and ex.max_activation == max(ex.activations)
    st = rep.stats["add1"]
    assert 0.0 <= st.firing_rate <= 1.0 and st.quantiles["p1"] <= st.quantiles["p50"] <= st.quantiles["p99"] <= st.max
    data = to_data(rep)
    assert {"layer", "index", "vocab_top", "vocab_bottom", "top_examples", "stats"} <= set(data)
    assert {"token", "logit"} <= set(data["vocab_top"][0])
    assert {"sample_id", "tokens", "activations", "max_activation"} <= set(data["top_examples"][0])


def test_steering_with_an_empty_set_equals_the_baseline_and_zeroing_changes_the_answer(lm):
    prompt = "Question: What is 3 + 4?\nAnswer:"
    empty = Intervention(NeuronSet.from_flat(lm.grid, []), "zero")
    many = Intervention(
        NeuronSet.from_pairs(lm.grid, [[layer, i] for layer in range(2, 28, 2) for i in range(0, 1536, 9)]), "zero"
    )
    res = steer(lm, prompt, {"baseline": None, "intervened": empty, "control": many}, max_new_tokens=4)
    base, same = res.answers["baseline"], res.answers["intervened"]
    assert same.token_ids == base.token_ids and same.logprobs == base.logprobs
    assert res.baseline_under["intervened"] == res.baseline_under["baseline"]
    assert res.baseline_under["control"] != res.baseline_under["baseline"]
    data = to_data(res)
    assert {"baseline", "intervened", "control"} <= set(data) and data["baseline"]["text"] == base.text
    assert all(abs(c) < 1e-9 for c in data["baseline_tokens_logprob_change"]["intervened"])


def test_steering_at_the_answer_positions_changes_each_position_that_predicts_an_answer_token(lm):
    """Each step is a full pass over the prompt and the answer so far: 'answer' changes the prompt's last position
    and every answer token's (as the evaluation's decoding does), not only the newest. With a one-token prompt
    that is every position, so it equals 'all'; with a longer prompt it leaves the prompt alone and differs."""
    neurons = NeuronSet.from_pairs(lm.grid, [[layer, i] for layer in range(2, 28, 3) for i in range(0, 1536, 7)])
    at = {p: Intervention(neurons, "zero", positions=p) for p in ("all", "answer")}
    one = lm.tokenizer.decode(lm.tokenizer("Hello")["input_ids"])
    assert len(lm.tokenizer(one)["input_ids"]) == 1
    short = {p: steer(lm, one, {"baseline": None, "intervened": iv}, max_new_tokens=4) for p, iv in at.items()}
    assert short["answer"].answers["intervened"].logprobs == short["all"].answers["intervened"].logprobs
    assert short["answer"].baseline_under["intervened"] == short["all"].baseline_under["intervened"]
    prompt = "Question: What is 3 + 4?\nAnswer:"
    long = {p: steer(lm, prompt, {"baseline": None, "intervened": iv}, max_new_tokens=3) for p, iv in at.items()}
    answer, every, base = (
        long["answer"].baseline_under["intervened"],
        long["all"].baseline_under["intervened"],
        long["all"].baseline_under["baseline"],
    )
    assert answer != every and answer != base
    assert to_data(long["answer"])["intervention"]["positions"] == "answer"

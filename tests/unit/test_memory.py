"""The memory estimate and what it decides: precision, CPU offload, the default batch size."""

import pytest

from cnl_core.errors import ModelLoadError
from cnl_core.model.memory import GIB, ModelSize, Workload, largest_rows, peak_bytes, plan_load, weight_bytes

# Llama-2-7B's shape: 6.7B parameters, 6.5B of them in the decoder's linear layers.
SEVEN_B = ModelSize(
    params=6_738_415_616, quantizable=6_476_005_376, n_layers=32, hidden=4096, intermediate=11008, vocab=32000, heads=32
)
WORK = Workload("grad_x_act", 1, 128, True)


def _plan(requested, gpu_gib, ram_gib, spread=False):
    return plan_load(
        "7b",
        SEVEN_B,
        requested,
        "bfloat16",
        2,
        WORK,
        gpu_free=None if gpu_gib is None else gpu_gib * GIB,
        ram_free=ram_gib * GIB,
        spread=spread,
    )


def test_weights_shrink_with_quantization_and_the_peak_grows_with_rows_tokens_and_backward():
    none, eight, four = (weight_bytes(SEVEN_B, q, 2) for q in ("none", "8bit", "4bit"))
    assert none == SEVEN_B.params * 2 and four < eight < none
    assert 3.5 * GIB < four < 4.2 * GIB  # nf4 7B: about 3.9 GB, as bitsandbytes reports
    fwd, bwd = peak_bytes(SEVEN_B, Workload(backward=False), 2), peak_bytes(SEVEN_B, Workload(backward=True), 2)
    assert fwd < bwd
    assert peak_bytes(SEVEN_B, Workload(rows=16), 2) > peak_bytes(SEVEN_B, Workload(rows=8), 2)
    assert peak_bytes(SEVEN_B, Workload(tokens=512), 2) > 2 * peak_bytes(SEVEN_B, Workload(tokens=256), 2)


def test_auto_picks_the_lightest_precision_that_fits_on_gpu_and_cpu():
    assert _plan("auto", 40, 64).quantization == "none"
    assert _plan("auto", 12, 64).quantization == "8bit"
    assert _plan("auto", 6, 64).quantization == "4bit"
    assert _plan("auto", None, 10).quantization == "8bit"  # a CPU: picked from the free RAM
    assert _plan("auto", None, 6).estimate.where == "RAM"


def test_cpu_offload_when_even_nf4_does_not_fit_the_gpu():
    plan = _plan("auto", 3, 64)
    assert plan.offload and plan.quantization == "none" and "offload" in plan.estimate.where
    room = int(3 * GIB * 0.9) - plan.estimate.peak_bytes  # the GPU keeps room for the activations
    assert plan.max_memory == {0: room, "cpu": int(64 * GIB * 0.9)}
    with pytest.raises(ModelLoadError, match="needs about .* but only"):
        _plan("auto", 3, 8)  # nor on the GPU and the RAM together
    with pytest.raises(ModelLoadError, match="needs about"):
        _plan("4bit", 3, 64)  # an explicit quantization is not traded for offload
    assert _plan("none", 20, 8, spread=True).estimate.where == "GPU + RAM"


def test_describe_is_one_line_with_the_verdict():
    text = _plan("auto", 6, 64).estimate.describe()
    assert "\n" not in text and "nf4" in text and "fits" in text and "NOT" not in text and "free GPU" in text


def test_largest_rows_halves_until_the_peak_fits():
    work = Workload("grad_x_act", 8, 256, True)
    assert largest_rows(SEVEN_B, work, 2, 100 * GIB) == 8
    fits4 = peak_bytes(SEVEN_B, Workload("grad_x_act", 4, 256, True), 2)
    assert largest_rows(SEVEN_B, work, 2, int(fits4 / 0.9) + 1) == 4
    assert largest_rows(SEVEN_B, work, 2, 0) == 1


def test_scoring_workload_per_method():
    from cnl_core.locate.batch_fit import scoring_workload
    from cnl_core.locate.scorers import ScoreConfig

    assert not scoring_workload(ScoreConfig("activation"), 4).backward
    assert scoring_workload(ScoreConfig("grad_x_act"), 4).rows == 4
    ig = ScoreConfig("integrated_gradients", ig_steps=5, max_prompt_tokens=60, max_answer_tokens=4)
    work = scoring_workload(ig, 4)
    assert work.rows == 20 and work.tokens == 64 and work.backward and work.fixed_rows  # at most 4 layers x 5 steps


def test_default_batch_is_lowered_only_when_the_estimate_says_it_would_not_fit(tiny_model_folder, monkeypatch):
    import cnl_core.locate.batch_fit as batch_fit
    from cnl_core.locate.scorers import ScoreConfig
    from cnl_core.model.loading import ModelSpec, load_model
    from cnl_core.options import DEFAULTS

    lm = load_model(ModelSpec(tiny_model_folder, device="cpu"))
    cfg = ScoreConfig("grad_x_act", max_prompt_tokens=200, max_answer_tokens=56)
    assert batch_fit.fitting_batch_size(lm, cfg) == (DEFAULTS.batch_size, None)
    two = peak_bytes(lm.plan.estimate.size, Workload("grad_x_act", 2, 256, True), 4)
    monkeypatch.setattr(batch_fit, "free_bytes_for", lambda model: int(two / 0.9) + 1)
    rows, note = batch_fit.fitting_batch_size(lm, cfg)
    assert rows == 2 and "Batch size 2 instead of 8" in note


def test_dashboard_shows_the_estimate_before_loading_and_a_sentence_for_a_bad_name():
    from ui.tabs.model_tab import estimate_ui

    text = estimate_ui("smollm2-135m", "auto", "cpu", "4bit", False, False)
    assert text.startswith("**Memory estimate** (before loading)") and "nf4" in text and "free RAM" in text
    assert "neither an existing folder" in estimate_ui("bad id!", "auto", "cpu", "none", False, False)


def test_cli_prints_the_estimate_of_the_commands_pass_before_loading(monkeypatch, capsys):
    from cnl_core.cli import arguments as A
    from cnl_core.cli import build_parser, commands

    parse = build_parser().parse_args
    ig = A.workload(parse(["locate", "--method", "integrated_gradients", "--ig-steps", "5"]))
    assert (ig.rows, ig.backward) == (20, True)  # at most 4 layers x 5 steps per pass
    assert A.workload(parse(["locate", "--batch-size", "3"])).rows == 3
    assert (
        not A.workload(parse(["evaluate"])).backward and A.workload(parse(["finetune", "--neurons", "x.json"])).backward
    )
    loaded = []
    monkeypatch.setattr(commands.MODELS, "get", lambda spec, work: loaded.append((spec, work)) or "lm")
    assert (
        commands.command_model(parse(["locate", "--quantization", "4bit", "--device", "cpu", "--method", "activation"]))
        == "lm"
    )
    err = capsys.readouterr().err
    assert err.startswith("memory estimate: 135M parameters in nf4") and "activation, 8 x 256 tokens" in err
    assert loaded[0][1].method == "activation" and not loaded[0][1].backward


def test_a_batch_that_does_not_fit_lowers_the_batch_before_it_refuses_a_precision():
    big = Workload("grad_x_act", 8, 256, True)
    one_row = peak_bytes(SEVEN_B, big.smallest(), 2) + weight_bytes(SEVEN_B, "none", 2)
    assert one_row < 20 * GIB * 0.9 < weight_bytes(SEVEN_B, "none", 2) + peak_bytes(SEVEN_B, big, 2)
    plan = plan_load("7b", SEVEN_B, "none", "bfloat16", 2, big, gpu_free=20 * GIB, ram_free=64 * GIB, spread=False)
    assert plan.quantization == "none" and plan.estimate.work.rows == 1  # refused before; now batch 1
    auto = plan_load("7b", SEVEN_B, "auto", "bfloat16", 2, big, gpu_free=20 * GIB, ram_free=64 * GIB, spread=False)
    assert auto.quantization == "8bit" and auto.estimate.work.rows == 8  # auto: quantize rather than shrink
    ig = Workload("integrated_gradients", 80, 256, True, fixed_rows=True)
    assert ig.smallest() is ig


def test_the_loaded_models_table_shows_the_estimate_it_was_planned_with(tiny_model_folder):
    from ui.tabs.model_tab import load_model_ui

    md, line, _state = load_model_ui(tiny_model_folder, "auto", "cpu", "4bit", False, False, None)
    assert line.split("(when loaded): ")[1] in md  # one free-memory figure on the page, not two
    assert "| dtype / quantization | float32 / 4bit |" in md
    assert "| memory estimate |" in md and "in nf4: weights" in md and "free RAM: fits" in md


def test_counting_a_model_never_gives_another_threads_weights_no_data():
    """The Model tab counts parameters while another visitor's model loads: the count must stay in its thread
    (accelerate's init_empty_weights patched every thread, and two overlapping counts left it patched)."""
    import threading

    import torch
    from transformers import LlamaConfig

    from cnl_core.model.memory import model_size

    config = LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
    )
    done, devices = threading.Event(), set()

    def build():
        while not done.is_set():
            devices.add(torch.nn.Linear(8, 8).weight.device.type)

    def count():
        for _ in range(20):
            model_size(config)

    builder, counters = threading.Thread(target=build), [threading.Thread(target=count) for _ in range(2)]
    builder.start()
    for c in counters:
        c.start()
    for c in counters:
        c.join()
    done.set()
    builder.join()
    assert devices == {"cpu"} and torch.nn.Linear(2, 2).weight.device.type == "cpu"


def test_kv_bytes_per_token_counts_key_value_heads_and_layers():
    from transformers import GPT2Config, LlamaConfig

    from cnl_core.model.memory import kv_bytes_per_token

    seven_b = LlamaConfig(hidden_size=4096, num_attention_heads=32, num_hidden_layers=32)
    assert kv_bytes_per_token(seven_b, 2) == 32 * 2 * 4096 * 2  # 0.5 MiB a token in bf16
    grouped = LlamaConfig(hidden_size=128, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=3)
    assert kv_bytes_per_token(grouped, 4) == 3 * 2 * (2 * 32) * 4
    assert kv_bytes_per_token(GPT2Config(n_embd=64, n_head=4, n_layer=2), 4) == 2 * 2 * 64 * 4
    explicit = LlamaConfig(
        hidden_size=128, num_attention_heads=4, head_dim=64, num_key_value_heads=1, num_hidden_layers=2
    )  # a head size of its own (as Gemma's), one key/value head
    assert kv_bytes_per_token(explicit, 2) == 2 * 2 * 64 * 2


def test_decoding_parts_are_bounded_by_rows_and_by_the_free_memory(tiny_model_folder, monkeypatch):
    import cnl_core.model.generation as generation
    from cnl_core.model import context_attention
    from cnl_core.model.loading import ModelSpec, load_model
    from cnl_core.model.memory import kv_bytes_per_token

    lm = load_model(ModelSpec(tiny_model_folder, device="cpu"))
    per_token = kv_bytes_per_token(lm.model.config, 4)
    copied = not context_attention.eligible(lm.model)
    # 8 rows of 50 own prompt tokens, a 300-token shared context, answers of 30 tokens, 20 new tokens
    kept = (300 + 8 * 50) * per_token
    decoding = 8 * (50 + 20 + (300 if copied else 0)) * per_token
    gold = 8 * (300 + 50 + 30) * per_token
    monkeypatch.setattr(generation, "MARGIN", 1.0)

    def parts(free: int) -> int:
        monkeypatch.setattr(generation, "free_bytes_for", lambda model: free)
        return generation.parts_that_fit(lm, 8, 300, 50, 30, 20)

    assert parts(10**15) == generation.MAX_DECODE_ROWS // 8
    three = 3 * kept + max(gold, 3 * decoding)  # 3 kept, and the larger of a gold pass and 3 decodings
    assert parts(three) == 3 and parts(three - 1) == 2
    assert parts(0) == 1  # at least one part


def test_conditions_at_once_counts_what_the_gold_pass_will_see(monkeypatch):
    from types import SimpleNamespace

    from cnl_core.data.samples import Sample
    from cnl_core.evaluate import accuracy

    class Chars:  # a token per character, and one special token in front
        def __call__(self, texts, add_special_tokens=True):
            return {"input_ids": [([1] if add_special_tokens else []) + [ord(c) for c in t] for t in texts]}

    asked = []
    monkeypatch.setattr(accuracy, "parts_that_fit", lambda lm, *args: asked.append(args) or 1)
    lm = SimpleNamespace(tokenizer=Chars())
    prefix = "example " * 5  # 40 characters, shared by every prompt
    chunk = [Sample("a", "Q: one?", "1 is the answer", "1"), Sample("b", "Q: three and a half?", "3.5", "3.5")]
    accuracy._conditions_at_once(lm, prefix, chunk, accuracy.EvalConfig(), 7)
    # shared: the special token, the prefix and "Q: " (44); own: the longest prompt's rest (17); answer: 15
    assert asked[-1] == (2, 44, 17, 15, 7)
    accuracy._conditions_at_once(lm, prefix, chunk, accuracy.EvalConfig(max_context_tokens=30), 7)
    assert asked[-1] == (2, 0, 30, 15, 7)  # cut from the left, the prompts start apart: nothing is shared

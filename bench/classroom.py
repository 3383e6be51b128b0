"""Classroom figures: the one-click demo's wall time, and how fast an Intervene run is on the built-in model.

Each is measured in this run, on this machine, next to its reference where there is one.
"""

from __future__ import annotations

import time

from bench.figures import _verdict

# The neurons every Intervene figure changes: 10 in each of three layers (a located set's size, not its place).
NEURONS = [[layer, i] for layer in (5, 12, 20) for i in range(0, 30, 3)]


def demo_time(gpu: bool) -> list:
    """The demo end to end (locate, split agreement, zero/amplify vs controls), cache empty: target <= 90 s."""
    from cnl_core.experiments.demo import DEMO, run_demo
    from cnl_core.model.loading import load_model

    lm = load_model("smollm2-135m")
    start = time.perf_counter()
    run_demo(lm, DEMO)
    t = time.perf_counter() - start
    return [
        (
            f"one-click demo ({DEMO.dataset}, {DEMO.n} x 2 located, {DEMO.eval_n} held out, "
            f"{DEMO.control_draws} control draws)",
            f"{t:.0f} s",
            "",
            "<= 90 s",
            _verdict(t <= 90),
        )
    ]


def intervene_speed(gpu: bool) -> list:
    """Intervene as the dashboard's defaults run it (n = 8, 2 control draws) on every built-in task, and the GSM8K
    setting of the classroom trial (n = 8, 5-shot, 96 new tokens, 2 draws) against the code of the day the issue
    was filed (bench/reference_eval.py), same machine, same run, same neurons: the ratio, and whether every
    number agrees (each condition's gold log-likelihood and accuracy, each control draw, the example answers)."""
    from bench.reference_eval import REFERENCE, run_reference
    from cnl_core.evaluate.accuracy import EvalConfig
    from cnl_core.experiments.evaluate import run_evaluate
    from cnl_core.model.hooks import Intervention
    from cnl_core.model.loading import load_model
    from cnl_core.model.neurons import NeuronSet

    lm = load_model("smollm2-135m")
    iv = Intervention(NeuronSet.from_pairs(lm.grid, NEURONS), "zero")
    rows = []
    for dataset in ("add1", "imdb", "arithmetic", "gsm8k", "asdiv"):  # GSM8K/asdiv: 5-shot, 256 new tokens
        start = time.perf_counter()
        run_evaluate(lm, dataset, 8, 0, iv, control_draws=2, cfg=EvalConfig())
        t = time.perf_counter() - start
        rows.append(
            (
                f"Intervene defaults on {dataset} (n = 8, 2 control draws)",
                f"{t:.1f} s",
                "",
                "<= 30 s",
                _verdict(t <= 30),
            )
        )
    times = []
    for _ in range(2):
        start = time.perf_counter()
        new = run_evaluate(
            lm,
            "gsm8k",
            8,
            0,
            iv,
            control_draws=2,
            cfg=EvalConfig(num_fewshot=5, max_new_tokens=96),
            control_may_overlap=True,
        )  # the reference's controls could overlap the set: same draws
        times.append(time.perf_counter() - start)
    old = run_reference(NEURONS, repeat=2)
    t_new, t_old, same = min(times), old["seconds"], _same_numbers(new, old["result"])
    ratio = t_old / t_new
    rows.append(
        (
            f"GSM8K Intervene (n = 8, 5-shot, 96 tokens, 2 draws; best of 2) vs the code of {REFERENCE}, "
            "when the issue was filed",
            f"{t_new:.1f} s vs {t_old:.1f} s; same numbers: {same}",
            f"{ratio:.2f}x",
            ">= 3x, same numbers",
            _verdict(ratio >= 3 and same),
        )
    )
    return rows


def _same_numbers(new, old: dict, tol: float = 1e-5) -> bool:
    """Every condition's accuracy and gold log-likelihood, every control draw, and the example answers."""
    pairs = [(new.baseline, old["baseline"]), (new.intervened, old["intervened"]), (new.control, old["control"])]
    pairs += list(zip(new.control.draws, old["control"]["draws"]))
    close = all(
        _get(a, "accuracy") == b["accuracy"] and abs(_get(a, "gold_loglik") - b["gold_loglik"]) <= tol for a, b in pairs
    )
    answers = [(e.before, e.after) for e in new.examples] == [(e["before"], e["after"]) for e in old["examples"]]
    return close and answers


def _get(summary, key: str):
    return summary[key] if isinstance(summary, dict) else getattr(summary, key)


def dashboard_overhead(gpu: bool) -> list:
    """The dashboard's Intervene (through a running app and its HTTP API, as a browser calls it) against the
    library call with the same settings (add1, n = 8, 2 control draws), each run twice, alternating; the best
    of each is compared: target <= 1.1x."""
    import socket

    from gradio_client import Client

    from cnl_core.evaluate.accuracy import EvalConfig
    from cnl_core.experiments.evaluate import run_evaluate
    from cnl_core.experiments.locate import run_locate
    from cnl_core.locate.select import LocateParams
    from cnl_core.model.hooks import Intervention
    from cnl_core.model.model_cache import MODELS
    from ui.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = build_app()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.predict(
            ["add1"],
            12,
            2,
            0,
            "grad_x_act",
            20,
            "right",
            0,
            0,
            8,
            "relative",
            0.1,
            0.5,
            100,
            3.0,
            "positive",
            api_name="/locate_ui",
        )
        client.predict(api_name="/_labels_1")  # what the browser runs next: the Intervene picker's choices
        lm = MODELS.get("smollm2-135m")
        located = run_locate(lm, "add1", 12, 2, 0, params=LocateParams(tau=0.1)).result()
        iv = Intervention(located.neurons, "zero")
        times: dict[str, list[float]] = {"library": [], "dashboard": []}
        for _ in range(2):
            start = time.perf_counter()
            run_evaluate(
                lm, "add1", 8, 0, iv, control_draws=2, located_ids=located.located_sample_ids(), cfg=EvalConfig()
            )
            times["library"].append(time.perf_counter() - start)
            start = time.perf_counter()
            client.predict(
                "smollm2-135m:add1", "zero", 2.0, "all", ["add1"], 8, 0, 2, -1, 0, False, api_name="/intervene_ui"
            )
            times["dashboard"].append(time.perf_counter() - start)
    finally:
        app.close()
    lib, dash = min(times["library"]), min(times["dashboard"])
    return [
        (
            "dashboard Intervene vs the library call (add1, n = 8, 2 draws; best of 2 each)",
            f"{dash:.1f} s vs {lib:.1f} s",
            f"{dash / lib:.2f}x",
            "<= 1.1x",
            _verdict(dash / lib <= 1.1),
        )
    ]


def bfloat16_speed(gpu: bool) -> list:
    """The GSM8K classroom setting with the built-in model in bfloat16 against float32, same run: what a user
    gains by choosing bfloat16 on a CPU with AVX-512 BF16 (or AMX), and how far the numbers move."""
    from cnl_core.evaluate.accuracy import EvalConfig
    from cnl_core.experiments.evaluate import run_evaluate
    from cnl_core.model.hooks import Intervention
    from cnl_core.model.loading import ModelSpec, load_model
    from cnl_core.model.neurons import NeuronSet

    runs = {}
    for dtype in ("float32", "bfloat16"):
        lm = load_model(ModelSpec("smollm2-135m", dtype=dtype))
        iv = Intervention(NeuronSet.from_pairs(lm.grid, NEURONS), "zero")
        times = []
        for _ in range(2):
            start = time.perf_counter()
            result = run_evaluate(
                lm, "gsm8k", 8, 0, iv, control_draws=2, cfg=EvalConfig(num_fewshot=5, max_new_tokens=96)
            )
            times.append(time.perf_counter() - start)
        runs[dtype] = (min(times), result)
    (t32, r32), (t16, r16) = runs["float32"], runs["bfloat16"]
    shift = max(
        abs(a.gold_loglik - b.gold_loglik)
        for a, b in ((r32.baseline, r16.baseline), (r32.intervened, r16.intervened), (r32.control, r16.control))
    )
    same = sum(a.before == b.before and a.after == b.after for a, b in zip(r32.examples, r16.examples))
    return [
        (
            "GSM8K Intervene (n = 8, 5-shot, 96 tokens, 2 draws; best of 2) in bfloat16 vs float32 (CPU)",
            f"{t16:.1f} s vs {t32:.1f} s; gold log-likelihoods differ by up to {shift:.4f}; "
            f"{same}/{len(r32.examples)} example answers identical",
            f"{t32 / t16:.2f}x",
            "reported (other numbers)",
            "info",
        )
    ]

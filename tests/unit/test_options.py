"""One source of truth: the CLI and the dashboard show the library's defaults and choices."""

import gradio as gr
import torch

from cnl_core.cli import build_parser
from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.locate import scorers
from cnl_core.locate.scorers import ScoreConfig, register_scorer, scorer_names
from cnl_core.locate.select import LocateParams
from cnl_core.options import DEFAULTS, QUANTIZATIONS


def test_cli_defaults_are_the_library_defaults():
    loc = build_parser().parse_args(["locate"])
    assert (loc.n, loc.splits, loc.seed, loc.dataset) == (DEFAULTS.n, DEFAULTS.splits, DEFAULTS.seed, DEFAULTS.dataset)
    assert (loc.method, loc.ig_steps) == (ScoreConfig().method, ScoreConfig().ig_steps)
    assert loc.batch_size is None  # the library's default batch, lowered only where the memory estimate says so
    p = LocateParams()
    assert (loc.rule, loc.tau, loc.top_k, loc.sigma, loc.p) == (p.rule, p.tau, p.top_k, p.sigma, p.p)
    ev = build_parser().parse_args(["evaluate"])
    cfg = EvalConfig()
    assert (ev.n, ev.control_draws, ev.factor) == (DEFAULTS.eval_n, DEFAULTS.control_draws, DEFAULTS.amplify_factor)
    assert (ev.max_new_tokens, ev.fewshot, ev.bootstrap) == (cfg.max_new_tokens, cfg.num_fewshot, cfg.bootstrap)


def test_dashboard_defaults_and_choices_are_the_library_ones():
    from ui.app import build_app

    app = build_app()
    by_label = {getattr(b, "label", None): b for b in app.blocks.values()}
    assert EvalConfig().max_new_tokens is None and by_label["max new tokens (0: the task's own)"].value == 0
    assert by_label["n per split"].value == DEFAULTS.n and by_label["n test samples"].value == DEFAULTS.eval_n
    assert by_label["random-control draws"].value == DEFAULTS.control_draws
    quant = by_label["quantization (saves memory, not time)"]
    assert isinstance(quant, gr.Dropdown) and [c[0] for c in quant.choices] == list(QUANTIZATIONS)
    assert [c[0] for c in by_label["score method (integrated gradients: the paper's, slow on CPU)"].choices] == \
        list(scorer_names())


def test_a_new_scoring_method_is_one_registered_function(monkeypatch):
    monkeypatch.setattr(scorers, "_SCORERS", dict(scorers._SCORERS))

    @register_scorer("random_baseline")
    def random_baseline(lm, samples, cfg):
        return torch.rand(len(samples), 2, 3), torch.zeros(len(samples))

    assert "random_baseline" in scorer_names()
    assert "random_baseline" in build_parser().parse_args(["locate", "--method", "random_baseline"]).method
    assert "ig_steps" not in ScoreConfig(method="random_baseline").key_params()
    assert "ig_steps" in ScoreConfig(method="integrated_gradients").key_params()

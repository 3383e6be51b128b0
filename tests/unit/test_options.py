"""One source of truth: the CLI and the dashboard show the library's defaults and choices."""

import argparse
import json

import gradio as gr
import numpy as np
import pytest
import torch

from cnl_core.cli import build_parser
from cnl_core.errors import ParameterError
from cnl_core.evaluate.accuracy import EvalConfig, SampleResult
from cnl_core.evaluate.stats import Deltas, Summary, per_sample_metrics
from cnl_core.experiments.eval_results import MatrixResult
from cnl_core.locate import scorers
from cnl_core.locate.scorers import ScoreConfig, register_scorer, scorer_names
from cnl_core.locate.select import LocateParams
from cnl_core.options import DEFAULTS, METRIC_TITLES, METRICS, QUANTIZATIONS
from cnl_core.report import charts


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
    assert [c[0] for c in by_label["score method (integrated gradients: the paper's, slow on CPU)"].choices] == list(
        scorer_names()
    )
    for label in ("cell: the change of", "effect measured on"):  # the matrix's cells, the specificity index
        assert [c[1] for c in by_label[label].choices] == list(METRICS) and by_label[label].value == METRICS[0]
        assert [c[0] for c in by_label[label].choices] == [METRIC_TITLES[m] for m in METRICS]  # shown by title


def test_metric_names_are_defined_once_and_read_by_the_cli_the_library_and_the_charts():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("matrix", "specificity"):
        metric = next(a for a in sub.choices[command]._actions if a.dest == "metric")
        assert tuple(metric.choices) == METRICS and metric.default == METRICS[0]
    before = [np.array([0.0, 1.0]), np.array([-1.0, -2.0])]  # per sample: accuracy, gold log-likelihood
    draws = [SampleResult(str(i), bool(a), g, "") for i, (a, g) in enumerate(zip(*before))]
    assert set(per_sample_metrics(draws)) == set(METRICS)
    baseline = Summary(-1.5, None, 0.5)
    cells = {"s": {"t": Summary(-2.0, None, 0.0, deltas=Deltas(-0.5, None, -0.5, None))}}
    matrix = MatrixResult("m", "zero", 0.0, 2, 0, ["s"], ["t"], {"t": baseline}, cells, EvalConfig())
    for metric in METRICS:
        chart = charts.cross_matrix_heatmap(matrix, metric).to_dict()
        assert METRIC_TITLES[metric] in json.dumps(chart) and chart["datasets"]
    with pytest.raises(ParameterError, match="Metric must be one of gold_loglik, accuracy, not 'delta_gold_loglik'"):
        charts.cross_matrix_heatmap(matrix, "delta_gold_loglik")  # the cell's name is not a metric
    with pytest.raises(ParameterError, match="Positions must be one of all, answer, not 'middle'"):
        MatrixResult("m", "zero", 0.0, 2, 0, ["s"], ["t"], {"t": baseline}, cells, EvalConfig(), "middle")


def test_a_new_scoring_method_is_one_registered_function(monkeypatch):
    monkeypatch.setattr(scorers, "_SCORERS", dict(scorers._SCORERS))

    @register_scorer("random_baseline")
    def random_baseline(lm, samples, cfg):
        return torch.rand(len(samples), 2, 3), torch.zeros(len(samples))

    assert "random_baseline" in scorer_names()
    assert "random_baseline" in build_parser().parse_args(["locate", "--method", "random_baseline"]).method
    assert "ig_steps" not in ScoreConfig(method="random_baseline").key_params()
    assert "ig_steps" in ScoreConfig(method="integrated_gradients").key_params()

"""Evaluation bars: readable axis titles, and accuracy on its whole range."""

from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.evaluate.stats import ControlSummary, Summary
from cnl_core.experiments.eval_results import EvalResult
from cnl_core.report.charts import evaluation_bars


def result(value):
    part = {"accuracy": value, "accuracy_ci": [value, value], "gold_loglik": -1.2, "gold_loglik_ci": [-1.3, -1.1]}
    return EvalResult(
        "m",
        "gsm8k",
        "generate_number",
        1,
        0,
        ["a"],
        [],
        EvalConfig(),
        Summary(**part),
        intervened=Summary(**part),
        control=ControlSummary(**part),
    )


def test_accuracy_axis_spans_zero_to_one_under_one_title():
    spec = evaluation_bars(result(0.0), "accuracy").to_dict()
    ys = [layer["encoding"]["y"] for layer in spec["layer"]]
    assert {y["title"] for y in ys} == {"accuracy"}
    assert all(y["scale"]["domain"] == [0, 1] for y in ys)


def test_loglik_axis_is_titled_in_words():
    spec = evaluation_bars(result(0.5), "gold_loglik").to_dict()
    assert {layer["encoding"]["y"]["title"] for layer in spec["layer"]} == {"gold log-likelihood / token"}


def test_the_dose_chart_says_when_only_the_answer_positions_were_changed():
    import json

    from cnl_core.experiments.dose import DosePoint
    from cnl_core.report.charts import dose_chart

    points = [DosePoint(0.0, 0.1, None, -2.0, -1.0, None), DosePoint(1.0, 0.5, None, -1.0, 0.0, None)]
    every, answer = (json.dumps(dose_chart(points, "add1", p).to_dict()) for p in ("all", "answer"))
    assert "at the answer positions" in answer and "at the answer positions" not in every
    assert "gold log-likelihood / token" in every


def test_matrix_labels_stay_distinct_when_names_share_a_long_model_prefix():
    """A Compare matrix holds every set of a run (all, split0, split1, ...): cut to 18 characters they all read
    'smollm2-135m:gsm8…', and their cells were drawn on top of each other."""
    from cnl_core.report.charts import matrix_heatmap, short_labels

    names = [f"smollm2-135m:{d}/{part}" for d in ("gsm8k", "imdb") for part in ("all", "split0", "split1")]
    labels = short_labels(names)
    assert len(set(labels.values())) == len(names) and labels[names[1]] == "gsm8k/split0"
    chart = matrix_heatmap(names, [[1.0] * 6 for _ in names], "Overlap").to_dict()
    data = next(iter(chart["datasets"].values()))
    assert len({(r["row_label"], r["column_label"]) for r in data}) == 36  # one cell per pair, none on another

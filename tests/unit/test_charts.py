"""Evaluation bars: readable axis titles, and accuracy on its whole range."""

from cnl_core.charts import evaluation_bars


def result(value):
    part = {"accuracy": value, "accuracy_ci": [value, value], "gold_loglik": -1.2, "gold_loglik_ci": [-1.3, -1.1]}
    return {"dataset": "gsm8k", "baseline": part, "intervened": part, "control": part}


def test_accuracy_axis_spans_zero_to_one_under_one_title():
    spec = evaluation_bars(result(0.0), "accuracy").to_dict()
    ys = [layer["encoding"]["y"] for layer in spec["layer"]]
    assert {y["title"] for y in ys} == {"accuracy"}
    assert all(y["scale"]["domain"] == [0, 1] for y in ys)


def test_loglik_axis_is_titled_in_words():
    spec = evaluation_bars(result(0.5), "gold_loglik").to_dict()
    assert {layer["encoding"]["y"]["title"] for layer in spec["layer"]} == {"gold log-likelihood / token"}

"""Typed results: JSON round trips, and every malformed field refused at load with a sentence."""

import copy
import json
import math

import pytest

from cnl_core.compare.overlap import compare_sets
from cnl_core.errors import ResultFileError
from cnl_core.experiments.eval_results import EvalResult
from cnl_core.experiments.locate_result import LocateResult, SplitPair, SplitResult, TopNeuron
from cnl_core.model.neurons import NeuronGrid, NeuronSet
from cnl_core.serialize import from_data, to_data

GRID = NeuronGrid(3, 10)


def result() -> LocateResult:
    a, b = NeuronSet.from_flat(GRID, [1, 2, 12]), NeuronSet.from_flat(GRID, [2, 12, 29])
    return LocateResult(
        model="m",
        dataset="d",
        neurons=NeuronSet.from_flat(GRID, [2, 12]),
        n=3,
        k=2,
        seed=1,
        splits=[SplitResult(["d/1", "d/2", "d/3"], a), SplitResult(["d/4", "d/5", "d/6"], b)],
        pairwise=[SplitPair(0, 1, compare_sets(a, b))],
        top_neurons=[TopNeuron(0, 2, 0.5)],
    )


def test_round_trip_is_exact_and_agreement_is_the_mean_over_pairs():
    r = result()
    data = json.loads(json.dumps(to_data(r)))
    back = from_data(LocateResult, data)
    assert to_data(back) == to_data(r)
    assert back.located_sample_ids() == ["d/1", "d/2", "d/3", "d/4", "d/5", "d/6"]
    assert back.agreement().iou == pytest.approx(2 / 4) and back.n_located == 2


def _broken(path: list, value):
    data = copy.deepcopy(to_data(result()))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    "path,value,words",
    [  # one error, ResultFileError, whose sentence starts at the field
        (["grid", "n_layers"], -3, "grid: A grid of -3 x 10 neurons is impossible"),
        (["grid", "width"], 10**12, "grid: A grid of 3 x 1000000000000 neurons is impossible"),
        (["grid", "width"], "10", "grid.width: expected a whole number, got text"),
        (["neurons"], [[3, 0]], "neurons: Layer 3 does not exist"),
        (["neurons"], [[0, 10]], "neurons: Neuron index 10 does not exist"),
        (["neurons"], [[0, 1.5]], "neurons: A neuron must be a [layer, index] pair of whole numbers"),
        (["neurons"], "all of them", "neurons: Neurons must be a list of [layer, index]"),
        (["dataset"], "x" * 300, "dataset: the 'dataset' name is 300 characters"),
        (["model"], 5, "model: expected text, got a number"),
        (["model"], " ", "model: the 'model' name is empty"),
        (["pairwise"], {"a": 0}, "pairwise: expected a list, got an object"),
        (["pairwise", 0, "iou"], "high", "pairwise[0].iou: expected a number, got text"),
        (["pairwise", 0, "iou"], None, "pairwise[0]: the overlap, IoU, chance levels and p-value must be finite"),
        (["pairwise", 0, "iou"], 7.0, "pairwise[0]: an overlap, IoU or p-value outside 0..1"),
        (["pairwise", 0, "b"], 5, "pairwise[0].b: 5 is not a whole number from 0 and below 2"),
        (["pairwise", 0, "size_a"], -1, "pairwise[0].size_a: -1 is not a whole number from 0"),
        (["splits", 0, "sample_ids"], [1, 2], "splits[0].sample_ids[0]: expected text, got a number"),
        (["splits", 1, "neurons"], [[0, 99]], "splits[1].neurons: Neuron index 99 does not exist"),
        (["top_neurons", 0, "layer"], 3, "top_neurons[0].layer: 3 is not a whole number from 0 and below 3"),
        (["params", "locate", "tau"], 9.0, "params.locate: tau .x sample max.: 9 is out of range"),
        (["params", "score", "method"], "magic", "params.score: Unknown scoring method"),
        (["cache", "reused"], -2, "cache.reused: -2 is not a whole number from 0"),
    ],
)
def test_malformed_fields_are_refused_with_a_sentence_naming_the_field(path, value, words):
    with pytest.raises(ResultFileError, match="^" + words.replace("[", r"\[").replace("]", r"\]")):
        from_data(LocateResult, _broken(path, value))


def test_deeply_nested_and_non_object_files_are_refused(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ResultFileError, match="nested too deeply|JSON object"):
        LocateResult.read(deep)
    nested = tmp_path / "nested.json"
    nested.write_text(
        json.dumps(
            {
                "grid": {"n_layers": 3, "width": 10},
                "neurons": [],
                "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
            }
        )
    )
    with pytest.raises(ResultFileError, match="nested too deeply"):
        LocateResult.read(nested)


def test_numbers_json_allows_but_python_cannot_hold_are_refused(tmp_path):
    data = to_data(result())
    data["top_neurons"][0]["mean_score"] = 10**400
    with pytest.raises(ResultFileError, match=r"top_neurons\[0\].mean_score: 1000.* is too large for a number"):
        from_data(LocateResult, data)
    long = tmp_path / "long.json"
    long.write_text('{"grid": {"n_layers": 3, "width": 10}, "neurons": [], "n": ' + "9" * 5000 + "}")
    with pytest.raises(ResultFileError, match="Could not read"):
        LocateResult.read(long)
    data = to_data(result())
    data["mean_gold_logprob"] = float("nan")  # an empty mean is written as NaN and must read back
    assert math.isnan(from_data(LocateResult, json.loads(json.dumps(data))).mean_gold_logprob)


def _evaluation() -> dict:
    part = {"accuracy": 0.5, "accuracy_ci": [0.0, 1.0], "gold_loglik": -1.0, "gold_loglik_ci": [-1.5, -0.5]}
    return {
        "kind": "cnl.evaluate",
        "model": "m",
        "dataset": "d",
        "task_kind": "choice",
        "n": 2,
        "seed": 0,
        "sample_ids": ["d/1", "d/2"],
        "eval_config": {},
        "baseline": part,
        "intervened": {**part, "delta_gold_loglik": 0.1, "delta_gold_loglik_ci": [0.0, 0.2]},
        "control": {**part, "draws": [{"accuracy": 0.5, "gold_loglik": -1.0}]},
    }


@pytest.mark.parametrize(
    "key,value,words",
    [
        ("n", float("inf"), "n: expected a whole number, got a number"),
        ("n", "2", "n: expected a whole number, got text"),
        ("sample_ids", "d/1", "sample_ids: expected a list, got text"),
        ("kind", "cnl.locate", "not a cnl.evaluate result (its kind is 'cnl.locate')"),
        (("baseline", "accuracy_ci"), "wide", "baseline.accuracy_ci: expected a list, got text"),
        (("baseline", "accuracy_ci"), [1], "baseline: accuracy_ci: an interval is [low, high], not 1 numbers"),
        (("baseline", "gold_loglik"), "x", "baseline.gold_loglik: expected a number, got text"),
        (("intervened", "delta_gold_loglik_ci"), {"lo": 0}, "intervened.delta_gold_loglik_ci: expected a list"),
        (("control", "draws"), [1], "control.draws[0]: expected an object, got a number"),
        (("eval_config", "num_fewshot"), 99, "eval_config: few-shot (-1: the task's own): 99 is out of range"),
        ("intervention", [1], "intervention: expected an object (InterventionRecord), got a list"),
        ("examples", [{"id": "d/1"}], "examples[0].prompt: missing"),
    ],
)
def test_evaluation_files_are_checked_field_by_field(key, value, words):
    data = _evaluation()
    assert from_data(EvalResult, copy.deepcopy(data)).intervened.deltas.delta_gold_loglik == 0.1
    if isinstance(key, tuple):
        data[key[0]][key[1]] = value
    else:
        data[key] = value
    with pytest.raises(
        ResultFileError,
        match="^" + words.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)"),
    ):
        from_data(EvalResult, data)


def test_a_file_names_itself_and_the_field_and_every_reader_raises_the_one_error(tmp_path):
    """Every result file goes through one reader: a bad one is a ResultFileError naming the file and the field
    (the readers raised NeuronSetError, or a sentence without the field, before)."""
    from cnl_core.experiments.harness_eval import HarnessEvalResult

    data = to_data(result())
    data["splits"][1]["sample_ids"] = "d/4"
    (tmp_path / "set.json").write_text(json.dumps(data))
    with pytest.raises(ResultFileError, match=r"^set.json was not loaded: splits\[1\].sample_ids: expected a list"):
        LocateResult.read(tmp_path / "set.json")
    bad = {**_evaluation(), "seed": True}
    (tmp_path / "eval.json").write_text(json.dumps(bad))
    with pytest.raises(ResultFileError, match="^eval.json was not loaded: seed: expected a whole number, got true"):
        EvalResult.read(tmp_path / "eval.json")
    lm_eval = {
        "kind": "cnl.lm_eval",
        "model": "m",
        "seed": 0,
        "settings": {"tasks": ["arc_easy"]},
        "baseline": {"arc_easy": {"task": "arc_easy", "metrics": {"acc,none": {"value": "high"}}}},
    }
    (tmp_path / "lm.json").write_text(json.dumps(lm_eval))
    with pytest.raises(
        ResultFileError,
        match=r"^lm.json was not loaded: baseline.arc_easy.metrics.acc,none.value: "
        "expected a number, got text",
    ):
        HarnessEvalResult.read(tmp_path / "lm.json")
    lm_eval["baseline"]["arc_easy"]["metrics"]["acc,none"]["value"] = 0.5
    assert from_data(HarnessEvalResult, lm_eval).baseline["arc_easy"].metrics["acc,none"].value == 0.5


def test_an_old_evaluation_without_controls_reads_back():
    data = _evaluation()
    data["control"] = {"draws": []}  # what earlier versions wrote for --control-draws 0
    assert from_data(EvalResult, data).control is None


def test_a_measure_not_taken_is_written_as_null_and_read_back_as_nan(tmp_path):
    """Harness tasks have no gold log-likelihood (NaN); result files stay strict JSON that any parser reads."""
    from cnl_core.evaluate.stats import ControlSummary, Summary
    from cnl_core.experiments.json_io import write_json

    control = ControlSummary(gold_loglik=math.nan, accuracy=0.25, draws=[{"accuracy": 0.25, "gold_loglik": math.nan}])
    path = write_json(
        tmp_path / "r.json",
        {"baseline": to_data(Summary(gold_loglik=math.nan, accuracy=0.5)), "control": to_data(control)},
    )
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert data["control"]["draws"][0]["gold_loglik"] is None
    back = from_data(Summary, data["baseline"])
    assert math.isnan(back.gold_loglik) and back.accuracy == 0.5
    wide = from_data(
        Summary, json.loads(write_json(tmp_path / "w.json", to_data(Summary(-1.0, [-math.inf, 0.5]))).read_text())
    )
    assert math.isnan(wide.gold_loglik_ci[0]) and wide.gold_loglik_ci[1] == 0.5
    assert math.isnan(from_data(ControlSummary, data["control"]).gold_loglik)

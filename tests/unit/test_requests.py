"""Requests (experiments/requests.py): one typed request per experiment, its key built from its fields; the library
owns every control draw's seed and steering's conditions, which the CLI and the dashboard both call."""

from dataclasses import replace

import pytest

from cnl_core import fields as F
from cnl_core.errors import ParameterError
from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.evaluate.controls import control_seed, controlled, random_like
from cnl_core.evaluate.steer import steer_conditions
from cnl_core.experiments.requests import DoseRequest, EvaluateRequest, MatrixRequest, SteerRequest
from cnl_core.model.hooks import Intervention
from cnl_core.model.neurons import NeuronGrid, NeuronSet
from cnl_core.options import DEFAULTS

GRID = NeuronGrid(4, 64)
LOCATED = NeuronSet.from_pairs(GRID, [(0, 1), (0, 2), (3, 7)])


def test_control_seeds_are_the_ones_stored_results_were_drawn_with():
    assert [control_seed(5, d) for d in range(3)] == [1005, 1006, 1007]  # an evaluation's draws: seed + 1000 + d
    assert control_seed(5, 2, "matrix_row") == 3007  # the matrix's control beside its third located set
    assert control_seed(5, purpose="finetune") == 2005  # fine-tuning's random arm
    assert [control_seed(5, d, "fact", group=k) for k in (0, 2) for d in (0, 1)] == [5, 6, 2005, 2006]  # reliability


def test_a_control_has_the_located_count_per_layer_and_avoids_it_unless_allowed():
    iv = Intervention(LOCATED, "amplify", 3.0)
    control = controlled(iv, 0, 1)
    assert control.mode == "amplify" and control.scale == 3.0
    assert control.neurons.per_layer_counts() == LOCATED.per_layer_counts()
    assert not set(map(tuple, control.neurons.pairs())) & set(map(tuple, LOCATED.pairs()))
    assert control.neurons.pairs() == random_like(LOCATED, control_seed(0, 1), LOCATED).pairs()
    assert controlled(iv, 0, 1, may_overlap=True).neurons.pairs() == random_like(LOCATED, control_seed(0, 1)).pairs()


def test_steering_draws_its_control_as_an_evaluations_first_draw():
    iv = Intervention(LOCATED, "zero")
    conditions = steer_conditions(iv, 7)
    assert list(conditions) == ["baseline", "intervened", "control"]
    assert conditions["baseline"] is None and conditions["intervened"] is iv
    assert (
        conditions["control"].neurons.pairs() == controlled(iv, 7).neurons.pairs()
    )  # the CLI's `--seed 7` and the dashboard's seed box alike


def _variants(base, **changes):
    """The request with each change applied alone."""
    return {name: replace(base, **{name: value}) for name, value in changes.items()}


def test_every_field_an_evaluation_reads_is_in_its_key():
    """The key is built from the request's own fields: changing any input changes the stored result's key."""
    iv = Intervention(LOCATED, "zero")
    base = EvaluateRequest("add1", iv)
    assert base.key() == EvaluateRequest("add1", iv).key() and list(base.key()) == sorted(base.key())
    changed = _variants(
        base,
        dataset="add2",
        intervention=Intervention(LOCATED, "amplify", 2.0),
        n=base.n + 1,
        seed=base.seed + 1,
        control_draws=base.control_draws + 1,
        control_may_overlap=True,
        located_ids=("x",),
        eval=EvalConfig(num_fewshot=1),
    )
    for name, other in changed.items():
        assert other.key() != base.key(), name


def test_dose_and_matrix_keys_follow_their_fields():
    dose = DoseRequest("add1", LOCATED)
    for name, other in _variants(dose, positions="answer", factors=(0.0, 2.0), n=3, located_ids=("x",)).items():
        assert other.key() != dose.key(), name
    rows = {"add1": (Intervention(LOCATED, "zero"), ["a"])}
    matrix = MatrixRequest(rows, ("add1",))
    assert matrix.rows["add1"][1] == ("a",)
    for name, other in _variants(matrix, targets=("add1", "add2"), with_controls=False, seed=4).items():
        assert other.key() != matrix.key(), name


def test_a_request_refuses_a_number_out_of_its_fields_range():
    with pytest.raises(ParameterError, match="n test samples"):
        EvaluateRequest("add1", None, n=0)
    with pytest.raises(ParameterError, match="new tokens"):
        SteerRequest("Hi", Intervention(LOCATED, "zero"), max_new_tokens=F.STEER_TOKENS.high + 1)
    with pytest.raises(ParameterError, match="Positions must be one of"):
        DoseRequest("add1", LOCATED, positions="middle")


def test_the_cli_and_the_dashboard_read_one_default_and_one_limit():
    from cnl_core.cli import build_parser

    steer = build_parser().parse_args(["steer", "--prompt", "Hi", "--neurons", "x.json"])
    assert steer.max_new_tokens == DEFAULTS.steer_tokens == SteerRequest.__dataclass_fields__["max_new_tokens"].default
    # the dashboard's boxes: tests/unit/test_widgets.py (built from the fields; the amplify slider reaches 100)


def test_locate_null_and_specificity_keys_follow_their_fields():
    from cnl_core.experiments.requests_locate import LocateRequest, NullRequest, SpecificityRequest
    from cnl_core.locate.scorers import ScoreConfig
    from cnl_core.locate.select import LocateParams

    locate = LocateRequest("add1")
    assert list(locate.key()) == sorted(locate.key())
    changed = _variants(
        locate,
        dataset="add2",
        n=locate.n + 1,
        k=locate.k + 1,
        seed=3,
        score=ScoreConfig(method="activation"),
        params=LocateParams(tau=0.5),
    )
    for name, other in changed.items():
        assert other.key() != locate.key(), name
    assert replace(locate, batch_size=2, use_cache=False).key() == locate.key()  # no number depends on them
    null = NullRequest("add1", other="add2")
    for name, other in _variants(null, other="imdb", null="shuffled", draws=2, n=5, seed=1).items():
        assert other.key() != null.key(), name
    assert NullRequest("add1", "shuffled", "imdb").key() == NullRequest("add1", "shuffled", "add2").key()
    with pytest.raises(ParameterError, match="empirical null must be one of"):
        NullRequest("add1", null="random")
    with pytest.raises(ParameterError, match="specificity metric"):
        SpecificityRequest({}, metric="iou")


def test_a_stored_baseline_keeps_its_key():
    """The request's key is the key stored baselines were kept under (with the model): they still load."""
    from cnl_core.experiments.baselines import BaselineRequest
    from cnl_core.experiments.result_cache import data_identity
    from cnl_core.options import BASELINE
    from cnl_core.serialize import to_data

    old = {"dataset": data_identity("add1"), "n": BASELINE.n, "seed": BASELINE.seed, "eval": to_data(EvalConfig())}
    assert BaselineRequest("add1").key() == old
    assert BaselineRequest("add1").key() != BaselineRequest("add2").key()


def test_every_knowledge_part_is_one_request_and_its_key_follows_its_fields():
    from cnl_core.experiments.requests_knowledge import KNOWLEDGE_PARTS, KnowledgeRequest, TraceConfig
    from cnl_core.knowledge.facts import builtin_facts
    from cnl_core.knowledge.fidelity import FidelityConfig
    from cnl_core.knowledge.study import StudyConfig

    facts = builtin_facts(2, ("capital",))
    keys = {part: KnowledgeRequest(facts, part).key() for part in KNOWLEDGE_PARTS}
    assert len({str(k) for k in keys.values()}) == len(KNOWLEDGE_PARTS)
    study = KnowledgeRequest(facts, "study")
    changed = _variants(
        study,
        facts=builtin_facts(1, ("capital",)),
        config=StudyConfig(seed=5),
        facts_per_relation=3,
        study_parts=("fidelity",),
    )
    for name, other in changed.items():
        assert other.key() != study.key(), name
    assert replace(study, facts_per_relation=3).configured().trace_facts == 3  # every part on the same facts
    trace = KnowledgeRequest(facts, "trace", TraceConfig(draws=3))
    assert trace.key() != KnowledgeRequest(facts, "trace").key()
    with pytest.raises(ParameterError, match="takes no FidelityConfig"):
        KnowledgeRequest(facts, "trace", FidelityConfig())
    with pytest.raises(ParameterError, match="knowledge part must be one of"):
        KnowledgeRequest(facts, "probe")


def test_the_cli_and_the_dashboard_build_equal_requests(monkeypatch):
    """The same inputs, typed into the CLI's flags or the dashboard's boxes, give one request (one key)."""
    from cnl_core.cli import build_parser
    from cnl_core.cli.commands import locate_request
    from cnl_core.cli.knowledge_commands import knowledge_request
    from cnl_core.experiments.requests_knowledge import KnowledgeRequest
    from cnl_core.knowledge.facts import builtin_facts
    from cnl_core.knowledge.study import StudyConfig
    from cnl_core.locate.scorers import ScoreConfig
    from cnl_core.locate.select import LocateParams

    args = build_parser().parse_args(["locate", "--dataset", "add1", "--n", "4", "--splits", "2", "--seed", "3"])
    cli = locate_request(args)
    from ui.tabs.locate_tab import locate_requests

    s, p = ScoreConfig(), LocateParams()
    boxes = (4, 2, 3, s.method, s.ig_steps, s.ig_rule, 0, 0, DEFAULTS.batch_size, p.rule, p.tau, p.p, p.top_k, p.sigma)
    (ui,) = locate_requests(["add1"], *boxes, p.sign)  # the dashboard's Locate with its default boxes
    assert cli == ui and cli.key() == ui.key()
    facts = builtin_facts(2, ("capital",))
    args = build_parser().parse_args(["knowledge", "study", "--relations", "capital", "--no-edit"])
    from_cli = knowledge_request(args, facts)
    assert from_cli.study_parts == ("fidelity", "tracing", "reliability")
    assert from_cli.configured() == StudyConfig()
    assert from_cli.key() == KnowledgeRequest(facts, "study", study_parts=("fidelity", "tracing", "reliability")).key()

"""Issue #33, a lesson that runs itself: defaults the model can do, costs known before the press, lines by cost,
honest waits, and a reading beside each number. No model here: every part is fed typed values."""

import threading
import time

import pytest

from cnl_core import shared_mode
from cnl_core.cli import build_parser
from cnl_core.errors import ParameterError
from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.evaluate.stats import ControlSummary, Summary
from cnl_core.experiments.baselines import Baseline, chance_level
from cnl_core.experiments.demo import DEMO
from cnl_core.experiments.eval_results import EvalResult
from cnl_core.options import BASELINE, DEFAULTS, JOBS
from cnl_core.report.readings import evaluation_readings, iou_reading, settings_line
from ui import costs
from ui.errors import progress_reporter
from ui.lanes import OVERDUE_S, Lanes


def test_the_default_dataset_is_the_demos_task_everywhere():
    assert DEFAULTS.dataset == DEMO.dataset == "add1"
    assert build_parser().parse_args(["locate"]).dataset == DEFAULTS.dataset
    from ui.app import build_app

    app = build_app()
    by_label = {getattr(b, "label", None): b for b in app.blocks.values()}
    assert by_label["Datasets"].value == [DEFAULTS.dataset] and by_label["Test on"].value == [DEFAULTS.dataset]
    assert by_label["dataset"].value == DEFAULTS.dataset  # decoupling


def test_use_the_demos_settings_fills_every_box_with_the_preset():
    from ui.tabs import locate_tab

    out = locate_tab.demo_settings()
    assert out[0]["value"] == [DEMO.dataset] and out[1:4] == (DEMO.n, 2, DEMO.seed)
    assert out[7:9] == (DEMO.tau, DEMO.p) and out[10:14] == (DEMO.eval_n, DEMO.seed, DEMO.control_draws, DEMO.fewshot)


def test_the_shared_labs_job_limit_is_the_operators():
    local, shared = shared_mode.Policy(), shared_mode.Policy(shared=True)
    assert shared_mode.job_limit_s(local, {}) is None
    assert shared_mode.job_limit_s(shared, {}) == JOBS.shared_limit_s
    assert shared_mode.job_limit_s(shared, {JOBS.env: "90"}) == 90.0
    assert shared_mode.job_limit_s(shared, {JOBS.env: "0"}) is None
    assert shared_mode.job_limit_s(shared, {JOBS.env: "ten"}) == JOBS.shared_limit_s  # a typo keeps the limit


def test_costs_follow_the_dataset_and_pick_the_line(monkeypatch):
    # a server with no measured rate yet: jobs run earlier in this test process would have recorded one
    monkeypatch.setattr(costs, "LANES", Lanes())
    add1 = costs.expected("intervene", targets=["add1"], n=10, draws=2, fewshot=-1, max_new=0)
    gsm8k = costs.expected("intervene", targets=["gsm8k"], n=10, draws=2, fewshot=-1, max_new=0)
    assert gsm8k.seconds > 20 * add1.seconds  # 256 generated tokens after 5 long shots vs a few after short ones
    assert (add1.line, gsm8k.line) == ("short", "long") and not add1.measured
    assert "first guess" in costs.describe("intervene", targets=["add1"], n=10, draws=2, fewshot=-1, max_new=0)
    assert "shown once every box" in costs.describe(
        "intervene", targets=["add1"], n=None, draws=2, fewshot=-1, max_new=0
    )
    monkeypatch.setattr(shared_mode, "_CURRENT", shared_mode.Policy(shared=True))
    monkeypatch.setenv(JOBS.env, "60")
    with pytest.raises(ParameterError, match="over this shared lab's limit of 60 s"):
        costs.check("intervene", targets=["gsm8k"], n=10, draws=2, fewshot=-1, max_new=0)
    assert costs.check("intervene", targets=["add1"], n=10, draws=2, fewshot=-1, max_new=0).line == "short"
    assert "it would be refused" in costs.describe("intervene", targets=["gsm8k"], n=10, draws=2, fewshot=-1, max_new=0)


def _cost(kind, seconds):
    return costs.Expected(kind, seconds, True, seconds)


def test_a_job_joins_the_line_by_its_cost_and_its_measured_rate_is_kept():
    lanes = Lanes()
    assert lanes.lane_for("intervene", _cost("intervene", JOBS.short_line_s * 3)).name == "long"
    assert lanes.lane_for("locate", _cost("locate", 5)).name == "short"
    assert lanes.lane_for("locate").name == "long"  # without a cost: by kind, as before
    with lanes.slot("steer", cost=costs.Expected("steer", 0.1, False, 0.1)):
        time.sleep(0.3)
    rate, measured = lanes.rate("steer")
    assert measured and rate == pytest.approx(3.0, rel=0.5)  # 0.3 s taken for 0.1 s of first-guess work


def test_the_wait_counts_the_running_jobs_time_left_and_never_says_0_s():
    lanes, hold, said = Lanes(), threading.Event(), []

    def run():
        with lanes.slot("intervene", cost=_cost("intervene", 0.2)):
            hold.wait(10)

    first = threading.Thread(target=run)
    first.start()
    time.sleep(1.5)  # the running job is now past its expected 0.2 s
    waiter = threading.Thread(
        target=lambda: lanes.slot("dose", lambda d, t, m: said.append(m), cost=_cost("dose", 1)).__enter__()
    )
    waiter.start()
    time.sleep(0.5)
    hold.set()
    first.join(5)
    waiter.join(5)
    text = said[0]
    assert "1 job ahead in the short-job line (place 1 among those waiting)" in text
    assert "past its expected time" in text and f"about {OVERDUE_S:.0f} s" in text  # not "0 s": it runs on


def test_progress_tells_the_time_left_from_the_first_step():
    from ui.lanes import LANES

    shown = []
    update = progress_reporter(lambda fraction, desc: shown.append(desc))
    with LANES.slot("knowledge", cost=_cost("knowledge", 300)):
        update(0, 40, "scoring")
    assert "about 5 min left (expected)" in shown[0]


def _summary(acc, control=False):
    return (ControlSummary if control else Summary)(gold_loglik=-1.0, accuracy=acc)


def _eval(dataset, base, after, control, mode="zero", factor=0.0, n=10, seed=0, kind="generate_number"):
    return EvalResult(
        model="m",
        dataset=dataset,
        task_kind=kind,
        n=n,
        seed=seed,
        sample_ids=[],
        fewshot_ids=[],
        eval_config=EvalConfig(),
        baseline=_summary(base),
        intervened=_summary(after),
        control=_summary(control, True),
        intervention={"mode": mode, "factor": factor, "positions": "all", "n_neurons": 31},
    )


def test_each_number_gets_its_reading():
    assert iou_reading(0.55, 0.0004, null=0.042) == "split IoU 0.55 = 13.1x the empirical null (0.04): localized"
    assert "mostly noise" in iou_reading(0.01, 0.005)
    (zeroed,) = evaluation_readings([_eval("add1", 0.9, 0.1, 0.88)])
    assert "0.9" not in zeroed and "90% -> 10% (random control 88%)" in zeroed and "carry it" in zeroed
    assert "The demo's baseline on add1 used 3-shot prompts, 40 problems and seed 2; here 5-shot, 10, seed 0" in zeroed
    (amplified,) = evaluation_readings([_eval("add2", 0.3, 0.0, 0.3, "amplify", 2.0)])
    assert "Amplifying x2 lowers accuracy here" in amplified and "demo" not in amplified
    (zero,) = evaluation_readings([_eval("gsm8k", 0.0, 0.0, 0.0)])
    assert "cannot do this task (0% unmodified)" in zero and "not specific" in zero
    (loglik,) = evaluation_readings([_eval("humaneval", None, None, None, kind="loglik")])
    assert "accuracy n/a: this task is scored by the gold answer's log-likelihood only" in loglik
    assert (
        settings_line(0.1, 0.5, 12, 2, 2, "grad_x_act", 3)
        == "tau 0.1 · p 0.5 · n 12 x 2 · seed 2 · grad_x_act · 3-shot"
    )


def test_a_baseline_says_whether_the_model_can_do_the_task():
    def make(acc, chance=0.0, kind="generate_number"):
        return Baseline("m", "d", kind, BASELINE.n, 5, 8, 0, acc, None if acc is None else [acc, acc], chance, -1.0)

    assert make(0.75).verdict == "can do" and make(0.0).verdict == "cannot do"
    assert make(0.58, chance=0.5, kind="choice").verdict == "weak"  # above a coin, not by much
    assert make(0.45, chance=0.5, kind="choice").verdict == "cannot do"
    assert make(None, kind="loglik").verdict == "no accuracy"
    assert "**cannot do**" in make(0.0).reading() and "log-likelihood only" in make(None, kind="loglik").reading()
    assert chance_level("imdb") == pytest.approx(0.5) and chance_level("add1") == 0.0
    from ui.tabs.baseline_panel import choice_label

    assert choice_label("add1", make(0.75)) == "add1 · 75% ✓ can do" and choice_label("gsm8k", None) == "gsm8k"


def test_the_knowledge_study_says_its_takeaway_and_why_a_cell_is_na():
    from types import SimpleNamespace

    from cnl_core.knowledge.fidelity import GroupStat
    from cnl_core.knowledge.study import _na
    from cnl_core.report.readings import knowledge_takeaway

    def study(same, other):
        pairs = [
            GroupStat("same fact, other wording", same, None, 0.01, 4, 2, 5.0),
            GroupStat("other fact, same wording", other, None, 0.01, 4, 2, 5.0),
        ]
        return SimpleNamespace(
            score={"facts": {"method": "integrated_gradients"}},
            pairs=pairs,
            splits=[GroupStat("capability split", 0.4, None, 0.01, 1, 1, 9.0)],
        )

    fails = knowledge_takeaway(study(0.23, 0.52))
    assert "(integrated_gradients scores)" in fails and "does not localize here" in fails and "0.40" in fails
    assert "survive a change of wording" in knowledge_takeaway(study(0.6, 0.3))
    assert "too few known facts" in knowledge_takeaway(study(None, 0.3))
    assert "two empty sets" in _na(GroupStat("g", None, None, None, 0, 0, 0.0, undefined=3))
    assert "too few known facts" in _na(GroupStat("g", None, None, None, 0, 0, 0.0))


def test_a_shared_lab_measures_the_baselines_that_fit_its_limit_cheapest_first(monkeypatch):
    from ui.session import new_session
    from ui.tabs import baseline_panel

    monkeypatch.setattr(baseline_panel, "_model", lambda state: None)  # nothing stored: every dataset is missing
    everything = baseline_panel.to_measure(new_session())
    assert "gsm8k" in everything and everything.index("add1") < everything.index("gsm8k")  # cheapest first
    monkeypatch.setattr(shared_mode, "_CURRENT", shared_mode.Policy(shared=True))
    monkeypatch.setenv(JOBS.env, "60")
    fit = baseline_panel.to_measure(new_session())
    assert "add1" in fit and "gsm8k" not in fit and len(fit) < len(everything)
    assert "it would be refused" not in costs.describe("baselines", state=new_session())


def test_the_dose_response_says_where_it_peaks():
    from cnl_core.experiments.dose import DosePoint
    from cnl_core.report.readings import dose_reading

    def points(*accs):
        return [DosePoint(f, a, None, -1.0, 0.0, None) for f, a in zip((0.0, 0.5, 1.0, 2.0, 4.0), accs)]

    saturates = dose_reading(points(0.0, 0.4, 0.75, 0.3, 0.0))
    assert saturates.startswith("accuracy: x0 0%, x0.5 40%, x1 75%, x2 30%, x4 0%") and "saturates" in saturates
    assert "amplifying helps up to x2" in dose_reading(points(0.0, 0.2, 0.4, 0.6, 0.5))

"""The `lm-eval` experiment: harness tasks on the unmodified model, with the located neurons changed,
and with K same-size random controls; typed, its file form declared on its fields (kind "cnl.lm_eval", schema.py).

Every condition is one full `simple_evaluate` of the same tasks with the same settings (the harness
seeds its few-shot draws and samplers identically on each call), so differences are between runs on
the same samples. The harness reports a standard error per run; the difference of two runs gets the
unpaired one, sqrt(se_a^2 + se_b^2), which ignores that both runs score the same samples (it is
conservative for a positively correlated pair).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import fields as F
from .. import shared_mode
from ..errors import ParameterError
from ..evaluate.accuracy import EvalConfig, InterventionRecord
from ..evaluate.controls import controlled
from ..evaluate.harness import Harness, HarnessSettings, TaskScores, harness_version
from ..evaluate.harness_sandbox import IsolatedHarness, SandboxLimits
from ..evaluate.stats import ControlSummary, Deltas, Summary
from ..model.hooks import Intervention
from ..model.loading import LoadedModel
from ..options import POSITIONS
from ..progress import Progress, check_cancel, report
from ..provenance import stamp
from ..schema import OMIT, in_file, result_kind
from .eval_results import EvalResult
from .json_io import read_result

KIND = "cnl.lm_eval"
Z95 = 1.959964


def _no_run(result: HarnessEvalResult) -> bool:
    """A run of the unmodified model only: its file has no intervention, controls or differences."""
    return result.intervened is None


@result_kind(
    KIND,
    order=(
        *("model", "settings", "seed", "baseline", "created", "versions"),
        *("intervention", "intervened", "controls", "differences", "located_on"),
    ),
    computed={"differences": lambda r: OMIT if _no_run(r) else r.differences()},  # written, never read
)
@dataclass
class HarnessEvalResult:
    """Harness scores per task for the unmodified model, the intervention and each random control draw."""

    model: str
    settings: HarnessSettings
    seed: int
    baseline: dict[str, TaskScores]
    # the intervention and whether the controls avoid the located set
    intervention: InterventionRecord | None = field(default=None, metadata=in_file(omit=_no_run))
    intervened: dict[str, TaskScores] | None = field(default=None, metadata=in_file(omit="none"))
    controls: list[dict[str, TaskScores]] = field(default_factory=list, metadata=in_file(omit=_no_run))
    located_on: str | None = field(default=None, metadata=in_file(omit="none"))
    created: str | None = None
    versions: dict = field(default_factory=dict)

    def differences(self) -> dict[str, dict[str, dict]]:
        """Per task and metric: intervened - unmodified (with the unpaired stderr), control mean - unmodified
        (with the spread between draws), and intervened - control mean."""
        out: dict[str, dict[str, dict]] = {}
        for task, base in self.baseline.items():
            for key, b in base.metrics.items():
                row: dict = {}
                after = self.intervened and self.intervened.get(task) and self.intervened[task].metrics.get(key)
                if after:
                    row["intervened_minus_unmodified"] = after.value - b.value
                    row["stderr_unpaired"] = (
                        math.hypot(after.stderr, b.stderr)
                        if after.stderr is not None and b.stderr is not None
                        else None
                    )
                draws = [c[task].metrics[key].value for c in self.controls if key in c.get(task, _EMPTY).metrics]
                if draws:
                    row["control_minus_unmodified"] = float(np.mean(draws)) - b.value
                    row["control_draws_sd"] = float(np.std(draws))
                    if after:
                        row["intervened_minus_control"] = after.value - float(np.mean(draws))
                if row:
                    out.setdefault(task, {})[key] = row
        return out

    @staticmethod
    def read(path: str | Path) -> HarnessEvalResult:
        return read_result(path, HarnessEvalResult, "lm-eval result file")

    def as_eval_results(self) -> list[EvalResult]:
        """One EvalResult per task, its headline metric in the accuracy slot (CI: value +- 1.96 harness stderr),
        so harness runs share the dashboard's charts, history table and export with built-in datasets.

        The headline metric is the first one on a 0..1 scale; gold log-likelihood is not measured (NaN).
        """
        out = []
        for task, base in self.baseline.items():
            key = next((k for k, m in base.metrics.items() if 0.0 <= m.value <= 1.0), base.primary())
            if key is None:
                continue
            after = self.intervened.get(task) if self.intervened else None
            draws = [c[task].metrics[key].value for c in self.controls if key in c.get(task, _EMPTY).metrics]
            control = None
            if draws:
                mean = float(np.mean(draws))
                control = ControlSummary(
                    gold_loglik=math.nan,
                    accuracy=mean,
                    accuracy_std=float(np.std(draws)),
                    draws=[{"accuracy": d} for d in draws],
                    deltas=Deltas(delta_accuracy=mean - base.metrics[key].value),
                )
            out.append(
                EvalResult(
                    model=self.model,
                    dataset=f"lm-eval:{task} [{key}]",
                    task_kind="lm-eval",
                    n=base.n or 0,
                    seed=self.seed,
                    sample_ids=[],
                    fewshot_ids=[],
                    eval_config=_eval_config(self.settings),
                    baseline=_summary(base, key),
                    intervention=self.intervention,
                    intervened=_summary(after, key, base) if after is not None and key in after.metrics else None,
                    control=control,
                    located_on=self.located_on,
                    created=self.created,
                    versions=self.versions,
                )
            )
        return out


_EMPTY = TaskScores(task="", metrics={})


def _summary(scores: TaskScores, key: str, base: TaskScores | None = None) -> Summary:
    m = scores.metrics[key]
    ci = None if m.stderr is None else [m.value - Z95 * m.stderr, m.value + Z95 * m.stderr]
    deltas = None if base is None else Deltas(delta_accuracy=m.value - base.metrics[key].value)
    return Summary(gold_loglik=math.nan, accuracy=m.value, accuracy_ci=ci, deltas=deltas)


def _eval_config(s: HarnessSettings) -> EvalConfig:
    """The closest built-in settings record (what the history table and export show)."""
    return EvalConfig(
        num_fewshot=s.num_fewshot if s.num_fewshot is not None and s.num_fewshot <= 16 else None,
        max_new_tokens=s.max_gen_toks if s.max_gen_toks is not None and s.max_gen_toks <= 2048 else None,
        batch_size=s.batch_size,
        bootstrap=0,
    )


def check_harness_positions(intervention: Intervention | None) -> None:
    """Harness requests do not say where the answer is: an intervention there changes every position."""
    if intervention is not None and intervention.positions != POSITIONS[0]:
        raise ParameterError(f"Harness tasks change the neurons at every token position (positions '{POSITIONS[0]}').")


def open_harness(
    lm: LoadedModel, settings: HarnessSettings, manager=None, isolated: bool | None = None, scratch: Path | None = None
) -> Harness | IsolatedHarness:
    """The harness in a child process with limits, its task files read against the allowlist (`isolated`; by
    default on a shared dashboard; its folder made in `scratch`), or in this process. Use it as a context manager."""
    policy = shared_mode.current()
    if policy.shared if isolated is None else isolated:
        return IsolatedHarness(lm, settings, SandboxLimits(hub=policy.harness_hub), scratch)
    return Harness(lm, settings, manager)


def run_harness_eval(
    lm: LoadedModel,
    settings: HarnessSettings,
    intervention: Intervention | None = None,
    *,
    control_draws: int = 1,
    control_may_overlap: bool = False,
    seed: int = 0,
    manager=None,
    located_on: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    isolated: bool | None = None,
    scratch: Path | None = None,
) -> HarnessEvalResult:
    """Harness scores for the unmodified model, then (with an intervention) the changed model and random controls.

    Each control changes as many random neurons per layer the same way (draw d: controls.control_seed, as the
    built-in evaluation), none of them located ones unless `control_may_overlap`. `isolated` runs the harness
    in a child process (open_harness; by default on a shared dashboard).
    """
    F.HARNESS_DRAWS.typed(control_draws)
    check_harness_positions(intervention)
    runs: list[tuple[str, Intervention | None]] = [("unmodified", None)]
    if intervention is not None:
        runs.append(("intervened", intervention))
        runs += [
            (f"random control {d + 1}", controlled(intervention, seed, d, may_overlap=control_may_overlap))
            for d in range(control_draws)
        ]
    scores = []
    with open_harness(lm, settings, manager, isolated, scratch) as harness:
        for step, (name, iv) in enumerate(runs):
            check_cancel(cancel, step, len(runs), "harness runs")
            report(progress, step, len(runs), f"lm-eval {', '.join(settings.tasks)}: {name}")
            scores.append(harness.evaluate(iv)[0])
    report(progress, len(runs), len(runs), "lm-eval: done")
    provenance = stamp()
    out = HarnessEvalResult(
        model=lm.spec.name,
        settings=settings,
        seed=seed,
        baseline=scores[0],
        located_on=located_on,
        created=provenance["created"],
        versions={**provenance["versions"], "lm_eval": harness_version()},
    )
    if intervention is not None:
        out.intervention = InterventionRecord.of(intervention, control_avoids_located=not control_may_overlap)
        out.intervened, out.controls = scores[1], scores[2:]
    return out

"""The one-click demo: locate a capability the built-in model has, then switch it off and up.

One run, in about a minute on two CPU cores: locate the neurons of a seeded one-digit addition task
on two disjoint splits (their agreement against chance), then, on held-out problems, compare the
unmodified model with the located neurons zeroed and amplified, and with as many random neurons
(avoiding the located ones) zeroed and amplified. The preset was chosen on seed 1 (`python -m cnl_core
demo --seed 1`) and is reported on seed 2, the default; the README shows what it gives.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from ..evaluate.accuracy import EvalConfig, SampleResult, evaluate_conditions
from ..evaluate.controls import control_seed, random_like
from ..evaluate.stats import Summary, compared, control_summary, summarize
from ..locate.scorers import ScoreConfig
from ..locate.select import LocateParams
from ..model.hooks import Intervention
from ..model.loading import LoadedModel
from ..progress import Progress, report
from ..provenance import stamp
from ..schema import in_file, result_kind
from .evaluate import eval_samples
from .locate import run_locate

CONDITIONS = ("baseline", "zeroed", "amplified", "control_zeroed", "control_amplified")


@dataclass(frozen=True)
class DemoPreset:
    dataset: str = "add1"
    n: int = 12  # samples per split (two splits)
    tau: float = 0.1
    p: float = 0.5
    eval_n: int = 40
    fewshot: int = 3
    control_draws: int = 2
    factor: float = 2.0
    seed: int = 2  # the reporting seed; the preset was chosen on seed 1


DEMO = DemoPreset()


@result_kind(
    "cnl.demo",
    computed={"dataset": lambda r: r.preset.dataset},
    order=(
        *("model", "dataset", "preset", "n_located", "split_iou", "chance_iou", "conditions", "neurons"),
        *("located_ids", "sample_ids", "seconds", "created", "versions"),
    ),
)
@dataclass
class DemoResult:
    model: str
    preset: DemoPreset
    n_located: int
    split_iou: float
    chance_iou: float
    # by name, each at the top of the file; the controls' spread between draws is left out
    conditions: dict[str, Summary] = field(metadata=in_file(flatten=True, drop=("accuracy_std", "gold_loglik_std")))
    located_ids: list[str] = field(default_factory=list)
    sample_ids: list[str] = field(default_factory=list)
    neurons: list[list[int]] = field(default_factory=list)
    seconds: float = 0.0
    created: str | None = None
    versions: dict = field(default_factory=dict)

    def headline(self) -> str:
        """One sentence a class can read: what zeroing did, against the random control."""
        b, z, c = (self.conditions[k] for k in ("baseline", "zeroed", "control_zeroed"))
        return (
            f"{self.preset.dataset}: {self.n_located} neurons located (split IoU {self.split_iou:.2f}, chance "
            f"{self.chance_iou:.4f}). Accuracy {b.accuracy:.0%} unmodified, {z.accuracy:.0%} with them zeroed, "
            f"{c.accuracy:.0%} with as many random neurons zeroed ({self.preset.eval_n} held-out problems)."
        )


def run_demo(
    lm: LoadedModel,
    preset: DemoPreset = DEMO,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> DemoResult:
    start = time.perf_counter()
    run = run_locate(
        lm,
        preset.dataset,
        preset.n,
        2,
        preset.seed,
        ScoreConfig(),
        LocateParams(tau=preset.tau, p=preset.p),
        progress=progress,
        cancel=cancel,
    )
    located = run.result()
    agree = located.agreement()
    cfg = EvalConfig(num_fewshot=preset.fewshot, batch_size=preset.eval_n)
    spec, samples, shots = eval_samples(preset.dataset, preset.eval_n, cfg, preset.seed, located.located_sample_ids())
    zero = Intervention(located.neurons, "zero")
    amplify = Intervention(located.neurons, "amplify", preset.factor)
    controls = [
        random_like(located.neurons, control_seed(preset.seed, d), located.neurons) for d in range(preset.control_draws)
    ]
    plan = [("baseline", None), ("zeroed", zero), ("amplified", amplify)]
    plan += [(f"control_zeroed_{d}", replace(zero, neurons=c)) for d, c in enumerate(controls)]
    plan += [(f"control_amplified_{d}", replace(amplify, neurons=c)) for d, c in enumerate(controls)]
    labels = [name.replace("_", " ") for name, _ in plan]
    evaluated = evaluate_conditions(
        lm,
        spec,
        samples,
        shots,
        cfg,
        [iv for _, iv in plan],
        labels=labels,
        progress=lambda d, t, m: report(progress, d, t, f"demo: {m}"),
        cancel=cancel,
    )
    results: dict[str, list[SampleResult]] = {name: rows for (name, _), rows in zip(plan, evaluated)}
    report(progress, 1, 1, "demo: done")
    base = results["baseline"]
    conditions: dict[str, Summary] = {"baseline": summarize(base, cfg.bootstrap, preset.seed)}
    for name in ("zeroed", "amplified"):
        conditions[name] = compared(results[name], base, cfg.bootstrap, preset.seed)
        draws = [results[k] for k in results if k.startswith(f"control_{name}_")]
        control = control_summary(draws, base, cfg.bootstrap, preset.seed)
        assert control is not None  # a preset always has control draws
        conditions[f"control_{name}"] = control
    return DemoResult(
        model=lm.spec.name,
        preset=preset,
        n_located=located.n_located,
        split_iou=agree.iou,
        chance_iou=agree.chance_iou,
        conditions={k: conditions[k] for k in CONDITIONS},
        located_ids=located.located_sample_ids(),
        sample_ids=[s.id for s in samples],
        neurons=located.neurons.pairs(),
        seconds=round(time.perf_counter() - start, 1),
        **stamp(),
    )

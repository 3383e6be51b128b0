"""Dose-response: accuracy and gold log-likelihood as the located neurons are scaled by 0, 0.5, 1, 2, 4, ...

Factor 0 is zeroing, 1 the unmodified model; a capability carried by the neurons should move
monotonically with the factor near 1, while as many random neurons barely move it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ..evaluate.accuracy import EvalConfig, evaluate_conditions
from ..evaluate.stats import compared, summarize
from ..model.hooks import Intervention
from ..model.loading import LoadedModel
from ..model.neurons import NeuronSet
from ..options import POSITIONS
from ..progress import Progress, report
from .evaluate import eval_samples

DEFAULT_FACTORS = (0.0, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class DosePoint:
    factor: float
    accuracy: float | None
    accuracy_ci: list[float] | None
    gold_loglik: float
    delta_gold_loglik: float | None
    delta_gold_loglik_ci: list[float] | None


def run_dose_response(
    lm: LoadedModel,
    dataset: str,
    neurons: NeuronSet,
    factors: Sequence[float] = DEFAULT_FACTORS,
    n: int = 10,
    seed: int = 0,
    located_ids: Sequence[str] = (),
    cfg: EvalConfig | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    positions: str = POSITIONS[0],
) -> list[DosePoint]:
    """One point per factor, on the same held-out samples (factor 1 is the unmodified model, run once)."""
    cfg = cfg or EvalConfig()
    spec, samples, shots = eval_samples(dataset, n, cfg, seed, located_ids)
    changed = {
        f: Intervention(neurons, "zero", positions=positions)
        if f == 0
        else Intervention(neurons, "amplify", float(f), positions)
        for f in factors
        if f != 1.0
    }
    evaluated = evaluate_conditions(
        lm,
        spec,
        samples,
        shots,
        cfg,
        [None, *changed.values()],
        labels=["factor 1", *(f"factor {f:g}" for f in changed)],
        progress=progress,
        cancel=cancel,
    )
    base, after_by_factor = evaluated[0], dict(zip(changed, evaluated[1:]))
    points = []
    delta: float | None  # None: no sample had a gold log-likelihood to compare
    delta_ci: list[float] | None
    for factor in factors:
        if factor == 1.0:
            s = summarize(base, cfg.bootstrap, seed)
            delta, delta_ci = 0.0, [0.0, 0.0]
        else:
            s = compared(after_by_factor[factor], base, cfg.bootstrap, seed)
            assert s.deltas is not None  # compared() always sets them
            delta, delta_ci = s.deltas.delta_gold_loglik, s.deltas.delta_gold_loglik_ci
        points.append(DosePoint(float(factor), s.accuracy, s.accuracy_ci, s.gold_loglik, delta, delta_ci))
    report(progress, len(factors), len(factors), f"{dataset}: done")
    return points

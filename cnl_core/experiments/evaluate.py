"""The `evaluate` and `matrix` experiments: the unmodified model vs an intervention vs random controls."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from .. import fields as F
from ..data.samples import DatasetSpec, Sample, get_dataset
from ..data.splits import draw_disjoint
from ..errors import ParameterError
from ..evaluate.accuracy import EvalConfig, InterventionRecord, SampleResult, evaluate_conditions
from ..evaluate.controls import control_seed, controlled
from ..evaluate.stats import compared, control_summary, summarize
from ..model.hooks import Intervention
from ..model.loading import LoadedModel
from ..options import DEFAULTS
from ..parallel import Launch, spread
from ..progress import Progress, report
from ..provenance import stamp
from .eval_results import EvalResult, Example, MatrixResult


def eval_split(dataset: str, n: int, shots: int, seed: int, exclude: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """Evaluation ids and few-shot ids: disjoint from each other and from `exclude` (located samples)."""
    spec = get_dataset(dataset)
    groups = draw_disjoint([s.id for s in spec.rows()], [n] + ([shots] if shots else []), seed + 7919, exclude)
    return groups[0], (groups[1] if shots else [])


def eval_samples(
    dataset: str, n: int, cfg: EvalConfig, seed: int, exclude: Sequence[str]
) -> tuple[DatasetSpec, list[Sample], list[Sample]]:
    """(spec, evaluation samples, few-shot samples), disjoint from each other and from `exclude`."""
    spec = get_dataset(dataset)
    ids, shot_ids = eval_split(dataset, n, cfg.shots_for(spec.kind), seed, exclude)
    rows = spec.by_id()
    return spec, [rows[i] for i in ids], [rows[i] for i in shot_ids]


def run_evaluate(
    lm: LoadedModel,
    dataset: str,
    n: int,
    seed: int = 0,
    intervention: Intervention | None = None,
    *,
    control_draws: int = DEFAULTS.control_draws,
    control_may_overlap: bool = False,
    located_ids: Sequence[str] = (),
    cfg: EvalConfig | None = None,
    n_examples: int = 3,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    launch: Launch | None = None,
) -> EvalResult:
    """Accuracy and gold log-likelihood before/after the intervention and under random controls.

    Evaluation samples avoid `located_ids` (the samples the neurons were located on). Each control
    is the intervention applied to a random set with the same count per layer (seeded draws) that
    avoids the intervened neurons unless `control_may_overlap`. Under torchrun (`launch`) each condition's
    batches are spread over the processes, and every process gets the whole result.
    """
    cfg = cfg or EvalConfig()
    F.CONTROL_DRAWS.typed(control_draws)
    spec, samples, shots = eval_samples(dataset, n, cfg, seed, located_ids)
    runs: list[tuple[str, Intervention | None]] = [("baseline", None)]
    if intervention is not None:
        runs.append(("intervened", intervention))
        runs += [
            (f"control_{d}", controlled(intervention, seed, d, may_overlap=control_may_overlap))
            for d in range(control_draws)
        ]
    names = [name for name, _ in runs]
    evaluated = _conditions(
        launch,
        lm,
        spec,
        samples,
        shots,
        cfg,
        [iv for _, iv in runs],
        [x.replace("_", " ") for x in names],
        progress,
        cancel,
    )
    results = dict(zip(names, evaluated))
    base = results["baseline"]
    provenance = stamp()
    out = EvalResult(
        model=lm.spec.name,
        dataset=dataset,
        task_kind=spec.kind,
        n=len(samples),
        seed=seed,
        sample_ids=[s.id for s in samples],
        fewshot_ids=[s.id for s in shots],
        eval_config=cfg,
        baseline=summarize(base, cfg.bootstrap, seed),
        created=provenance["created"],
        versions=provenance["versions"],
    )
    after = results.get("intervened")
    if intervention is not None:
        out.intervention = InterventionRecord.of(
            intervention,
            control_avoids_located=not control_may_overlap,
            control_seeds=[control_seed(seed, d) for d in range(control_draws)],
            # [layer, index] per draw (every control run has its intervention)
            control_neurons=[iv.neurons.pairs() for _, iv in runs[2:] if iv is not None],
        )
        out.intervened = compared(results["intervened"], base, cfg.bootstrap, seed)
        out.control = control_summary([results[name] for name, _ in runs[2:]], base, cfg.bootstrap, seed)
    out.examples = [
        Example(s.id, s.prompt, s.target, b.output, None if after is None else after[i].output)
        for i, (s, b) in enumerate(list(zip(samples, base))[:n_examples])
    ]
    return out


def run_matrix(
    lm: LoadedModel,
    rows: Mapping[str, tuple[Intervention, Sequence[str]]],
    targets: Sequence[str],
    n: int,
    seed: int = 0,
    *,
    with_controls: bool = False,
    cfg: EvalConfig | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    launch: Launch | None = None,
) -> MatrixResult:
    """The cross-dataset matrix: rows = whose neurons are changed (an intervention and the ids they were
    located on), columns = dataset tested.

    Each cell is (changed - unmodified) on the same evaluation samples, which avoid every sample any
    row's neurons were located on. Every row must change its neurons the same way (mode, factor and positions).
    With `with_controls`, each row gets a control row ("<row> · random"): as many random neurons per layer,
    none of them in the row's set, changed the same way. Under torchrun (`launch`) each cell's batches are
    spread over the processes.
    """
    cfg = cfg or EvalConfig()
    if not rows or not targets:
        raise ParameterError("The matrix needs at least one located set that fits the loaded model, and a dataset.")
    kinds = {(iv.mode, iv.scale, iv.positions) for iv, _ in rows.values()}
    if len(kinds) != 1:
        raise ParameterError("Every row of the matrix must use the same intervention (mode, factor, positions).")
    ((mode, scale, positions),) = kinds
    if with_controls:
        controls = {
            f"{name} · random": (controlled(iv, seed, k, "matrix_row"), ids)
            for k, (name, (iv, ids)) in enumerate(rows.items())
        }
        rows = {**rows, **controls}
    excluded = [i for _, ids in rows.values() for i in ids]
    out = MatrixResult(
        model=lm.spec.name,
        mode=mode,
        factor=scale,
        n=n,
        seed=seed,
        sources=list(rows),
        targets=list(targets),
        baseline={},
        cells={s: {} for s in rows},
        eval_config=cfg,
        positions=positions,
        **stamp(),
    )
    ivs = [None, *(iv for iv, _ in rows.values())]
    for k, target in enumerate(targets):
        spec, samples, shots = eval_samples(target, n, cfg, seed, excluded)

        def sub(done: int, total: int, message: str, _k: int = k) -> None:  # each target a share of 1000 steps
            report(progress, round(1000 * (_k + done / max(total, 1))), 1000 * len(targets), message)

        base, *changed = _conditions(launch, lm, spec, samples, shots, cfg, ivs, ["unmodified", *rows], sub, cancel)
        out.baseline[target] = summarize(base, cfg.bootstrap, seed)
        for source, after in zip(rows, changed):
            out.cells[source][target] = compared(after, base, cfg.bootstrap, seed, ci_draws=0)
    return out


def _conditions(
    launch: Launch | None,
    lm: LoadedModel,
    spec: DatasetSpec,
    samples: list[Sample],
    shots: list[Sample],
    cfg: EvalConfig,
    ivs: list[Intervention | None],
    labels: list[str],
    progress: Progress | None,
    cancel: threading.Event | None,
) -> list[list[SampleResult]]:
    """evaluate_conditions, under torchrun batch-wise over the processes (`spread` deals out samples, so each
    sample's results travel together and are put back per condition)."""
    per_sample = spread(
        launch,
        samples,
        cfg.batch_size,
        lambda part: list(
            zip(*evaluate_conditions(lm, spec, part, shots, cfg, ivs, labels=labels, progress=progress, cancel=cancel))
        ),
    )
    return [[row[c] for row in per_sample] for c in range(len(ivs))]

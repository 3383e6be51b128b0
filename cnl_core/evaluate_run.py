"""The `evaluate` and `matrix` pipelines: baseline vs intervention vs random control."""

from __future__ import annotations

import threading
from typing import Callable, Mapping, Sequence

import numpy as np

from .datasets import get_dataset
from .errors import ParameterError
from .evaluation import (EvalConfig, bootstrap_ci, deltas, eval_config_dict, evaluate_samples, per_sample_metrics,
                         summarize)
from .interventions import Intervention, random_like
from .models import LoadedModel
from .neurons import NeuronSet
from .provenance import stamp
from .splits import draw_disjoint

Progress = Callable[[int, int, str], None]


def eval_split(dataset: str, n: int, shots: int, seed: int, exclude: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """Evaluation ids and few-shot ids: disjoint from each other and from `exclude` (located samples)."""
    spec = get_dataset(dataset)
    groups = draw_disjoint([s.id for s in spec.rows()], [n] + ([shots] if shots else []), seed + 7919, exclude)
    return groups[0], (groups[1] if shots else [])


def _eval_samples(dataset: str, n: int, cfg: EvalConfig, seed: int, exclude: Sequence[str]):
    """(spec, evaluation samples, few-shot samples), disjoint from each other and from `exclude`."""
    spec = get_dataset(dataset)
    ids, shot_ids = eval_split(dataset, n, cfg.shots_for(spec.kind), seed, exclude)
    rows = spec.by_id()
    return spec, [rows[i] for i in ids], [rows[i] for i in shot_ids]


def run_evaluate(
    lm: LoadedModel, dataset: str, n: int, seed: int = 0, neurons: NeuronSet | None = None, *,
    mode: str = "zero", factor: float = 2.0, positions: str = "all", control_draws: int = 3,
    located_ids: Sequence[str] = (), cfg: EvalConfig | None = None, n_examples: int = 3,
    progress: Progress | None = None, cancel: threading.Event | None = None,
) -> dict:
    """Accuracy and gold log-likelihood before/after the intervention and under random controls."""
    cfg = cfg or EvalConfig()
    if control_draws < 0 or control_draws > 50:
        raise ParameterError("Control draws must be between 0 and 50.")
    spec, samples, shots = _eval_samples(dataset, n, cfg, seed, located_ids)
    runs = [("baseline", None)]
    if neurons is not None:
        runs.append(("intervened", Intervention(neurons, mode, factor, positions)))
        runs += [(f"control_{d}", Intervention(random_like(neurons, seed + 1000 + d), mode, factor, positions))
                 for d in range(control_draws)]
    total = len(runs) * len(samples)
    results = {}
    for step, (name, iv) in enumerate(runs):
        def sub(done, _total, _msg, _base=step * len(samples), _name=name):
            if progress:
                progress(_base + done, total, f"{_name}: {done}/{len(samples)}")
        results[name] = evaluate_samples(lm, spec, samples, shots, cfg, iv, progress=sub, cancel=cancel)
    out = {
        "kind": "cnl.evaluate", "model": lm.spec.name, "dataset": dataset, "task_kind": spec.kind,
        "n": len(samples), "seed": seed, "sample_ids": [s.id for s in samples],
        "fewshot_ids": [s.id for s in shots],
        "eval_config": eval_config_dict(cfg), "baseline": summarize(results["baseline"], cfg.bootstrap, seed),
    }
    base_ps = per_sample_metrics(results["baseline"])
    if neurons is not None:
        iv_ps = per_sample_metrics(results["intervened"])
        out["intervention"] = runs[1][1].describe()
        out["intervened"] = {**summarize(results["intervened"], cfg.bootstrap, seed),
                             **deltas(iv_ps, base_ps, cfg.bootstrap, seed)}
        out["control"] = _control_summary([results[n] for n, _ in runs[2:]], base_ps, cfg, seed)
        out["examples"] = [
            {"id": s.id, "prompt": s.prompt, "target": s.target, "before": b.output, "after": a.output}
            for s, b, a in list(zip(samples, results["baseline"], results["intervened"]))[:n_examples]
        ]
    else:
        out["examples"] = [{"id": s.id, "prompt": s.prompt, "target": s.target, "before": b.output}
                           for s, b in list(zip(samples, results["baseline"]))[:n_examples]]
    out.update(stamp())
    return out


def _control_summary(draws: list, base_ps: dict, cfg: EvalConfig, seed: int) -> dict:
    if not draws:
        return {"draws": []}
    per_draw = [summarize(d, 0, seed) for d in draws]
    mats = [per_sample_metrics(d) for d in draws]
    mean_ps = {m: np.mean([x[m] for x in mats], axis=0) for m in ("accuracy", "gold_loglik")}
    out = {"draws": [{"accuracy": d["accuracy"], "gold_loglik": d["gold_loglik"]} for d in per_draw]}
    for metric in ("accuracy", "gold_loglik"):
        vals = [d[metric] for d in per_draw if d[metric] is not None]
        out[metric] = float(np.mean(vals)) if vals else None
        out[f"{metric}_std"] = float(np.std(vals)) if vals else None
    for metric in ("accuracy", "gold_loglik"):
        col = mean_ps[metric]
        out[f"{metric}_ci"] = None if np.isnan(col).all() else bootstrap_ci(col[~np.isnan(col)], cfg.bootstrap, seed)
    out.update(deltas(mean_ps, base_ps, cfg.bootstrap, seed))
    return out


def run_matrix(
    lm: LoadedModel, sources: Mapping[str, tuple[NeuronSet, Sequence[str]]], targets: Sequence[str], n: int,
    seed: int = 0, *, mode: str = "zero", factor: float = 2.0, cfg: EvalConfig | None = None,
    progress: Progress | None = None, cancel: threading.Event | None = None,
) -> dict:
    """The cross-dataset matrix: rows = whose neurons are changed, columns = dataset tested.

    Each cell is (changed - unmodified) on the same evaluation samples, which avoid every sample
    the row's neurons were located on.
    """
    cfg = cfg or EvalConfig()
    excluded = [i for _, ids in sources.values() for i in ids]
    cells: dict[str, dict[str, dict]] = {s: {} for s in sources}
    total, done = len(targets) * (1 + len(sources)), 0
    baselines = {}
    for target in targets:
        spec, samples, shots = _eval_samples(target, n, cfg, seed, excluded)
        base = evaluate_samples(lm, spec, samples, shots, cfg, None, cancel=cancel)
        baselines[target] = summarize(base, cfg.bootstrap, seed)
        done += 1
        if progress:
            progress(done, total, f"baseline {target}")
        for source, (neurons, _) in sources.items():
            after = evaluate_samples(lm, spec, samples, shots, cfg, Intervention(neurons, mode, factor), cancel=cancel)
            cells[source][target] = {**summarize(after, 0, seed),
                                     **deltas(per_sample_metrics(after), per_sample_metrics(base), cfg.bootstrap, seed)}
            done += 1
            if progress:
                progress(done, total, f"{source} -> {target}")
    return {"kind": "cnl.matrix", "model": lm.spec.name, "mode": mode, "factor": factor if mode == "amplify" else 0.0,
            "n": n, "seed": seed, "sources": list(sources), "targets": list(targets), "baseline": baselines,
            "cells": cells, "eval_config": eval_config_dict(cfg), **stamp()}


def run_finetune(
    lm: LoadedModel, dataset: str, neurons: NeuronSet, train_ids: Sequence[str] | None, n: int, seed: int = 0, *,
    n_train: int = 16, steps: int = 20, lr: float = 1e-3, cfg: EvalConfig | None = None,
    progress: Progress | None = None, cancel: threading.Event | None = None,
) -> dict:
    """Evaluate after fine-tuning only the located neurons, against fine-tuning as many random neurons.

    train_ids (e.g. the samples the neurons were located on) must belong to `dataset`; without them,
    n_train training samples are drawn from it. Evaluation samples avoid the training samples.
    """
    from .finetune import finetuned

    cfg = cfg or EvalConfig()
    spec = get_dataset(dataset)
    rows = spec.by_id()
    if train_ids:
        foreign = [i for i in train_ids if i not in rows]
        if foreign:
            raise ParameterError(f"Training samples must come from '{dataset}' (got e.g. {foreign[0]}).")
    else:
        (train_ids,) = draw_disjoint(list(rows), [n_train], seed + 4243)
    _, samples, shots = _eval_samples(dataset, n, cfg, seed, train_ids)
    train = [rows[i] for i in train_ids]
    base = evaluate_samples(lm, spec, samples, shots, cfg, cancel=cancel)
    out = {"kind": "cnl.finetune", "model": lm.spec.name, "dataset": dataset, "n": len(samples), "seed": seed,
           "sample_ids": [s.id for s in samples], "train_ids": list(train_ids), "steps": steps, "lr": lr,
           "n_neurons": len(neurons), "baseline": summarize(base, cfg.bootstrap, seed)}
    for step, (name, chosen) in enumerate((("located", neurons), ("random", random_like(neurons, seed + 2000)))):
        with finetuned(lm, chosen, train, steps=steps, lr=lr, cancel=cancel) as losses:
            after = evaluate_samples(lm, spec, samples, shots, cfg, cancel=cancel)
        out[name] = {**summarize(after, cfg.bootstrap, seed), "losses": losses,
                     **deltas(per_sample_metrics(after), per_sample_metrics(base), cfg.bootstrap, seed)}
        if progress:
            progress(step + 1, 2, f"fine-tuned {name} neurons")
    out.update(stamp())
    return out

"""The `locate` pipeline: splits -> cached scores -> located sets -> split-vs-split comparison."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from .collect import Progress, ScoreTable, collect_scores
from .compare import compare_sets
from .datasets import get_dataset
from .errors import ParameterError
from .localize import LocateParams, locate, neuron_prominence
from .models import LoadedModel
from .neurons import NeuronSet
from .provenance import stamp
from .scoring import ScoreConfig
from .splits import make_splits


@dataclass
class LocateRun:
    """A finished locate run: its scores stay in memory so thresholds can change instantly."""

    model_info: dict
    dataset: str
    n: int
    k: int
    seed: int
    score_cfg: ScoreConfig
    splits: list[list[str]]
    table: ScoreTable
    params: LocateParams = field(default_factory=LocateParams)

    def relocalize(self, params: LocateParams) -> dict:
        """Located sets and comparisons for new thresholds, from the in-memory scores only."""
        self.params = params
        return self.result()

    def result(self) -> dict:
        """The JSON-ready result (the schema the CLI writes and the dashboard re-loads)."""
        scores = self.table.scores
        all_set = locate(scores, self.params)
        pos = {sid: i for i, sid in enumerate(self.table.sample_ids)}
        split_sets = [locate(scores[[pos[i] for i in ids]], self.params) for ids in self.splits]
        pairwise = []
        for a in range(len(split_sets)):
            for b in range(a + 1, len(split_sets)):
                pairwise.append({"a": a, "b": b, **compare_sets(split_sets[a], split_sets[b])})
        mean_scores = scores.float().mean(0).flatten()
        top = sorted(all_set.flat.tolist(), key=lambda f: -float(mean_scores[f]))[:50]
        grid = self.table.grid
        return {
            "kind": "cnl.locate",
            "model": self.model_info.get("name"),
            "model_info": self.model_info,
            "dataset": self.dataset,
            "method": self.score_cfg.method,
            "params": {"n": self.n, "splits": self.k, "seed": self.seed, "score": asdict(self.score_cfg),
                       "locate": self.params.as_dict()},
            "grid": grid.as_dict(),
            "n_neurons_total": grid.total,
            "neurons": all_set.pairs(),
            "n_located": len(all_set),
            "fraction_located": len(all_set) / grid.total,
            "per_layer": all_set.per_layer_counts(),
            "top_neurons": [{"layer": f // grid.width, "index": f % grid.width, "mean_score": float(mean_scores[f])}
                            for f in top],
            "splits": [{"sample_ids": ids, "neurons": s.pairs(), "n_located": len(s)} for ids, s in zip(self.splits, split_sets)],
            "pairwise": pairwise,
            "cache": {"key": self.table.key, "computed": self.table.computed, "reused": self.table.reused,
                      "notes": self.table.notes},
            "mean_gold_logprob": float(self.table.gold_logprob.mean()),
            **stamp(),
        }

    def prominence(self) -> torch.Tensor:
        """[layers, width] fraction of samples selecting each neuron (for the heatmap)."""
        return neuron_prominence(self.table.scores, self.params)


def run_locate(
    lm: LoadedModel, dataset: str, n: int, k: int = 2, seed: int = 0, score_cfg: ScoreConfig | None = None,
    params: LocateParams | None = None, *, batch_size: int = 8, use_cache: bool = True,
    progress: Progress | None = None, cancel: threading.Event | None = None,
) -> LocateRun:
    """Draw k disjoint splits of n samples, score them (through the cache) and locate neurons."""
    if n < 1 or k < 1:
        raise ParameterError("n and the number of splits must be at least 1.")
    spec = get_dataset(dataset)
    score_cfg = score_cfg or ScoreConfig()
    splits = make_splits(spec, n, k, seed)
    ids = [i for s in splits for i in s]
    table = collect_scores(lm, spec, ids, score_cfg, batch_size=batch_size, use_cache=use_cache,
                           progress=progress, cancel=cancel)
    return LocateRun(lm.info(), dataset, n, k, seed, score_cfg, splits, table, params or LocateParams())


def load_result(path: str | Path) -> dict:
    """Read a locate result JSON written by the CLI or the dashboard."""
    from .errors import NeuronSetError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NeuronSetError(f"Could not read the result file {Path(path).name}: {exc}.") from exc
    if not isinstance(data, dict) or "neurons" not in data or "grid" not in data:
        raise NeuronSetError(f"{Path(path).name} is not a locate result (it needs 'neurons' and 'grid').")
    return data


def neuron_set_from_result(data: dict, grid=None) -> NeuronSet:
    """The located set of a result; checked against the model's grid when one is given."""
    from .errors import NeuronSetError
    from .neurons import NeuronGrid

    try:
        file_grid = NeuronGrid(int(data["grid"]["n_layers"]), int(data["grid"]["width"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise NeuronSetError("The result file has no valid 'grid' (n_layers, width).") from exc
    if grid is not None and file_grid != grid:
        raise NeuronSetError(f"The neurons were located on a {file_grid.n_layers} x {file_grid.width} grid, "
                             f"but this model has {grid.n_layers} x {grid.width}.")
    if not isinstance(data["neurons"], list):
        raise NeuronSetError("'neurons' must be a list of [layer, index] pairs.")
    return NeuronSet.from_pairs(file_grid, data["neurons"])


def located_sample_ids(data: dict) -> list[str]:
    return [i for s in data.get("splits", []) for i in s.get("sample_ids", [])]


def split_agreement(result: dict) -> dict:
    """Mean overlap rate, IoU and chance IoU over all pairs of splits (NaN with fewer than two splits)."""
    pw = result.get("pairwise") or []
    return {key: sum(x[key] for x in pw) / len(pw) if pw else float("nan")
            for key in ("overlap_rate", "iou", "chance_iou")}


def threshold_sweep(run: LocateRun, taus: Sequence[float], ps: Sequence[float]) -> list[dict]:
    """Located-set size and split agreement for every (tau, p), from the in-memory scores."""
    rows = []
    for tau in taus:
        for p in ps:
            res = run.relocalize(LocateParams(rule="relative", tau=tau, p=p))
            rows.append({"tau": tau, "p": p, "n_located": res["n_located"], **split_agreement(res)})
    return rows

"""The `locate` experiment: splits -> cached scores -> located sets -> split-vs-split comparison."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from ..compare.overlap import compare_sets
from ..data.samples import get_dataset
from ..data.splits import make_splits
from ..errors import ParameterError
from ..locate.collect import ScoreTable, collect_scores
from ..locate.completeness import SAMPLES as COMPLETENESS_SAMPLES
from ..locate.completeness import Completeness, ig_completeness
from ..locate.scorers import ScoreConfig
from ..locate.select import LocateParams, locate, neuron_prominence
from ..model.loading import LoadedModel
from ..parallel import Launch
from ..progress import Progress
from ..provenance import stamp
from ..serialize import to_data
from .locate_result import CacheInfo, LocateResult, SplitPair, SplitResult, TopNeuron

TOP_NEURONS = 50


@dataclass(frozen=True)
class LocateRun:
    """A finished locate run: its scores stay in memory, so new thresholds give a new result at once."""

    model_info: dict
    dataset: str
    n: int
    k: int
    seed: int
    score_cfg: ScoreConfig
    splits: list[list[str]]
    table: ScoreTable
    params: LocateParams = field(default_factory=LocateParams)
    completeness: Completeness | None = None  # integrated gradients only

    def result(self, params: LocateParams | None = None) -> LocateResult:
        """Located sets and comparisons for `params` (default: the run's own), from the in-memory scores only: other
        thresholds need no scoring pass."""
        params = params or self.params
        scores = self.table.scores
        all_set = locate(scores, params)
        pos = {sid: i for i, sid in enumerate(self.table.sample_ids)}
        split_sets = [locate(scores[[pos[i] for i in ids]], params) for ids in self.splits]
        pairwise = [
            SplitPair(a, b, compare_sets(split_sets[a], split_sets[b]))
            for a in range(len(split_sets))
            for b in range(a + 1, len(split_sets))
        ]
        mean_scores = scores.float().mean(0).flatten()
        width = self.table.grid.width
        top = sorted(all_set.flat.tolist(), key=lambda f: -float(mean_scores[f]))[:TOP_NEURONS]
        provenance = stamp()
        return LocateResult(
            model=self.model_info["name"],
            dataset=self.dataset,
            neurons=all_set,
            n=self.n,
            k=self.k,
            seed=self.seed,
            score=self.table.cfg or self.score_cfg,
            params=params,
            model_info=self.model_info,
            splits=[SplitResult(ids, s) for ids, s in zip(self.splits, split_sets)],
            pairwise=pairwise,
            top_neurons=[TopNeuron(f // width, f % width, float(mean_scores[f])) for f in top],
            cache=CacheInfo(self.table.key, self.table.computed, self.table.reused, list(self.table.notes)),
            mean_gold_logprob=float(self.table.gold_logprob.mean()),
            truncated_prompts=self.table.truncated_prompts,
            truncated_answers=self.table.truncated_answers,
            ig_completeness=None if self.completeness is None else to_data(self.completeness),
            created=provenance["created"],
            versions=provenance["versions"],
        )

    def prominence(self, params: LocateParams | None = None) -> torch.Tensor:
        """[layers, width] fraction of samples selecting each neuron (for the heatmap)."""
        return neuron_prominence(self.table.scores, params or self.params)


def run_locate(
    lm: LoadedModel,
    dataset: str,
    n: int,
    k: int = 2,
    seed: int = 0,
    score_cfg: ScoreConfig | None = None,
    params: LocateParams | None = None,
    *,
    batch_size: int | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    launch: Launch | None = None,
) -> LocateRun:
    """Draw k disjoint splits of n samples, score them (through the cache) and locate neurons.

    Under torchrun (`launch`) the scoring is spread over the processes; every process gets the whole run.
    """
    if n < 1 or k < 1:
        raise ParameterError("n and the number of splits must be at least 1.")
    spec = get_dataset(dataset)
    score_cfg = score_cfg or ScoreConfig()
    splits = make_splits(spec, n, k, seed)
    ids = [i for s in splits for i in s]
    table = collect_scores(
        lm,
        spec,
        ids,
        score_cfg,
        batch_size=batch_size,
        use_cache=use_cache,
        progress=progress,
        cancel=cancel,
        launch=launch,
    )
    completeness = None
    assert table.cfg is not None  # collect_scores always returns the settings it used
    if table.cfg.method == "integrated_gradients" and (launch is None or launch.is_main):
        rows = spec.by_id()
        checked = table.sample_ids[:COMPLETENESS_SAMPLES]
        completeness = ig_completeness(lm, [rows[i] for i in checked], table.cfg, table.scores[: len(checked)])
    return LocateRun(lm.info(), dataset, n, k, seed, score_cfg, splits, table, params or LocateParams(), completeness)


@dataclass(frozen=True)
class SweepRow:
    tau: float
    p: float
    n_located: int
    overlap_rate: float
    iou: float
    chance_iou: float


def threshold_sweep(run: LocateRun, taus: Sequence[float], ps: Sequence[float]) -> list[SweepRow]:
    """Located-set size and split agreement for every (tau, p), from the in-memory scores, with the run's own sign."""
    rows = []
    for tau in taus:
        for p in ps:
            res = run.result(replace(run.params, rule="relative", tau=tau, p=p))  # the run's own sign
            agree = res.agreement()
            rows.append(SweepRow(tau, p, res.n_located, agree.overlap_rate, agree.iou, agree.chance_iou))
    return rows

"""An empirical null for the agreement of located sets, next to the hypergeometric one.

The hypergeometric chance IoU assumes two uniformly random sets of the same sizes. Located sets are not
uniform: every prompt's scores favour some layers and a few always-busy neurons, so sets located on
unrelated data already overlap far more than uniform chance (an independent check: `add1` vs `imdb`,
IoU 0.056-0.068, about 150 times the hypergeometric level). "N times chance" is therefore an overstatement
unless the chance is measured. Two measured nulls:

- `unrelated`: sets located on `draws` disjoint subsamples of the dataset and of an unrelated dataset,
  the IoU of every (dataset, other) pair: what agreement two sets have with nothing in common but the model;
- `shuffled`: sets located on subsamples of the dataset and on disjoint subsamples of it with the gold
  answers shuffled among the rows (prompts unchanged): what agreement the prompts' form alone gives.

Both report the IoUs' mean, range and 2.5-97.5% spread, and the hypergeometric chance of the same pairs.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import fields as F
from ..compare.overlap import compare_sets
from ..data.samples import DatasetSpec, Sample, get_dataset
from ..data.splits import make_splits
from ..errors import ParameterError
from ..locate.collect import collect_scores
from ..locate.scorers import ScoreConfig
from ..locate.select import LocateParams, locate
from ..model.loading import LoadedModel
from ..model.neurons import NeuronSet
from ..options import DEFAULTS
from ..progress import Progress
from ..schema import in_file, result_kind

NULL_KINDS = ("unrelated", "shuffled")


@result_kind(
    "cnl.empirical_null",
    computed={"mean": "mean", "spread": "spread", "mean_chance_iou": "chance_iou"},  # for readers, never read
    order=("dataset", "other", "n", "draws", "seed", "ious", "chance_ious", "sizes", "kind"),
)
@dataclass
class EmpiricalNull:
    """IoUs of pairs of sets that should share nothing but the model (or the prompts' form)."""

    kind: str = field(metadata=in_file(key="null"))  # "unrelated" or "shuffled" ("kind" in a file is the result's kind)
    dataset: str
    other: str | None  # the unrelated dataset (None for shuffled answers)
    n: int
    draws: int
    seed: int
    ious: list[float]
    chance_ious: list[float]
    sizes: list[list[int]] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.ious)) if self.ious else 0.0

    @property
    def spread(self) -> list[float]:
        """2.5% and 97.5% quantiles of the pairs' IoUs."""
        return [float(x) for x in np.quantile(self.ious, [0.025, 0.975])] if self.ious else [0.0, 0.0]

    @property
    def chance_iou(self) -> float:
        return float(np.mean(self.chance_ious)) if self.chance_ious else 0.0

    def describe(self) -> str:
        what = (
            f"{self.dataset} vs {self.other}" if self.kind == "unrelated" else f"{self.dataset} vs its shuffled answers"
        )
        lo, hi = self.spread
        return (
            f"empirical null ({what}, n = {self.n}, {len(self.ious)} pairs): IoU {self.mean:.4f} "
            f"(95% of pairs in [{lo:.4f}, {hi:.4f}], range {min(self.ious, default=0):.4f}-"
            f"{max(self.ious, default=0):.4f}); hypergeometric chance {self.chance_iou:.5f}"
        )


def shuffled_answers(spec: DatasetSpec, seed: int) -> DatasetSpec:
    """The dataset with its gold answers permuted among the rows (no row keeps its own where it can be helped)."""
    rows = spec.rows()
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    shift = order[1:] + order[:1]  # a cycle through the shuffled order: every row gets another row's answer
    moved = dict(zip(order, shift))
    name = f"{spec.name}~shuffled{seed}"
    out = [
        Sample(f"{name}/{s.id}", s.prompt, rows[moved[i]].answer, rows[moved[i]].target, s.choices)
        for i, s in enumerate(rows)
    ]
    return DatasetSpec(
        name,
        f"{spec.description} (answers shuffled)",
        spec.source,
        spec.kind,
        spec.prompt_format,
        lambda: out,
        expected_rows=len(out),
        max_new_tokens=spec.max_new_tokens,
    )


def _sets(
    lm: LoadedModel, spec: DatasetSpec, splits: list[list[str]], cfg: ScoreConfig, params: LocateParams, **kw
) -> list[NeuronSet]:
    table = collect_scores(lm, spec, [i for s in splits for i in s], cfg, **kw)
    where = {sid: k for k, sid in enumerate(table.sample_ids)}
    return [locate(table.scores[torch.tensor([where[i] for i in s])], params) for s in splits]


def empirical_null(
    lm: LoadedModel,
    dataset: str,
    kind: str = "unrelated",
    other: str | None = DEFAULTS.null_other,
    n: int = 20,
    draws: int = DEFAULTS.null_draws,
    seed: int = 0,
    score_cfg: ScoreConfig | None = None,
    params: LocateParams | None = None,
    *,
    batch_size: int | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> EmpiricalNull:
    """IoU of sets that share nothing but the model (`unrelated`) or the prompts (`shuffled`); see the module doc."""
    if kind not in NULL_KINDS:
        raise ParameterError(f"The empirical null must be one of {', '.join(NULL_KINDS)}.")
    F.NULL_DRAWS.check(draws)
    if n < 1:
        raise ParameterError("An empirical null needs n >= 1.")
    score_cfg, params = score_cfg or ScoreConfig(), params or LocateParams()
    kw = {"batch_size": batch_size, "use_cache": use_cache, "progress": progress, "cancel": cancel}
    spec = get_dataset(dataset)
    if kind == "unrelated":
        if not other or other == dataset:
            raise ParameterError("The unrelated null needs another dataset than the one located.")
        mine = _sets(lm, spec, make_splits(spec, n, draws, seed), score_cfg, params, **kw)
        other_spec = get_dataset(other)
        theirs = _sets(lm, other_spec, make_splits(other_spec, n, draws, seed + 1), score_cfg, params, **kw)
    else:
        other = None
        splits = make_splits(spec, n, 2 * draws, seed)
        mine = _sets(lm, spec, splits[:draws], score_cfg, params, **kw)
        shuffled = shuffled_answers(spec, seed)
        theirs = _sets(
            lm, shuffled, [[f"{shuffled.name}/{i}" for i in s] for s in splits[draws:]], score_cfg, params, **kw
        )
    comparisons = [compare_sets(a, b) for a in mine for b in theirs]
    return EmpiricalNull(
        kind,
        dataset,
        other,
        n,
        draws,
        seed,
        [c.iou for c in comparisons],
        [c.chance_iou for c in comparisons],
        [[c.size_a, c.size_b] for c in comparisons],
    )

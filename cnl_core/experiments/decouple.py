"""The paper's decoupling experiment (its Figure 3): do located sets agree because of the capability?

Two subsamples A and B of n samples share a main part: the first round(f x n) samples of a shuffled
pool of dataset D. The rest, the replaceable part, differs. A's comes from D. B's comes from D too
("same": samples A does not have) or from another dataset E ("other"). If the located sets agree
because of what D's samples have in common (the capability), their IoU stays high as f shrinks when
B's replaceable part comes from D, and falls towards the D-vs-E IoU when it comes from E. At f = 1
the two subsamples are the same samples, and the IoU is 1 by construction (a sanity check).

The parts are nested: one shuffled pool per repeat serves every f, so the curve moves only with f.
Scores are per sample, so every sample is scored once (through the cache) and re-used by every point.

Next to the hypergeometric chance, an empirical null: the IoU of A's set with the set of n samples of E
alone (B at f = 0 from the other dataset), per repeat; sets located on unrelated data overlap far more than
uniformly random sets. Where both sets of a point are empty (tau or p too strict for n samples), the IoU
is undefined: it is recorded as 0 with `empty` set, and a warning says so (also at f = 1).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..compare.overlap import compare_sets
from ..data.samples import get_dataset
from ..errors import DatasetError, ParameterError
from ..locate.collect import collect_scores
from ..locate.scorers import ScoreConfig
from ..locate.select import LocateParams, locate
from ..model.loading import LoadedModel
from ..progress import Progress
from ..provenance import stamp
from ..schema import in_file, result_kind

SOURCES = ("same", "other")
DEFAULT_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class CurvePoint:
    fraction: float
    replaceable: str  # "same" | "other"
    repeat: int
    overlap_rate: float
    iou: float
    chance_iou: float
    size_a: int
    size_b: int
    empty: bool = False  # both sets empty: the IoU is undefined (recorded as 0)


@result_kind(
    "cnl.decouple",
    computed={"empirical_null": "empirical_null", "warnings": "warnings"},  # written for readers, never read
    order=(
        *("model", "dataset", "other", "n", "fractions", "repeats", "seed", "params", "curve", "empirical_null"),
        *("warnings", "null_iou", "created", "versions"),
    ),
)
@dataclass
class DecoupleResult:
    model: str
    dataset: str
    other: str
    n: int
    fractions: list[float]
    repeats: int
    seed: int
    score: ScoreConfig = field(metadata=in_file(group="params"))
    params: LocateParams = field(metadata=in_file(group="params", key="locate"))
    curve: list[CurvePoint] = field(default_factory=list)
    # per repeat: A's set vs a set of n samples of the other (files before it was kept: only its summary)
    null_iou: list[float] = field(default_factory=list)
    # the other dataset's settings (its own token limits)
    other_score: ScoreConfig | None = field(default=None, metadata=in_file(group="params", omit="none"))
    created: str | None = None
    versions: dict = field(default_factory=dict)

    def mean_curve(self) -> list[dict]:
        """IoU and chance IoU averaged over repeats, per (fraction, source): what the chart draws."""
        out = []
        for source in SOURCES:
            for f in self.fractions:
                pts = [p for p in self.curve if p.replaceable == source and p.fraction == f]
                if pts:
                    out.append(
                        {
                            "fraction": f,
                            "replaceable": source,
                            "iou": sum(p.iou for p in pts) / len(pts),
                            "iou_min": min(p.iou for p in pts),
                            "iou_max": max(p.iou for p in pts),
                            "chance_iou": sum(p.chance_iou for p in pts) / len(pts),
                        }
                    )
        return out

    def empirical_null(self) -> dict:
        """The IoU of sets located on the dataset and on the other one alone: mean and range over repeats."""
        v = self.null_iou
        return {
            "iou": sum(v) / len(v) if v else None,
            "iou_min": min(v, default=None),
            "iou_max": max(v, default=None),
            "repeats": len(v),
            "what": f"a {self.dataset} subsample's set vs a {self.other} subsample's set",
        }

    def warnings(self) -> list[str]:
        empty = [p for p in self.curve if p.empty]
        if not empty:
            return []
        where = ", ".join(sorted({f"f = {p.fraction:g} ({p.replaceable})" for p in empty}))
        return [
            f"{len(empty)} point(s) had two empty located sets, where IoU is undefined (recorded as 0): {where}. "
            "Lower tau or p, or raise n."
        ]


def subsamples(
    d_ids: Sequence[str], e_ids: Sequence[str], n: int, fraction: float, seed: int
) -> dict[str, tuple[list[str], list[str]]]:
    """(A, B) for each source of B's replaceable part, sharing round(fraction x n) main samples."""
    if not 0.0 <= fraction <= 1.0:
        raise ParameterError(f"Shared fractions must be between 0 and 1, got {fraction}.")
    d_pool, e_pool = sorted(d_ids), sorted(e_ids)
    if len(d_pool) < 2 * n or len(e_pool) < n:
        raise DatasetError(
            f"Decoupling with n = {n} needs {2 * n} samples of the dataset and {n} of the other; "
            f"they have {len(d_pool)} and {len(e_pool)}."
        )
    rng = random.Random(seed)
    rng.shuffle(d_pool)
    rng.shuffle(e_pool)
    main = round(fraction * n)
    a = d_pool[:n]
    return {"same": (a, d_pool[:main] + d_pool[n : 2 * n - main]), "other": (a, d_pool[:main] + e_pool[: n - main])}


def run_decouple(
    lm: LoadedModel,
    dataset: str,
    other: str,
    n: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    repeats: int = 1,
    seed: int = 0,
    score_cfg: ScoreConfig | None = None,
    params: LocateParams | None = None,
    *,
    batch_size: int | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> DecoupleResult:
    """The decoupling curve: overlap and IoU of A's and B's located sets for each shared fraction and source."""
    if n < 1 or not 1 <= repeats <= 20 or not fractions:
        raise ParameterError("Decoupling needs n >= 1, 1 to 20 repeats and at least one fraction.")
    if dataset == other:
        raise ParameterError("The other dataset must differ from the dataset.")
    score_cfg, params = score_cfg or ScoreConfig(), params or LocateParams()
    d_spec, e_spec = get_dataset(dataset), get_dataset(other)
    d_ids, e_ids = [s.id for s in d_spec.rows()], [s.id for s in e_spec.rows()]
    plan = [(r, f, subsamples(d_ids, e_ids, n, f, seed + r)) for r in range(repeats) for f in fractions]
    nulls = [subsamples(d_ids, e_ids, n, 0.0, seed + r)["other"] for r in range(repeats)]  # A vs n samples of E
    needed = {i for _, _, parts in plan for a, b in parts.values() for i in (*a, *b)}
    needed |= {i for a, b in nulls for i in (*a, *b)}
    tables = [
        collect_scores(
            lm,
            spec,
            [i for i in ids if i in needed],
            score_cfg,
            batch_size=batch_size,
            use_cache=use_cache,
            progress=progress,
            cancel=cancel,
        )
        for spec, ids in ((d_spec, d_ids), (e_spec, e_ids))
    ]
    row_of = {sid: (t.scores, k) for t in tables for k, sid in enumerate(t.sample_ids)}

    def located(ids: list[str]):
        return locate(torch.stack([row_of[i][0][row_of[i][1]] for i in ids]), params)

    curve = []
    for r, f, parts in plan:
        for source in SOURCES:
            a, b = parts[source]
            stats = compare_sets(located(a), located(b))
            curve.append(
                CurvePoint(
                    float(f),
                    source,
                    r,
                    stats.overlap_rate,
                    stats.iou,
                    stats.chance_iou,
                    stats.size_a,
                    stats.size_b,
                    empty=stats.size_a == 0 and stats.size_b == 0,
                )
            )
    null_iou = [compare_sets(located(a), located(b)).iou for a, b in nulls]
    return DecoupleResult(
        model=lm.spec.name,
        dataset=dataset,
        other=other,
        n=n,
        fractions=[float(f) for f in fractions],
        repeats=repeats,
        seed=seed,
        score=tables[0].cfg or score_cfg,
        params=params,
        curve=curve,
        null_iou=null_iou,
        other_score=tables[1].cfg,
        **stamp(),
    )

"""Downloadable files from typed results: CSV that spreadsheets open safely, JSON, and charts.

`write_exports` writes everything of a session (or of a CLI `export`) into one folder, so the
dashboard's Export tab and `python -m cnl_core export` produce the same files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from ..experiments.eval_results import EvalResult, MatrixResult
from ..experiments.json_io import write_json
from ..experiments.locate_result import LocateResult
from ..output_files import atomic_write, check_output_folder
from ..serialize import to_data
from . import charts

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")  # and full-width forms


def safe_cell(value):
    """Text a spreadsheet would run as a formula gets a leading apostrophe (OWASP's CSV-injection advice).

    A trigger counts also after leading spaces or line breaks, and in its full-width form (＝ ＋ － ＠);
    a plain number (e.g. -0.25) stays a number.
    """
    if not isinstance(value, str) or not value:
        return value
    stripped = value.lstrip(" \n")
    if value.startswith(("\t", "\r")) or stripped.startswith(_FORMULA_START):
        try:
            float(value)
            return value  # a plain negative number
        except ValueError:
            return "'" + value
    return value


def to_safe_csv(df: pd.DataFrame, path: str | Path) -> Path:
    return atomic_write(path, df.map(safe_cell).to_csv(index=False))


def safe_stem(label: str, limit: int = 80) -> str:
    """A file-name stem from a set label: letters, digits, '-', '_' and '.', at most `limit` characters."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "set"
    return stem[:limit]


def pairwise_table(result: LocateResult) -> pd.DataFrame:
    cols = ["a", "b", "size_a", "size_b", "intersection", "overlap_rate", "iou", "chance_iou", "p_value"]
    return pd.DataFrame([{k: to_data(p)[k] for k in cols} for p in result.pairwise], columns=cols)


def neurons_table(result: LocateResult) -> pd.DataFrame:
    return pd.DataFrame([vars(t) for t in result.top_neurons], columns=["layer", "index", "mean_score"])


def _ci(ci) -> str:
    return "" if not ci else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def evaluation_table(results: Sequence[EvalResult]) -> pd.DataFrame:
    rows = []
    for r in results:
        for part, s in r.conditions().items():
            d = s.deltas
            rows.append(
                {
                    "dataset": r.dataset,
                    "condition": part,
                    "n": r.n,
                    "accuracy": s.accuracy,
                    "accuracy_ci": _ci(s.accuracy_ci),
                    "gold_loglik": s.gold_loglik,
                    "gold_loglik_ci": _ci(s.gold_loglik_ci),
                    "delta_accuracy": d and d.delta_accuracy,
                    "delta_gold_loglik": d and d.delta_gold_loglik,
                    "delta_gold_loglik_ci": _ci(d and d.delta_gold_loglik_ci),
                }
            )
    return pd.DataFrame(rows)


def _sig(value, signed: bool = False) -> str:
    if value is None or math.isnan(value):  # NaN: not measured (harness tasks have no gold log-likelihood)
        return ""
    return f"{value:+.3g}" if signed else f"{value:.3g}"


EVAL_COLUMNS = [
    "run",
    "neurons",
    "tested on",
    "condition",
    "n",
    "accuracy",
    "95% CI",
    "gold log-lik / token",
    "change vs unmodified",
    "change 95% CI",
]  # the dashboard's empty table shows these headers too
EXAMPLE_COLUMNS = ["dataset", "id", "prompt", "gold", "before", "after"]


def readable_evaluation_table(runs: Sequence[Sequence[EvalResult]]) -> pd.DataFrame:
    """Every intervention run of a session, newest first, with 3 significant digits and plain headers."""
    rows = []
    for number, results in reversed(list(enumerate(runs, 1))):
        for r in results:
            iv = to_data(r.intervention) or {}
            how = "" if not iv else ("zero" if iv.get("mode") == "zero" else f"amplify x{iv.get('factor', 0):g}")
            for part, s in r.conditions().items():
                d = s.deltas
                rows.append(
                    {
                        "run": number,
                        "neurons": f"{r.located_on or ''} ({iv.get('n_neurons', 0)}) {how}".strip(),
                        "tested on": r.dataset,
                        "condition": part,
                        "n": r.n,
                        "accuracy": _sig(s.accuracy),
                        "95% CI": _ci(s.accuracy_ci).replace(".0000", ".0"),
                        "gold log-lik / token": _sig(s.gold_loglik),
                        "change vs unmodified": _sig(d and d.delta_gold_loglik, signed=True),
                        "change 95% CI": _ci(d and d.delta_gold_loglik_ci),
                    }
                )
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


def examples_table(results: Sequence[EvalResult]) -> pd.DataFrame:
    """Example outputs with their prompt (its end, on one line); an empty output is shown as (empty)."""

    def shown(text: str | None) -> str:
        return text if text and text.strip() else "(empty)"

    rows = [
        {
            "dataset": r.dataset,
            "id": e.id,
            "prompt": " ".join(e.prompt.split())[-160:],
            "gold": e.target,
            "before": shown(e.before),
            "after": shown(e.after) if e.after is not None else "",
        }
        for r in results
        for e in r.examples
    ]
    return pd.DataFrame(rows, columns=EXAMPLE_COLUMNS)


def write_exports(
    folder: str | Path,
    located: Mapping[str, tuple[LocateResult, torch.Tensor | None]],
    evals: Sequence[EvalResult] = (),
    matrix: MatrixResult | None = None,
) -> list[Path]:
    """Every result as files in `folder`: located sets (JSON, CSV, heatmap PNG/SVG), evaluations, the matrix.

    `located` maps a label to (result, per-neuron prominence or None for a re-loaded set). The folder is
    checked first; each file is written atomically, so a failure keeps the earlier export's files whole.
    """
    check_output_folder(folder, "Export folder")
    folder = Path(folder)
    files: list[Path] = []
    for label, (result, prominence) in located.items():
        stem = safe_stem(label)
        files.append(result.write(folder / f"located_{stem}.json"))
        files.append(to_safe_csv(pairwise_table(result), folder / f"splits_{stem}.csv"))
        files.append(to_safe_csv(neurons_table(result), folder / f"top_neurons_{stem}.csv"))
        heat = charts.located_heatmap(label, result, prominence)
        files += [Path(charts.save_chart(heat, str(folder / f"heatmap_{stem}.{fmt}"), fmt)) for fmt in ("png", "svg")]
    if evals:
        files.append(to_safe_csv(evaluation_table(evals), folder / "evaluation.csv"))
        files.append(to_safe_csv(examples_table(evals), folder / "examples.csv"))
        write_json(folder / "evaluation.json", [to_data(e) for e in evals])
        files.append(folder / "evaluation.json")
        _, ll_chart = charts.evaluation_charts(list(evals))
        if ll_chart is not None:  # None when every evaluation is an lm-eval harness run (no gold log-likelihood)
            files += [
                Path(charts.save_chart(ll_chart, str(folder / f"evaluation_loglik.{fmt}"), fmt))
                for fmt in ("png", "svg")
            ]
    if matrix is not None:
        write_json(folder / "cross_dataset_matrix.json", to_data(matrix))
        files.append(folder / "cross_dataset_matrix.json")
    return files

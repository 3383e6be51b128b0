"""Downloadable tables: CSV that spreadsheets open safely, from result dicts."""

from __future__ import annotations

import pandas as pd

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """Prefix text that a spreadsheet would run as a formula (CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
            return value  # a plain negative number
        except ValueError:
            return "'" + value
    return value


def to_safe_csv(df: pd.DataFrame, path: str) -> str:
    df.map(safe_cell).to_csv(path, index=False)
    return path


def pairwise_table(result: dict) -> pd.DataFrame:
    cols = ["a", "b", "size_a", "size_b", "intersection", "overlap_rate", "iou", "chance_iou", "p_value"]
    return pd.DataFrame([{k: p[k] for k in cols} for p in result["pairwise"]], columns=cols)


def neurons_table(result: dict) -> pd.DataFrame:
    return pd.DataFrame(result["top_neurons"], columns=["layer", "index", "mean_score"])


def evaluation_table(results: list[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        for part in ("baseline", "intervened", "control"):
            if part not in r:
                continue
            p = r[part]
            rows.append({
                "dataset": r["dataset"], "condition": part, "n": r["n"],
                "accuracy": p.get("accuracy"), "accuracy_ci": _ci(p.get("accuracy_ci")),
                "gold_loglik": p.get("gold_loglik"), "gold_loglik_ci": _ci(p.get("gold_loglik_ci")),
                "delta_accuracy": p.get("delta_accuracy"), "delta_gold_loglik": p.get("delta_gold_loglik"),
                "delta_gold_loglik_ci": _ci(p.get("delta_gold_loglik_ci")),
            })
    return pd.DataFrame(rows)


def examples_table(results: list[dict]) -> pd.DataFrame:
    rows = [{"dataset": r["dataset"], "id": e["id"], "target": e["target"], "before": e["before"],
             "after": e.get("after", "")} for r in results for e in r.get("examples", [])]
    return pd.DataFrame(rows, columns=["dataset", "id", "target", "before", "after"])


def _ci(ci) -> str:
    return "" if not ci else f"[{ci[0]:.4f}, {ci[1]:.4f}]"

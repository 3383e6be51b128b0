"""The largest pass a scoring method makes, for the memory estimate, and a batch size that fits.

Why here: the model layer can estimate any pass (rows x tokens, with or without a backward pass), but
only the scorers know how many rows a method packs into one pass (integrated gradients packs up to
four layers x m steps as rows, whatever the batch size) and which methods run a backward pass.
"""

from __future__ import annotations

import torch

from ..model.loading import LoadedModel
from ..model.memory import Workload, free_bytes_for, largest_rows, model_size
from ..options import DEFAULTS, IG_METHODS
from .integrated_gradients import ig_rows_per_pass
from .scorers import ScoreConfig

FORWARD_ONLY = ("activation",)  # methods without a backward pass; any other is estimated with one


def scoring_workload(cfg: ScoreConfig, batch_size: int | None = None) -> Workload:
    """The largest pass of scoring with cfg: its rows, tokens per row (the token limits, or the default
    guess before a dataset is chosen) and whether it keeps activations for a backward pass."""
    tokens = (
        (cfg.max_prompt_tokens or 0) + (cfg.max_answer_tokens or 0)
        if cfg.max_prompt_tokens and cfg.max_answer_tokens
        else DEFAULTS.estimate_tokens
    )
    if cfg.method in IG_METHODS:
        return Workload(cfg.method, ig_rows_per_pass(cfg.ig_steps), tokens, True, fixed_rows=True)
    return Workload(cfg.method, batch_size or DEFAULTS.batch_size, tokens, cfg.method not in FORWARD_ONLY)


def fitting_batch_size(lm: LoadedModel, cfg: ScoreConfig) -> tuple[int, str | None]:
    """The default batch size, or fewer rows where the estimate says a default batch would not fit in the
    memory free now next to the loaded model; with a note saying why when it is fewer."""
    work = scoring_workload(cfg, DEFAULTS.batch_size)
    if cfg.method in IG_METHODS:  # its pass size does not depend on the batch size
        return DEFAULTS.batch_size, None
    size = lm.plan.estimate.size if lm.plan is not None else model_size(lm.model.config)
    free = free_bytes_for(lm.model)  # the GPUs holding the model (one per process under torchrun), or RAM
    dtype_bytes = torch.finfo(getattr(torch, lm.dtype)).bits // 8
    rows = largest_rows(size, work, dtype_bytes, free)
    if rows == work.rows:
        return rows, None
    return rows, (
        f"Batch size {rows} instead of {work.rows}: by the memory estimate a batch of {work.rows} x "
        f"{work.tokens} tokens would not fit in the {free / 2**30:.1f} GiB free. Set the batch size to override."
    )

"""Compute-or-reuse: per-sample scores for a list of sample ids, through the on-disk cache."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..data.samples import DatasetSpec
from ..errors import CacheError, Cancelled, ParameterError
from ..model.architectures import neuron_definition
from ..model.loading import LoadedModel
from ..model.memory import is_out_of_memory, release_cached_memory
from ..model.neurons import NeuronGrid
from ..options import DEFAULTS
from ..parallel import Launch
from ..progress import Progress, report
from .batch_fit import fitting_batch_size
from .score_store import ScoreStore
from .scorers import ScoreConfig, score_batch
from .token_limits import count_cut


@dataclass
class ScoreTable:
    """Scores of n samples: [n, layers, width] float16, in the order of sample_ids."""

    sample_ids: list[str]
    scores: torch.Tensor
    gold_logprob: torch.Tensor
    grid: NeuronGrid
    record: dict
    key: str
    computed: int = 0
    reused: int = 0
    notes: list[str] = field(default_factory=list)
    cfg: ScoreConfig | None = None  # the settings with the token limits resolved for this dataset
    truncated_prompts: int = 0  # samples whose prompt was cut (from the left) to max_prompt_tokens
    truncated_answers: int = 0  # samples whose gold answer was cut (at the end) to max_answer_tokens


def score_record(lm: LoadedModel, dataset: DatasetSpec, cfg: ScoreConfig) -> dict:
    """Everything that determines a sample's scores: the cache key is its hash."""
    return {
        "model": lm.spec.name,
        "model_revision": lm.spec.revision,
        "weights": lm.fingerprint,
        "dtype": lm.dtype,
        "quantization": lm.quantization,
        "neuron": neuron_definition(lm.model_type),
        "grid": {"n_layers": lm.grid.n_layers, "width": lm.grid.width},
        "dataset": dataset.name,
        "dataset_content": dataset.fingerprint(),
        "prompt_format": dataset.prompt_format,
        "score": cfg.key_params(),
    }


def _read_the_others(launch: Launch, store: ScoreStore, todo: Sequence, found: dict) -> None:
    """Wait for every process's shards, then read the samples the others scored."""
    launch.wait_for_all()
    found.update(store.load([s.id for s in todo if s.id not in found]))
    missing = [s.id for s in todo if s.id not in found]
    if missing:
        raise CacheError(
            f"{len(missing)} samples scored by other processes are not in the cache at {store.folder} "
            f"(e.g. {missing[0]}); is it on a filesystem every process shares? Run again to resume."
        )


def collect_scores(
    lm: LoadedModel,
    dataset: DatasetSpec,
    sample_ids: Sequence[str],
    cfg: ScoreConfig,
    *,
    batch_size: int | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    launch: Launch | None = None,
) -> ScoreTable:
    """Scores for sample_ids: cached ones are read, missing ones computed and written shard by shard.

    batch_size None: the default, or fewer rows where the memory estimate says the default would not fit.
    Under torchrun (`launch`) each process computes its share of the batches and writes its shards; once all
    have written, each reads the others' shards from the cache, so the cache must be on and writable.
    """
    if not sample_ids:
        raise ParameterError("No samples to score.")
    if launch is not None and not use_cache:
        raise ParameterError(
            "Processes started by torchrun share their scores through the cache: "
            "run without --no-cache (use_cache=False)."
        )
    rows = dataset.by_id()
    unknown = [i for i in sample_ids if i not in rows]
    if unknown:
        raise ParameterError(f"{len(unknown)} sample ids are not in dataset '{dataset.name}' (e.g. {unknown[0]}).")
    cfg = cfg.resolved(lm.tokenizer, dataset)
    assert cfg.max_prompt_tokens is not None and cfg.max_answer_tokens is not None  # resolved() sets both
    cut_prompts, cut_answers = count_cut(
        lm.tokenizer, [rows[i] for i in dict.fromkeys(sample_ids)], cfg.max_prompt_tokens, cfg.max_answer_tokens
    )
    store = ScoreStore(score_record(lm, dataset, cfg))
    notes: list[str] = []
    if batch_size is None and launch is not None:
        batch_size = DEFAULTS.batch_size  # every process must deal out the same batches: no per-process estimate
    elif batch_size is None:
        batch_size, note = fitting_batch_size(lm, cfg)
        notes.extend([note] if note else [])
    found: dict[str, tuple[torch.Tensor, float]] = {}
    if use_cache:
        try:
            store.ensure()
            found = store.load(sample_ids)
        except CacheError as exc:
            if launch is not None:
                raise
            notes.append(str(exc))
            use_cache = False
        notes.extend(store.problems)
    reused = len(found)
    todo = [rows[i] for i in dict.fromkeys(sample_ids) if i not in found]
    # Longest first: batches of like length waste little on padding, and the largest batch (the
    # memory peak, and any out-of-memory error) comes first instead of hours in.
    todo.sort(key=lambda s: cfg.length(lm.tokenizer, s), reverse=True)
    mine = todo
    if launch is not None:
        launch.wait_for_all()  # every process has read the cache before any writes: all share out the same list
        mine = launch.share(todo, batch_size)
    total, done = len(mine), 0
    shared = "" if launch is None else f" (this process's share of {len(todo)})"
    report(progress, 0, total, f"{dataset.name}: {reused} samples from the cache, {total} to compute{shared}")
    while done < total:
        if cancel is not None and cancel.is_set():
            raise Cancelled(
                f"Cancelled after {done} of {total} samples of {dataset.name}; they are cached and reused next time."
            )
        chunk = mine[done : done + batch_size]
        try:
            scores, gold = score_batch(lm, chunk, cfg)
        except RuntimeError as exc:  # torch.OutOfMemoryError is one
            if not is_out_of_memory(exc) or len(chunk) == 1:
                raise
            scores = None
        if scores is None:  # out of the except block: the failed pass's tensors are free to go
            batch_size = max(1, min(batch_size, len(chunk)) // 2)
            notes.append(f"Out of memory: retrying with batch size {batch_size}.")
            release_cached_memory()
            continue
        scores16 = scores.to(torch.float16)
        ids = [s.id for s in chunk]
        for sid, row, g in zip(ids, scores16, gold.tolist()):
            found[sid] = (row, g)
        if use_cache:
            try:
                store.write_shard(ids, scores16, gold)
            except CacheError as exc:
                if launch is not None:
                    raise
                notes.append(str(exc))
                use_cache = False
        done += len(chunk)
        report(progress, done, total, f"{dataset.name}: scored {done}/{total}")
    if launch is not None:
        _read_the_others(launch, store, todo, found)
    ordered = list(sample_ids)
    return ScoreTable(
        sample_ids=ordered,
        scores=torch.stack([found[i][0] for i in ordered]),
        gold_logprob=torch.tensor([found[i][1] for i in ordered]),
        grid=NeuronGrid(lm.grid.n_layers, lm.grid.width),
        record=store.record,
        key=store.key,
        computed=len(todo),
        reused=reused,
        notes=notes,
        cfg=cfg,
        truncated_prompts=cut_prompts,
        truncated_answers=cut_answers,
    )

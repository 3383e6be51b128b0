"""Datasets fetched from the Hugging Face Hub when online (the paper's MetaMathQA, Code25K, Emotion, IMDB).

The loaders are real; tests feed them a local file of the same shape (`data_files`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DatasetError
from ..hub_status import hub_status
from .samples import (
    CHOICE,
    GENERATE_NUMBER,
    LOGLIK,
    NUMBER,
    QA_FORMAT,
    DatasetSpec,
    Sample,
    cut_text,
    qa_prompt,
    register_dataset,
)

EMOTION_LABELS = ("sadness", "joy", "love", "anger", "fear", "surprise")


def metamath_sample(i: int, r: dict) -> Sample | None:
    m = re.search(r"The answer is:?\s*(.+)$", r["response"].strip())
    number = NUMBER.search(m.group(1)) if m else None
    if not number:
        return None
    return Sample(
        f"metamath/{i:06d}", qa_prompt(r["query"]), " " + r["response"].strip(), number.group().replace(",", "")
    )


def code25k_sample(i: int, r: dict) -> Sample | None:
    return Sample(f"code25k/{i:06d}", f"{r['instruction'].strip()}\n", r["output"], r["output"])


def emotion_sample(i: int, r: dict) -> Sample | None:
    choices = tuple(f" {label}" for label in EMOTION_LABELS)
    return Sample(
        f"emotion/{i:06d}", f"Text: {r['text'].strip()}\nEmotion:", choices[r["label"]], choices[r["label"]], choices
    )


def imdb_full_sample(i: int, r: dict) -> Sample | None:
    choices = (" negative", " positive")
    return Sample(
        f"imdb_full/{i:06d}",
        f"Review: {cut_text(r['text'])}\nSentiment:",
        choices[r["label"]],
        choices[r["label"]],
        choices,
    )


def load_hub_rows(
    path: str, split: str, mapper: Callable[[int, dict], Sample | None], data_files: str | None = None
) -> list[Sample]:
    """Rows of a Hub dataset through `datasets`; data_files loads a local file of the same shape instead.

    With the Hub out of reach, a copy in the local `datasets` cache is still used (read in offline mode,
    so no retries); without one the message says so at once."""
    import datasets

    status = hub_status(datasets=True)
    try:
        if data_files:
            ds = datasets.load_dataset("json", data_files=data_files, split="train")
        elif status.reachable:
            ds = datasets.load_dataset(path, split=split)
        else:
            with _cache_only():
                ds = datasets.load_dataset(path, split=split)
    except Exception as exc:  # the datasets library raises many types for network/missing data
        if not data_files and not status.reachable:
            raise DatasetError(
                f"'{path}' is on the Hugging Face Hub, which is out of reach here ({status.why}), "
                "and there is no copy in the local cache."
            ) from exc
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"Could not load '{path}' from the Hugging Face Hub (no network?): {why}") from exc
    out = [mapper(i, r) for i, r in enumerate(ds)]
    return [s for s in out if s is not None]


def cached_copy(path: str) -> bool:
    """Whether a local cache holds this Hub dataset (the `datasets` cache, or the Hub's download cache): a
    look at folder names only, so the Data table can say "yes" offline without reading anything."""
    import datasets
    import huggingface_hub

    hub_folder = f"datasets--{path.replace('/', '--')}"
    return any(
        p.is_dir()
        for p in (
            Path(datasets.config.HF_DATASETS_CACHE) / path.replace("/", "___"),
            Path(huggingface_hub.constants.HF_HUB_CACHE) / hub_folder,
        )
    )


@contextmanager
def _cache_only() -> Iterator[None]:
    """`datasets` and `huggingface_hub` in offline mode for one load: the local cache or nothing, no retries."""
    import datasets
    import huggingface_hub

    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _hub(name: str, path: str, split: str, mapper, kind: str, description: str, rows: int, fmt: str) -> DatasetSpec:
    return DatasetSpec(
        name,
        description,
        f"hub:{path} ({split})",
        kind,
        fmt,
        lambda: load_hub_rows(path, split, mapper),
        hub=True,
        expected_rows=rows,
        cached=lambda: cached_copy(path),
    )


for _spec in (  # noqa: B007
    _hub(
        "metamath",
        "meta-math/MetaMathQA",
        "train",
        metamath_sample,
        GENERATE_NUMBER,
        "MetaMathQA maths (Hub)",
        395000,
        QA_FORMAT,
    ),
    _hub(
        "code25k",
        "flytech/python-codes-25k",
        "train",
        code25k_sample,
        LOGLIK,
        "Python code instructions (Hub)",
        49626,
        "{instruction}\n{output}",
    ),
    _hub(
        "emotion",
        "dair-ai/emotion",
        "test",
        emotion_sample,
        CHOICE,
        "Six-emotion tweets (Hub)",
        2000,
        "Text: {text}\nEmotion: sadness|joy|love|anger|fear|surprise",
    ),
    _hub(
        "imdb_full",
        "stanfordnlp/imdb",
        "test",
        imdb_full_sample,
        CHOICE,
        "Full IMDB test split (Hub)",
        25000,
        "Review: {text}\nSentiment: negative|positive",
    ),
):
    register_dataset(_spec)

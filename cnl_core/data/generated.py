"""Capabilities made by code: small, seeded, offline tasks the built-in 135M model can actually do.

SmolLM2-135M solves almost no GSM8K problem, so zeroing "maths neurons" cannot move its GSM8K
accuracy. These tasks it does solve well above chance, so switching located neurons off can visibly
remove a capability in a class. Every row is made here by a seeded generator (nothing copied); each
question appears once, so splits, few-shot examples and test samples never share a question.
"""

from __future__ import annotations

import random

from .samples import GENERATE_NUMBER, QA_FORMAT, DatasetSpec, Sample, qa_prompt, register_dataset

SEED = 2026
# Measured on SmolLM2-135M (3-shot, 40 problems, seed 1): add1 78%, successor 72%, add2 22%. Two choice tasks
# tried the same way (the larger of two numbers; even or odd) came out at chance (52%, 55%) and were left out.


def _shuffled(items: list, seed: int = SEED) -> list:
    random.Random(seed).shuffle(items)
    return items


def _numeric(prefix: str, items: list[tuple[str, int]]) -> list[Sample]:
    return [Sample(f"{prefix}/{i:05d}", qa_prompt(q), f" {a}", str(a)) for i, (q, a) in enumerate(items)]


def _add1() -> list[Sample]:
    return _numeric("add1", _shuffled([(f"What is {a} + {b}?", a + b) for a in range(10) for b in range(10)]))


def _add2() -> list[Sample]:
    return _numeric("add2", _shuffled([(f"What is {a} + {b}?", a + b) for a in range(10, 100) for b in range(10, 100)]))


def _successor() -> list[Sample]:
    return _numeric("successor", _shuffled([(f"What number comes after {n}?", n + 1) for n in range(1, 1000)]))


def _generated(name: str, description: str, kind: str, fmt: str, loader, rows: int, max_new_tokens: int = 8) -> None:
    register_dataset(
        DatasetSpec(
            name,
            description,
            "generated (seeded, offline)",
            kind,
            fmt,
            loader,
            expected_rows=rows,
            max_new_tokens=max_new_tokens,
        )
    )


_generated("add1", "One-digit addition, every pair once (What is 3 + 5?)", GENERATE_NUMBER, QA_FORMAT, _add1, 100)
_generated("add2", "Two-digit addition (What is 34 + 58?)", GENERATE_NUMBER, QA_FORMAT, _add2, 8100)
_generated("successor", "The next number (What number comes after 41?)", GENERATE_NUMBER, QA_FORMAT, _successor, 999)

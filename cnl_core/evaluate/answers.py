"""Answer extraction for numeric tasks, following lm-evaluation-harness's GSM8K rules.

strict: the number after "#### "; flexible: the last number in the text. Both ignore ",",
"$" and a trailing "." before the exact string comparison.
"""

from __future__ import annotations

import re

STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
STOP_STRINGS = ("Question:", "</s>", "<|im_end|>")


def normalize_number(text: str) -> str:
    text = text.strip().replace(",", "").replace("$", "")
    return text[:-1] if text.endswith(".") else text


def cut_at_stop(text: str) -> str:
    """Generation stops at the first stop string (the next few-shot question)."""
    cut = len(text)
    for stop in STOP_STRINGS:
        pos = text.find(stop)
        if pos != -1:
            cut = min(cut, pos)
    return text[:cut]


def extract_strict(text: str) -> str | None:
    m = STRICT.search(text)
    return normalize_number(m.group(1)) if m else None


def extract_flexible(text: str) -> str | None:
    matches = FLEXIBLE.findall(text)
    if not matches:
        return None
    last = [g for g in matches[-1] if g][0]
    return normalize_number(last)


def is_correct(extracted: str | None, target: str) -> bool:
    return extracted is not None and extracted == normalize_number(target)

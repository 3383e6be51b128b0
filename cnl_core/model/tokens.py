"""Token ids of texts, tokenized once per tokenizer and text.

Why: a locate run tokenizes every sample three times: to count what the token limits cut, to sort the
samples by length, and to encode each batch. On a GPU the last one sits between two passes, with the GPU
waiting: 3.5-4.7 ms for a batch of 8 GSM8K samples, 5-7% of a 7B model's pass on an H100 (bench/RESULTS.md).
With this memo only the first tokenizes, as long as a run's texts fit its bound (MEMO_TOKENS ids per
tokenizer; the least recently used texts go first). It is keyed by the tokenizer object and its vocabulary
size, so a tokenizer given new tokens starts afresh; a change that keeps the size (a new normalizer, another
`add_bos_token`) is not seen: call `forget(tokenizer)` after one.
"""

from __future__ import annotations

import threading
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # transformers is imported lazily (start-up time); the type is for mypy only
    from transformers import PreTrainedTokenizerBase

MEMO_TOKENS = 2_000_000  # ids kept per tokenizer (8 bytes each): some thousands of few-shot prompts

_memos: weakref.WeakKeyDictionary[object, _Memo] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class _Memo(OrderedDict):
    tokens = 0  # ids held, for the bound


def token_ids(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], add_special_tokens: bool) -> list[list[int]]:
    """The tokenizer's input ids of each text (as `tokenizer(texts, add_special_tokens=...)`), memoized."""
    key = (add_special_tokens, len(tokenizer) if hasattr(tokenizer, "__len__") else None)
    with _lock:
        try:
            memo = _memos.setdefault(tokenizer, _Memo())
        except TypeError:  # a tokenizer that cannot be weakly referenced: no memo
            memo = _Memo()
        found = {}
        for t in texts:
            if (key, t) in memo:
                memo.move_to_end((key, t))
                found[t] = memo[key, t]
    missing = [t for t in dict.fromkeys(texts) if t not in found]
    if missing:
        ids = tokenizer(missing, add_special_tokens=add_special_tokens)["input_ids"]
        fresh = {t: array("q", i) for t, i in zip(missing, ids)}
        found.update(fresh)
        with _lock:
            for t, i in fresh.items():
                if (key, t) not in memo:  # another thread may have stored it meanwhile
                    memo[key, t] = i
                    memo.tokens += len(i)
            while memo.tokens > MEMO_TOKENS and memo:
                memo.tokens -= len(memo.popitem(last=False)[1])
    return [found[t].tolist() for t in texts]


def decoded(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> str:
    """The text of one sequence of ids (transformers types decode() str | list[str], the latter for batches)."""
    return cast(str, tokenizer.decode(list(ids)))


def forget(tokenizer: PreTrainedTokenizerBase) -> None:
    """Drop what the memo holds for this tokenizer (after changing how it tokenizes)."""
    with _lock:
        _memos.pop(tokenizer, None)

"""Greedy decoding steps for a batch of rows whose prompts have run.

- a row that emits EOS or a stop string leaves the batch, its cache, its neuron factors (the edit) and
  every follower (the shared contexts' row counts);
- on a CPU, float32 linears of 2-8 rows run weight-first, a kernel MKL runs far faster there;
- once only a few rows are left, each step also checks a few tokens guessed from the row's own text
  (prompt-lookup drafts): the tokens that followed the latest earlier occurrence of its last three.

Why the guesses: with few rows left, a CPU step reads every weight for one token per row (41 ms for
SmolLM2-135M at one row); checking six tokens in the same pass costs little more. A small model's long
answers repeat phrases of the few-shot examples and of themselves ("<<5*2=10>>10", "#### "), so the guess
is often what greedy decoding would pick. A guess is kept only where it equals the model's greedy token
at its place, so the text is the greedy text (to float rounding: the checked tokens are scored in one
pass instead of one at a time). Rejected guesses stay in the cache, hidden by the attention mask, and
positions carry on from the last kept token. On GSM8K's rambling answers this halves the steps.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..errors import Cancelled
from .hooks import NO_EDIT, Edit, edited
from .loading import LoadedModel

if TYPE_CHECKING:  # transformers is imported lazily (start-up time); the type is for mypy only
    from transformers import PreTrainedTokenizerBase

DRAFT_TOKENS = 5  # guessed tokens checked per step
DRAFT_ROWS = 4  # guess only when at most this many rows are left: with more, a CPU step is compute-bound
NGRAM = 3  # the last tokens looked up (fewer where they never occurred before)


def decode_loop(
    lm: LoadedModel,
    cache,
    mask: torch.Tensor,
    positions: torch.Tensor,
    first: torch.Tensor,
    max_new_tokens: int,
    stop_strings: Sequence[str],
    followers: list,
    histories: list[list[int]] | None = None,
    edit: Edit = NO_EDIT,
    cancel: threading.Event | None = None,
) -> list[list[int]]:
    """New tokens per row, from each row's first token, up to and including the one that ended it.

    `mask` [rows, cache columns] marks the real columns; `positions` [rows, 1] is the position of each row's
    next token. With `histories` (each row's prompt token ids) few remaining rows check guessed tokens; the
    cache must then be a plain growing one (a sliding window would count rejected guesses). Every step runs under
    `edit` at every position: each token of a step predicts an answer token (the guesses too). A set `cancel`
    stops the loop at the next step (Cancelled).
    """
    model, device = lm.model, lm.input_device
    edit = edit.at(None)
    stops = StopCheck(lm.tokenizer, model, stop_strings)
    active = list(range(len(first)))
    generated: list[list[int]] = [[] for _ in range(len(first))]
    pending = [[t] for t in first.tolist()]
    with small_batch_linears(model, device):
        while True:
            keep = [j for j, row in enumerate(active) if _take(generated[row], pending[j], stops, max_new_tokens)]
            if not keep:
                return generated
            if cancel is not None and cancel.is_set():
                raise Cancelled("Cancelled while answering.")
            nxt = [pending[j][-1] for j in keep]
            if len(keep) < len(active):  # finished rows leave the batch and the cache
                idx = torch.tensor(keep, device=device)
                cache.batch_select_indices(idx)
                mask, positions, edit = mask[idx], positions[idx], edit.keep(idx)
                for f in followers:
                    f.keep(idx)
                active = [active[j] for j in keep]
            drafts = (
                [_draft(histories[row] + generated[row]) for row in active]
                if histories is not None and len(active) <= DRAFT_ROWS
                else [[] for _ in active]
            )
            k = max(map(len, drafts))
            ids = torch.tensor([[t, *d, *[t] * (k - len(d))] for t, d in zip(nxt, drafts)], device=device)
            mask = torch.cat([mask, mask.new_ones((len(active), 1 + k))], dim=1)
            with edited(lm, edit):
                out = model(
                    input_ids=ids,
                    attention_mask=mask,
                    cache=cache,
                    use_cache=True,
                    position_ids=positions + torch.arange(1 + k, device=device),
                )
            cache, greedy = out.cache, out.logits.argmax(-1).tolist()
            pending = []
            for j, (d, y) in enumerate(zip(drafts, greedy)):
                kept = 0
                while kept < len(d) and d[kept] == y[kept]:
                    kept += 1
                pending.append(y[: kept + 1])
                if k > kept:  # rejected guesses (and padding) stay in the cache, masked
                    mask[j, mask.shape[1] - (k - kept) :] = 0
            positions = positions + torch.tensor([[len(p)] for p in pending], device=device)


def _take(generated: list[int], new: list[int], stops: StopCheck, max_new_tokens: int) -> bool:
    """Append new tokens one at a time; False once the row has ended (EOS, a stop string, the length limit)."""
    for t in new:
        generated.append(t)
        if stops.done(generated) or len(generated) >= max_new_tokens:
            return False
    return True


def _draft(tokens: list[int]) -> list[int]:
    """The tokens that followed the latest earlier occurrence of the last NGRAM tokens (or of fewer)."""
    for n in range(NGRAM, 0, -1):
        if len(tokens) <= n:
            continue
        tail = tokens[-n:]
        for i in range(len(tokens) - n - 1, -1, -1):
            if tokens[i : i + n] == tail:
                return tokens[i + n : i + n + DRAFT_TOKENS]
    return []


@contextmanager
def small_batch_linears(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """On a CPU, compute float32 linears of 2-8 rows as weight @ x.T while decoding.

    Measured with MKL on a 2-core AVX-512 CPU: `x @ W.T` for 2-8 rows takes 1.5-3x as long as one row
    (the LM head of SmolLM2: 11-22 ms against 7), while `W @ x.T` reads the weight once, in 3-6 ms.
    One row keeps the usual kernel. Restored on exit; the caller holds the model's lock.
    """
    linears = [
        m
        for m in model.modules()
        if device.type == "cpu"
        and type(m) is torch.nn.Linear
        and m.weight.dtype == torch.float32
        and "forward" not in vars(m)
    ]  # leave accelerate's wrappers be
    for m in linears:
        vars(m)["forward"] = partial(_weight_first_linear, m)  # an instance attribute, as `m.forward = ...` sets
    try:
        yield
    finally:
        for m in linears:
            del m.forward


def _weight_first_linear(m: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // x.shape[-1]
    if not 1 < rows <= 8:
        return F.linear(x, m.weight, m.bias)
    y = (m.weight @ x.reshape(rows, -1).T).T.contiguous().reshape(*x.shape[:-1], m.weight.shape[0])
    return y if m.bias is None else y + m.bias


class StopCheck:
    """EOS (the tokenizer's or the generation config's) or a stop string in the last few tokens."""

    def __init__(self, tok: PreTrainedTokenizerBase, model: torch.nn.Module, stop_strings: Sequence[str]) -> None:
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = eos if isinstance(eos, (list, tuple)) else [eos]
        self.eos = {e for e in [*eos, tok.eos_token_id] if e is not None}
        self.tok, self.stop_strings = tok, tuple(stop_strings)
        # A stop string spans at most as many tokens as it has characters.
        self.window = max((len(s) for s in self.stop_strings), default=0)

    def done(self, ids: list[int]) -> bool:
        if ids[-1] in self.eos:
            return True
        if not self.stop_strings:
            return False
        text = self.tok.decode(ids[-self.window :], skip_special_tokens=False)
        return any(s in text for s in self.stop_strings)

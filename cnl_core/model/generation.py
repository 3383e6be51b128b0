"""Batched greedy generation with a shared-prefix KV cache, for few-shot evaluation.

Why not `model.generate`: a batch there runs until its longest answer ends, so short answers pay
for the long ones, and it knows nothing of the few-shot prefix that every prompt shares. Here:

- each prompt is tokenized whole, exactly as a one-prompt-at-a-time loop would (tokenizing the
  prefix apart changes the tokens where it meets the question: "\\n\\n" + "Question" merges
  differently, and the answers then differ);
- `prompt_pass` (for `greedy_generate`): the longest token prefix common to the batch runs once, batch 1
  (where the cache can be cut by hand: not under a sliding window);
  the tails run after it, on a CPU one by one when their padding would cost more than the extra passes
  (a padded position costs as much as a real one there), otherwise in one left-padded pass (always on
  a GPU); what is left is a `Prompted`: the shared context's keys and values once, and each row's own.
  Evaluation gets its `Prompted` from the gold-answer pass instead (forward.teacher_forced_logprob), so
  its prompts run once;
- `decode` puts the rows of one or several `Prompted` (the same questions under several interventions,
  each row with its own neurons changed) into one batch: where the model's attention allows, each
  shared context is read once per step for all its rows (context_attention.py), else each row gets a copy;
  the steps themselves are decoding.py's.

On a CPU the prompt pass is compute-bound, so sharing the prefix is what makes batching pay; on a
GPU the decoding steps are memory-bound, so the batch itself does.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch

from . import context_attention
from .decoding import decode_loop, small_batch_linears
from .forward import last_logits_only, prefix_cache
from .hooks import Edit, Intervention, edited
from .kv_cache import Prompted, copied_context_batch, cut_by_hand, own_tokens_batch, plain_dynamic
from .loading import LoadedModel
from .memory import MARGIN, free_bytes_for, kv_bytes_per_token
from .positions import last_positions
from .tokens import token_ids


def prompts_context_length(rows: Sequence[Sequence[int]]) -> int:
    """The context prompts share, given as token ids: the tokens common to the start of every row, leaving each
    row at least one token of its own (its last, whose logits give the first answer token). The same columns as
    forward.batch_context_length finds in a teacher-forced batch of these prompts, without its floor."""
    first, n = rows[0], min(map(len, rows)) - 1
    for i in range(n):
        if any(r[i] != first[i] for r in rows[1:]):
            return i
    return max(n, 0)


def greedy_generate(
    lm: LoadedModel,
    prompts: Sequence[str],
    max_new_tokens: int,
    stop_strings: Sequence[str],
    max_context_tokens: int = 2048,
    iv: Intervention | None = None,
) -> list[list[int]]:
    """New token ids per prompt under `iv` (None: unmodified), up to and including the token that completed EOS or
    a stop string."""
    rows = [ids[-max_context_tokens:] for ids in token_ids(lm.tokenizer, prompts, add_special_tokens=True)]
    with lm.lock, torch.no_grad():
        edit = Edit.of(lm, iv)
        ready = prompt_pass(lm, rows, edit)
        if isinstance(ready, Prompted):
            return decode(lm, [ready], max_new_tokens, stop_strings, [iv])[0]
        return decode_loop(lm, *ready, max_new_tokens, stop_strings, [], edit=edit)


def prompt_pass(
    lm: LoadedModel, rows: list[list[int]], edit: Edit
) -> Prompted | tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the prompts (token ids) under `edit`, whose answer position is each prompt's last: a `Prompted`, or, for
    caches that cannot be cut by hand (a sliding window), the ready batch (cache, mask, next positions, first
    tokens).

    A shared context is run apart only where the cache can be cut by hand: the tails after it are left-padded, so
    a short tail's pads sit between the context and its tokens, and a sliding window counts them (it would hide
    real context tokens that `model.generate`, padding before the whole prompt, keeps in view). Elsewhere every
    row runs whole, left-padded as `generate` pads (tests/unit/test_generation_reference.py)."""
    plen = prompts_context_length(rows) if len(rows) > 1 and cut_by_hand(lm.model.config) else 0
    tails = [r[plen:] for r in rows]
    keep_last = last_logits_only(lm)
    with small_batch_linears(lm.model, lm.input_device):
        cache = prefix_cache(lm, rows[0][:plen], edit) if plen else None
        context = [(layer.keys, layer.values) for layer in cache.layers] if cache is not None else None
        if _one_by_one(cache, lm.input_device, tails):
            own, first = _tails_one_by_one(lm, cache, tails, plen, keep_last, edit)
            return Prompted(context, own, first, rows)
        cache, mask, last = _tails_padded(lm, cache, tails, plen, keep_last, edit)
    first = last.argmax(-1)
    if not plain_dynamic(cache):
        return cache, mask, mask.sum(-1, keepdim=True), first
    width = mask.shape[1]
    own = [
        [(layer.keys[b, :, width - len(t) :], layer.values[b, :, width - len(t) :]) for layer in cache.layers]
        for b, t in enumerate(tails)
    ]
    return Prompted(context, own, first.tolist(), rows)


def decode(
    lm: LoadedModel,
    parts: Sequence[Prompted],
    max_new_tokens: int,
    stop_strings: Sequence[str],
    ivs: Sequence[Intervention | None] | None = None,
    cancel: threading.Event | None = None,
) -> list[list[list[int]]]:
    """Greedy new tokens for every row of every part, decoded as one batch: per part, per row.

    With `ivs`, part g's rows run under ivs[g] (None: unmodified) at every step, at every position (each token
    of a step predicts an answer token). Parts decode together where the model reads shared contexts once
    (context_attention.py); elsewhere each row would carry a copy of its context, so parts decode one after
    another. A set `cancel` stops at the next step. The caller holds the model's lock.
    """
    parts, ivs = list(parts), list(ivs or [None] * len(parts))
    sizes, together = [len(p.own) for p in parts], context_attention.eligible(lm.model)
    batches = _decode_batches(sizes, together)
    if len(batches) > 1:
        return [rows for b in batches for rows in decode(lm, parts[b], max_new_tokens, stop_strings, ivs[b], cancel)]
    positions = torch.tensor([q for p in parts for q in p.next_positions()], device=lm.input_device)[:, None]
    first = torch.tensor([t for p in parts for t in p.first], device=lm.input_device)
    histories = [ids for p in parts for ids in p.ids]
    edit = Edit.rows(lm, ivs, sizes)
    with torch.no_grad():
        if together:
            cache, mask = own_tokens_batch(parts, max_new_tokens)
            shared = context_attention.GroupContexts(sizes, [p.context for p in parts])
            with context_attention.shared_context_decoding(lm.model, shared):
                flat = decode_loop(
                    lm, cache, mask, positions, first, max_new_tokens, stop_strings, [shared], histories, edit, cancel
                )
        else:
            cache, mask = copied_context_batch(parts, max_new_tokens)
            flat = decode_loop(
                lm, cache, mask, positions, first, max_new_tokens, stop_strings, [], histories, edit, cancel
            )
    out, start = [], 0
    for n in sizes:
        out.append(flat[start : start + n])
        start += n
    return out


# Rows decoded in one batch at most, where parts can share a batch: beyond this a CPU gains nothing (its steps
# are compute-bound from a few dozen rows) and the batch's own keys and values grow with every row.
MAX_DECODE_ROWS = 64


def parts_that_fit(
    lm: LoadedModel, rows: int, context_tokens: int, own_tokens: int, answer_tokens: int, max_new_tokens: int
) -> int:
    """How many parts of `rows` rows each (conditions over one batch of questions) can be kept and decoded at once:
    MAX_DECODE_ROWS rows at most, and as many as their keys and values fit in the free memory.

    What each holds, in tokens of keys and values: a kept part its context once and each row's own prompt;
    decoding copies each row's prompt and adds its new tokens (and the context per row, where contexts are
    copied); a gold-answer pass, run while the earlier parts are kept, holds the context per row with the
    prompt and the answer. k parts need k kept + the larger of one gold pass and k decodings. An estimate: it
    leaves out temporaries (the gold pass's logits, a step's activations), which the 10% margin covers for
    most models. Why: for Llama-2-7B every token keeps 0.5 MB, so 64 GSM8K rows of 400 tokens would want
    13 GB beside the weights. At least one part, whatever the memory says."""
    per_token = kv_bytes_per_token(lm.model.config, torch.finfo(lm.model.dtype).bits // 8)
    copied = not context_attention.eligible(lm.model)
    kept = (context_tokens + rows * own_tokens) * per_token
    decoding = rows * (own_tokens + max_new_tokens + (context_tokens if copied else 0)) * per_token
    gold = rows * (context_tokens + own_tokens + answer_tokens) * per_token
    free = int(free_bytes_for(lm.model) * MARGIN)
    fit = min((free - gold) // max(1, kept), free // max(1, kept + decoding))
    return max(1, min(MAX_DECODE_ROWS // max(1, rows), fit))


def _decode_batches(sizes: list[int], together: bool) -> list[slice]:
    """Consecutive parts that decode as one batch: as many as fit MAX_DECODE_ROWS where contexts are read once
    (`together`), else one part each (every row would carry a copy of its context)."""
    out, start, rows = [], 0, 0
    for i, n in enumerate(sizes):
        if i > start and (not together or rows + n > MAX_DECODE_ROWS):
            out.append(slice(start, i))
            start, rows = i, 0
        rows += n
    out.append(slice(start, len(sizes)))
    return out


def _tails_padded(lm: LoadedModel, cache, tails: list[list[int]], plen: int, keep_last: dict, edit: Edit):
    """All tails in one left-padded pass, best where compute is parallel and padding nearly free (GPU):
    (cache, mask over context and tails, last logits). The last column is every row's last prompt token."""
    batch, width, device = len(tails), max(map(len, tails)), lm.input_device
    ids = torch.full((batch, width), lm.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((batch, plen + width), dtype=torch.long, device=device)
    mask[:, :plen] = 1
    for b, t in enumerate(tails):
        ids[b, width - len(t) :] = torch.tensor(t)
        mask[b, plen + width - len(t) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, plen:]
    if cache is not None:
        cache.batch_repeat_interleave(batch)
    with edited(lm, edit.at(last_positions(1, width, device))):
        out = lm.model(
            input_ids=ids.to(device),
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            **keep_last,
        )
    return out.cache, mask, out.logits[:, -1]


def _tails_one_by_one(lm: LoadedModel, cache, tails: list[list[int]], plen: int, keep_last: dict, edit: Edit):
    """Each tail alone after the shared context: (per row, per layer, its own K and V; first tokens).

    On a CPU the prompt pass is compute-bound, so a padded position costs as much as a real one;
    prompts of mixed length waste up to half the pass on pads. Batch-1 passes waste nothing.
    """
    own, first = [], []
    for t in tails:
        ids = torch.tensor([t], dtype=torch.long, device=lm.input_device)
        with edited(lm, edit.at(last_positions(1, len(t), lm.input_device))):
            out = lm.model(input_ids=ids, cache=cache, use_cache=True, **keep_last)
        first.append(int(out.logits[0, -1].argmax()))
        own.append([(layer.keys[0, :, plen:], layer.values[0, :, plen:]) for layer in cache.layers])
        for layer in cache.layers:  # back to the context for the next tail
            layer.keys, layer.values = layer.keys[..., :plen, :], layer.values[..., :plen, :]
    return own, first


# On a 2-core CPU a pass of SmolLM2-135M costs about 50 padded tokens' worth of work before its first
# token (30 layers of Python and kernel launches): short tails are cheaper padded into one pass.
PASS_COST_IN_TOKENS = 50


def _one_by_one(cache, device: torch.device, tails: list[list[int]]) -> bool:
    """Tails one by one where padding costs more than the extra passes, and the cache can be stitched.

    On a CPU a padded position costs as much as a real one: GSM8K tails of mixed length (hundreds of
    tokens) waste more on padding than a pass costs. Short tails (a one-line question) do the opposite.
    """
    if cache is None or device.type != "cpu" or not plain_dynamic(cache):
        return False
    pads = len(tails) * max(map(len, tails)) - sum(map(len, tails))
    return pads > PASS_COST_IN_TOKENS * (len(tails) - 1)

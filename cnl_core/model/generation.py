"""Batched greedy generation with a shared-prefix KV cache, for few-shot evaluation.

Why not `model.generate`: a batch there runs until its longest answer ends, so short answers pay
for the long ones, and it knows nothing of the few-shot prefix that every prompt shares. Here:

- each prompt is tokenized whole, exactly as a one-prompt-at-a-time loop would (tokenizing the
  prefix apart changes the tokens where it meets the question: "\\n\\n" + "Question" merges
  differently, and the answers then differ);
- the longest token prefix common to the batch runs once, batch 1, and its KV cache is shared;
- the tails run after it, on a CPU one by one when their padding would cost more than the extra passes
  (a padded position costs as much as a real one there), otherwise in one left-padded pass (always on
  a GPU); either way the batch cache has the pads between prefix and tail, where the attention mask
  hides them and explicit position ids continue across them;
- each decoding step runs only the rows still going: a row that emits EOS or a stop string leaves
  the batch and the cache, and each step writes into KV space reserved up front instead of
  copying the whole cache;
- on a CPU, float32 linears of 2-8 rows run weight-first, a kernel MKL runs far faster there.

On a CPU the prompt pass is compute-bound, so sharing the prefix is what makes batching pay; on a
GPU the decoding steps are memory-bound, so the batch itself does.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer

from .forward import last_logits_only, prefix_cache
from .hooks import InterventionHandle
from .loading import LoadedModel


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens common to the start of every row, leaving each row at least one token of its own."""
    first, n = rows[0], min(map(len, rows)) - 1
    for i in range(n):
        if any(r[i] != first[i] for r in rows[1:]):
            return i
    return max(n, 0)


def greedy_generate(
    lm: LoadedModel, prompts: Sequence[str], max_new_tokens: int, stop_strings: Sequence[str],
    max_context_tokens: int = 2048, handle: InterventionHandle | None = None,
) -> list[list[int]]:
    """New token ids per prompt, up to and including the token that completed EOS or a stop string."""
    tok, model, device = lm.tokenizer, lm.model, lm.input_device
    rows = [tok(p)["input_ids"][-max_context_tokens:] for p in prompts]
    plen = shared_prefix_length(rows) if len(rows) > 1 else 0
    tails = [r[plen:] for r in rows]
    width = max(map(len, tails))
    mask = torch.zeros((len(rows), plen + width), dtype=torch.long, device=device)
    mask[:, :plen] = 1
    for b, t in enumerate(tails):
        mask[b, plen + width - len(t):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    keep_last = last_logits_only(lm)
    stops = _StopCheck(tok, model, stop_strings)

    with lm.lock, torch.no_grad(), _small_batch_linears(model, device):
        cache = prefix_cache(lm, rows[0][:plen], handle) if plen else None
        if _one_by_one(cache, device, tails):
            cache, last = _prefill_tails_one_by_one(lm, cache, tails, plen, width, keep_last)
        else:
            cache, last = _prefill_tails_padded(lm, cache, tails, mask, positions[:, plen:], keep_last)
        if _plain_dynamic(cache):
            _reserve(cache, max_new_tokens)
        nxt = last.argmax(-1)
        active, generated = list(range(len(rows))), [[] for _ in rows]
        for step in range(max_new_tokens):
            keep = []
            for j, (row, t) in enumerate(zip(active, nxt.tolist())):
                generated[row].append(t)
                if not stops.done(generated[row]):
                    keep.append(j)
            if not keep or step == max_new_tokens - 1:
                break
            if len(keep) < len(active):  # finished rows leave the batch and the cache
                idx = torch.tensor(keep, device=device)
                cache.batch_select_indices(idx)
                mask, positions, nxt = mask[idx], positions[idx], nxt[idx]
                active = [active[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            positions = positions[:, -1:] + 1
            out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
            cache, nxt = out.cache, out.logits[:, -1].argmax(-1)
    return generated


def _prefill_tails_padded(lm: LoadedModel, cache, tails: list[list[int]], mask: torch.Tensor,
                          positions: torch.Tensor, keep_last: dict):
    """All tails in one left-padded pass: best where compute is parallel and padding nearly free (GPU)."""
    batch, width = len(tails), positions.shape[1]
    ids = torch.full((batch, width), lm.tokenizer.pad_token_id, dtype=torch.long)
    for b, t in enumerate(tails):
        ids[b, width - len(t):] = torch.tensor(t)
    if cache is not None:
        cache.batch_repeat_interleave(batch)
    out = lm.model(input_ids=ids.to(lm.input_device), attention_mask=mask, position_ids=positions, cache=cache,
                   use_cache=True, **keep_last)
    return out.cache, out.logits[:, -1]


def _prefill_tails_one_by_one(lm: LoadedModel, cache, tails: list[list[int]], plen: int, width: int, keep_last: dict):
    """Each tail alone after the prefix, then their KV left-padded into one batch cache.

    On a CPU the prompt pass is compute-bound, so a padded position costs as much as a real one;
    prompts of mixed length waste up to half the pass on pads. Batch-1 passes waste nothing.
    """
    parts, last = [], []
    for t in tails:
        ids = torch.tensor([t], dtype=torch.long, device=lm.input_device)
        out = lm.model(input_ids=ids, cache=cache, use_cache=True, **keep_last)
        last.append(out.logits[:, -1])
        parts.append([(layer.keys[..., plen:, :], layer.values[..., plen:, :]) for layer in cache.layers])
        for layer in cache.layers:  # back to the prefix for the next tail
            layer.keys, layer.values = layer.keys[..., :plen, :], layer.values[..., :plen, :]
    for i, layer in enumerate(cache.layers):
        layer.keys = _left_padded([p[i][0] for p in parts], layer.keys, width)
        layer.values = _left_padded([p[i][1] for p in parts], layer.values, width)
    return cache, torch.cat(last)


def _left_padded(tails: list[torch.Tensor], prefix: torch.Tensor, width: int) -> torch.Tensor:
    """[batch, heads, prefix + width, dim]: the shared prefix, zeros, then each row's tail."""
    heads, plen, dim = prefix.shape[1:]
    out = prefix.new_zeros((len(tails), heads, plen + width, dim))
    out[:, :, :plen] = prefix
    for b, t in enumerate(tails):
        out[b, :, plen + width - t.shape[-2]:] = t[0]
    return out


class _ReservedLayer(DynamicLayer):
    """A growing KV layer that writes each step into space reserved up front.

    DynamicLayer concatenates on every step, copying the whole cache: batch x heads x context x dim,
    twice per layer. For SmolLM2-135M at batch 8 and 600 tokens that is 220 MB a step (about 5% of a
    CPU decoding step); for a 7B model of Llama-2's shape with 1,000 tokens, about 4 GB a step.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, extra: int):
        super().__init__()
        length = keys.shape[-2]
        self._k = keys.new_empty((*keys.shape[:-2], length + extra, keys.shape[-1]))
        self._v = values.new_empty((*values.shape[:-2], length + extra, values.shape[-1]))
        self._k[..., :length, :], self._v[..., :length, :] = keys, values
        self.device, self.is_initialized, self._length = keys.device, True, length
        self._expose()

    def _expose(self) -> None:
        self.keys, self.values = self._k[..., : self._length, :], self._v[..., : self._length, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n = key_states.shape[-2]
        if self._length + n > self._k.shape[-2]:  # out of reserved space: grow like DynamicLayer
            self._k = torch.cat([self._k[..., : self._length, :], key_states], dim=-2)
            self._v = torch.cat([self._v[..., : self._length, :], value_states], dim=-2)
        else:
            self._k[..., self._length : self._length + n, :] = key_states
            self._v[..., self._length : self._length + n, :] = value_states
        self._length += n
        self._expose()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._k, self._v = self._k[indices], self._v[indices]
        self._expose()


def _reserve(cache, extra: int) -> None:
    """Swap each layer of a plain dynamic cache for one with room for `extra` more tokens."""
    cache.layers = [_ReservedLayer(layer.keys, layer.values, extra) for layer in cache.layers]


@contextmanager
def _small_batch_linears(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """On a CPU, compute float32 linears of 2-8 rows as weight @ x.T while decoding.

    Measured with MKL on a 2-core AVX-512 CPU: `x @ W.T` for 2-8 rows takes 1.5-3x as long as one row
    (the LM head of SmolLM2: 11-22 ms against 7), while `W @ x.T` reads the weight once, in 3-6 ms.
    One row keeps the usual kernel. Restored on exit; the caller holds the model's lock.
    """
    linears = [m for m in model.modules() if device.type == "cpu" and type(m) is torch.nn.Linear
               and m.weight.dtype == torch.float32 and "forward" not in vars(m)]  # leave accelerate's wrappers be
    for m in linears:
        m.forward = partial(_weight_first_linear, m)
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


# On a 2-core CPU a pass of SmolLM2-135M costs about 50 padded tokens' worth of work before its first
# token (30 layers of Python and kernel launches): short tails are cheaper padded into one pass.
PASS_COST_IN_TOKENS = 50


def _one_by_one(cache, device: torch.device, tails: list[list[int]]) -> bool:
    """Tails one by one where padding costs more than the extra passes, and the cache can be stitched.

    On a CPU a padded position costs as much as a real one: GSM8K tails of mixed length (hundreds of
    tokens) waste more on padding than a pass costs. Short tails (a one-line question) do the opposite.
    """
    if cache is None or device.type != "cpu" or not _plain_dynamic(cache):
        return False
    pads = len(tails) * max(map(len, tails)) - sum(map(len, tails))
    return pads > PASS_COST_IN_TOKENS * (len(tails) - 1)


def _plain_dynamic(cache) -> bool:
    """Only plain growing caches can be cut and stitched by hand (a sliding window drops old tokens)."""
    return all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None]))


class _StopCheck:
    """EOS (the tokenizer's or the generation config's) or a stop string in the last few tokens."""

    def __init__(self, tok, model, stop_strings: Sequence[str]):
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
        text = self.tok.decode(ids[-self.window:], skip_special_tokens=False)
        return any(s in text for s in self.stop_strings)

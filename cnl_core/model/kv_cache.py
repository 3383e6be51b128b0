"""The KV cache a batch of rows decodes from, put together from the parts prompt passes leave behind.

A prompt pass leaves a `Prompted`: the keys and values of the context every row shares (once), and
each row's own prompt tokens after it. Rows from several prompt passes (the same questions under
several interventions) can decode as one batch. Two layouts:

- `own_tokens_batch`: the cache holds each row's own tokens only, and the shared contexts stay apart
  (read once per step by context_attention.py): used where that attention applies;
- `copied_context_batch`: every row gets a copy of its context before its own tokens, for any model
  whose cache layers are plain.

Either way rows are left-padded to one width: the attention mask hides the pads and explicit position
ids carry on from each row's last prompt token, so every row computes what it would alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PretrainedConfig
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

KV = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Prompted:
    """Rows whose prompts have run, ready for greedy decoding."""

    context: list[KV] | None  # per layer, K and V [1, kv heads, context, dim] of the context every row shares
    own: list[list[KV]]  # per row, per layer, K and V [kv heads, tokens, dim] of the row's prompt after the context
    first: list[int]  # per row, the first new token (greedy choice after its last prompt token)
    ids: list[list[int]]  # per row, the prompt's token ids (context included)

    @property
    def context_length(self) -> int:
        return 0 if self.context is None else int(self.context[0][0].shape[-2])

    def next_positions(self) -> list[int]:
        return [self.context_length + int(row[0][0].shape[-2]) for row in self.own]


class ReservedLayer(DynamicLayer):
    """A growing KV layer that writes each step into space reserved up front.

    DynamicLayer concatenates on every step, copying the whole cache: batch x heads x context x dim,
    twice per layer. For SmolLM2-135M at batch 8 and 600 tokens that is 220 MB a step (about 5% of a
    CPU decoding step); for a 7B model of Llama-2's shape with 1,000 tokens, about 4 GB a step.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        """Over buffers [batch, heads, capacity, dim] whose first `length` positions are filled."""
        super().__init__()
        self._k, self._v = keys, values
        self.device, self.is_initialized, self._length = keys.device, True, length
        self._expose()

    def _expose(self) -> None:
        self.keys, self.values = self._k[..., : self._length, :], self._v[..., : self._length, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n = key_states.shape[-2]
        if self._length + n > self._k.shape[-2]:  # out of reserved space (checked guesses use some): double it
            self._k, self._v = (
                _grown(t, self._length, max(2 * t.shape[-2], self._length + n)) for t in (self._k, self._v)
            )
        self._k[..., self._length : self._length + n, :] = key_states
        self._v[..., self._length : self._length + n, :] = value_states
        self._length += n
        self._expose()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        indices = indices.to(self._k.device)  # layers may sit on different GPUs (device_map="auto")
        self._k, self._v = self._k[indices], self._v[indices]
        self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("A reserved decoding cache is built for its batch; it is not repeated.")

    def crop(self, max_length: int) -> None:
        raise NotImplementedError("A reserved decoding cache is not cropped (rejected guesses are masked instead).")


def _grown(buffer: torch.Tensor, length: int, capacity: int) -> torch.Tensor:
    out = buffer.new_empty((*buffer.shape[:-2], capacity, buffer.shape[-1]))
    out[..., :length, :] = buffer[..., :length, :]
    return out


def plain_dynamic(cache: Cache | None) -> bool:
    """Only plain growing caches can be cut and stitched by hand (a sliding window drops old tokens)."""
    return all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None]))


def cut_by_hand(config: PretrainedConfig) -> bool:
    """Whether this model's cache is made of plain growing layers (none with a sliding window), which can be cut,
    stitched and padded in the middle by hand."""
    return plain_dynamic(DynamicCache(config=config))


def own_tokens_batch(parts: list[Prompted], extra: int) -> tuple[DynamicCache, torch.Tensor]:
    """(cache of the rows' own tokens, left-padded; its mask [rows, width])."""
    rows = [row for p in parts for row in p.own]
    return _left_padded_cache(rows, extra)


def copied_context_batch(parts: list[Prompted], extra: int) -> tuple[DynamicCache, torch.Tensor]:
    """(cache of each row's context and own tokens, left-padded; its mask [rows, width])."""
    rows = []
    for p in parts:
        for row in p.own:
            rows.append(
                row
                if p.context is None
                else [
                    (torch.cat([ck[0], k], -2), torch.cat([cv[0], v], -2)) for (ck, cv), (k, v) in zip(p.context, row)
                ]
            )
    return _left_padded_cache(rows, extra)


def _left_padded_cache(rows: list[list[KV]], extra: int) -> tuple[DynamicCache, torch.Tensor]:
    """Rows right-aligned in buffers with room for `extra` more tokens, written once (no padded copy first)."""
    lengths = [row[0][0].shape[-2] for row in rows]
    width = max(lengths)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=rows[0][0][0].device)
    for b, n in enumerate(lengths):
        mask[b, width - n :] = 1
    cache = DynamicCache()
    cache.layers = []
    for layer in range(len(rows[0])):
        k0, v0 = rows[0][layer]
        k = k0.new_zeros((len(rows), k0.shape[0], width + extra, k0.shape[-1]))
        v = v0.new_zeros((len(rows), v0.shape[0], width + extra, v0.shape[-1]))
        for b, row in enumerate(rows):
            k[b, :, width - lengths[b] : width] = row[layer][0]
            v[b, :, width - lengths[b] : width] = row[layer][1]
        cache.layers.append(ReservedLayer(k, v, width))
    return cache, mask

"""The KV cache a batch of rows decodes from, put together from the parts prompt passes leave behind.

A prompt pass leaves a `Prompted`: the keys and values of the context every row shares (once), and
each row's own prompt tokens after it. Rows from several prompt passes (the same questions under
several interventions) can decode as one batch. Two layouts:

- `own_tokens_batch`: the cache holds each row's own tokens only, and the shared contexts stay apart
  (read once per step by shared_prefix.py): used where that attention applies;
- `copied_context_batch`: every row gets a copy of its context before its own tokens, for any model
  whose cache layers are plain.

Either way rows are left-padded to one width: the attention mask hides the pads and explicit position
ids carry on from each row's last prompt token, so every row computes what it would alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

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


def plain_dynamic(cache) -> bool:
    """Only plain growing caches can be cut and stitched by hand (a sliding window drops old tokens)."""
    return all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None]))


def reserved_cache(layers: list[KV], extra: int) -> DynamicCache:
    """A cache holding these keys and values, with room for `extra` more tokens per layer."""
    cache = DynamicCache()
    cache.layers = [ReservedLayer(k, v, extra) for k, v in layers]
    return cache


def own_tokens_batch(parts: list[Prompted], extra: int) -> tuple[DynamicCache, torch.Tensor]:
    """(cache of the rows' own tokens, left-padded; its mask [rows, width])."""
    rows = [row for p in parts for row in p.own]
    return _left_padded_cache(rows, extra)


def copied_context_batch(parts: list[Prompted], extra: int) -> tuple[DynamicCache, torch.Tensor]:
    """(cache of each row's context and own tokens, left-padded; its mask [rows, width])."""
    rows = []
    for p in parts:
        for row in p.own:
            rows.append(row if p.context is None else
                        [(torch.cat([ck[0], k], -2), torch.cat([cv[0], v], -2)) for (ck, cv), (k, v) in zip(p.context, row)])
    return _left_padded_cache(rows, extra)


def _left_padded_cache(rows: list[list[KV]], extra: int) -> tuple[DynamicCache, torch.Tensor]:
    lengths = [row[0][0].shape[-2] for row in rows]
    width = max(lengths)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=rows[0][0][0].device)
    layers = []
    for layer in range(len(rows[0])):
        k0, v0 = rows[0][layer]
        k = k0.new_zeros((len(rows), k0.shape[0], width, k0.shape[-1]))
        v = v0.new_zeros((len(rows), v0.shape[0], width, v0.shape[-1]))
        for b, row in enumerate(rows):
            k[b, :, width - lengths[b]:] = row[layer][0]
            v[b, :, width - lengths[b]:] = row[layer][1]
        layers.append((k, v))
    for b, n in enumerate(lengths):
        mask[b, width - n:] = 1
    return reserved_cache(layers, extra), mask

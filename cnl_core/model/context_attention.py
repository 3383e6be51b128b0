"""Decoding attention that reads a shared context's keys and values once for all the rows that share it.

Few-shot evaluation decodes many rows after one long context (GSM8K: a 932-token 5-shot prefix, then
a question of about 80 tokens). With an ordinary cache every row carries its own copy of the
context's keys and values, and every decoding step reads all the copies: on a CPU, attention over
8 copies took as long as all the weights' products of the step, and 32 rows spent half their
step there. Here the cache holds only each row's own tokens; the context sits once per group of rows
that share it (one group per intervention when several conditions decode together), and a decoding
step scores each query against it with one matrix product per group. The two parts' scores share one
softmax, so the result is ordinary attention, to float rounding.

It is used only where it is the same computation: models whose attention is the plain scaled
dot-product of transformers' attention interface (no sliding window, soft-capping, sinks or
position bias), for decoding steps (one new token per row, or a few when drafts are checked).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

if TYPE_CHECKING:
    from transformers import PreTrainedModel

NAME = "cnl_context_attention"
# Each checked against one-prompt-at-a-time generation on tiny models of its type (tests/unit/test_generation.py).
MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "phi3"})

_ACTIVE: contextvars.ContextVar[GroupContexts | None] = contextvars.ContextVar("cnl_context_attention", default=None)


class GroupContexts:
    """The context each group of consecutive rows shares: K and V per layer, [1, kv heads, tokens, dim]."""

    def __init__(self, sizes: list[int], contexts: list[list[tuple[torch.Tensor, torch.Tensor]] | None]):
        self.sizes = list(sizes)  # rows per group, in row order
        self.contexts = contexts  # [group][layer]; None: the group shares nothing
        self._group = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))  # each row's group

    def keep(self, rows: torch.Tensor) -> None:
        """Only these rows stay in the batch (the decoding loop's followers): recount each group's rows."""
        self._group = self._group[rows.cpu()]
        self.sizes = torch.bincount(self._group, minlength=len(self.sizes)).tolist()


def eligible(model: PreTrainedModel) -> bool:
    """Whether this model's attention is the plain kind this module reproduces (full attention in every layer)."""
    config = model.config
    types = getattr(config, "layer_types", None)
    full = all(t == "full_attention" for t in types) if types else getattr(config, "sliding_window", None) is None
    return (
        getattr(config, "model_type", None) in MODEL_TYPES
        and full
        and getattr(config, "_attn_implementation", None) in ("sdpa", "eager")
        and getattr(config, "attn_logit_softcapping", None) is None
    )


def _attention(
    module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask,
    scaling=None,
    dropout: float = 0.0,
    **kwargs,
):
    """Attention over [the group's shared context] + [the row's own keys], one softmax over both.

    query [rows, heads, new tokens, dim]; key/value [rows, kv heads, own tokens, dim], the new tokens last.
    Every new token sees the whole context; among the own tokens the mask rules (padding, causal order).
    """
    shared = _ACTIVE.get()
    if shared is None:
        raise RuntimeError("The shared-context attention runs only inside shared_context_decoding.")
    rows, heads, q_len, dim = query.shape
    kv_heads, own_len = key.shape[1], key.shape[-2]
    group = heads // kv_heads
    scaling = dim**-0.5 if scaling is None else scaling
    q = query.reshape(rows, kv_heads, group * q_len, dim)  # head h reads kv head h // group, as repeat_kv has it
    own = (torch.matmul(q, key.transpose(-1, -2)) * scaling).reshape(rows, kv_heads, group, q_len, own_len)
    if attention_mask is None and q_len > 1:  # the new tokens see each other in order
        attention_mask = torch.ones((q_len, own_len), dtype=torch.bool, device=query.device).tril(own_len - q_len)
    if attention_mask is not None:  # [rows or 1, 1, new, own]: boolean (keep) or additive
        m = attention_mask.reshape(-1, 1, 1, q_len, own_len)
        own = own.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else own + m
    outs, start = [], 0
    for g, n in enumerate(shared.sizes):
        if n == 0:
            continue
        context, stop = shared.contexts[g], start + n
        scores, v_own = own[start:stop], value[start:stop].unsqueeze(2)  # v_own [n, kv heads, 1, own, dim]
        if context is None:
            weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
            outs.append(torch.matmul(weights, v_own))
        else:
            pk, pv = context[module.layer_idx]
            length = pk.shape[-2]
            qg = q[start:stop].transpose(0, 1).reshape(kv_heads, n * group * q_len, dim)
            ctx = torch.matmul(qg, pk[0].transpose(-1, -2)) * scaling  # [kv heads, n x group x new, context]
            ctx = ctx.reshape(kv_heads, n, group, q_len, length).transpose(0, 1)
            weights = torch.softmax(torch.cat([ctx, scores], dim=-1), dim=-1, dtype=torch.float32).to(query.dtype)
            from_ctx = torch.matmul(
                weights[..., :length].transpose(0, 1).reshape(kv_heads, n * group * q_len, length), pv[0]
            )
            outs.append(
                from_ctx.reshape(kv_heads, n, group, q_len, dim).transpose(0, 1)
                + torch.matmul(weights[..., length:], v_own)
            )
        start = stop
    out = torch.cat(outs).reshape(rows, heads, q_len, dim)
    return out.transpose(1, 2).contiguous(), None


# Registered once, at import (transformers' registries are process-wide): the function, and sdpa's mask
# (padding and causal order among the own tokens).
AttentionInterface.register(NAME, _attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])


@contextmanager
def shared_context_decoding(model: PreTrainedModel, shared: GroupContexts) -> Iterator[None]:
    """Decoding steps inside the block read each group's context from `shared`; the caller holds the model's lock."""
    config = model.config
    before = config._attn_implementation
    token = _ACTIVE.set(shared)
    config._attn_implementation_internal = NAME
    try:
        yield
    finally:
        config._attn_implementation_internal = before
        _ACTIVE.reset(token)

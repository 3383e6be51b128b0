"""The forward passes every analysis runs: teacher-forced gold answers, and a shared context run once.

- `encode_teacher_forced`: prompt + gold answer as one right-padded batch, with the positions whose
  next-token prediction is a gold answer token marked (`answer_mask`). Token limits are plain numbers.
- `gold_logprob`: one pass, the LM head only on the answer positions; the sum of the gold answer
  tokens' log-probabilities per row. Scores (locate), evaluation and fine-tuning all use it.
- `pass_groups`: which rows share a pass (on a CPU, rows of like length; on a GPU, all).
- `prefix_cache` / `teacher_forced_logprob`: a context every row shares (the few-shot examples) runs
  once and its KV cache serves every row; generation uses the same cache.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase
from transformers.cache_utils import Cache, DynamicCache

from .hooks import NO_EDIT, Edit, edited, owned_pre_hook
from .kv_cache import Prompted, plain_dynamic
from .loading import LoadedModel
from .positions import answer_span, answer_start
from .tokens import token_ids


@dataclass
class EncodedBatch:
    input_ids: torch.Tensor  # [batch, tokens]
    attention_mask: torch.Tensor  # [batch, tokens] 1 on real tokens (right padding: only causal masking is needed)
    answer_mask: torch.Tensor  # [batch, tokens] bool: position predicts a gold answer token
    targets: torch.Tensor  # [batch, tokens] next token id at answer positions, else 0

    def select(self, rows: list[int]) -> EncodedBatch:
        """These rows, cut to the longest of them (right padding: the columns after it are all pads)."""
        width = int(self.attention_mask[rows].sum(-1).max())
        return EncodedBatch(
            *(t[rows, :width] for t in (self.input_ids, self.attention_mask, self.answer_mask, self.targets))
        )

    def repeat(self, rows: int) -> EncodedBatch:
        """A one-row batch as `rows` identical rows (views, no copy)."""
        return EncodedBatch(
            *(t.expand(rows, -1) for t in (self.input_ids, self.attention_mask, self.answer_mask, self.targets))
        )

    def after(self, n: int) -> EncodedBatch:
        """The columns from n on: what is left to run once the first n sit in a KV cache."""
        return EncodedBatch(
            self.input_ids[:, n:], self.attention_mask[:, n:], self.answer_mask[:, n:], self.targets[:, n:]
        )


def prompt_and_answer_ids(
    tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str, max_prompt_tokens: int, max_answer_tokens: int
) -> tuple[list[int], list[int]]:
    """Token ids of the prompt (cut from the left if too long) and of the gold answer (cut at the end)."""
    return _token_ids(tokenizer, [(prompt, answer)], max_prompt_tokens, max_answer_tokens)[0]


def _token_ids(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], max_prompt_tokens: int, max_answer_tokens: int
) -> list[tuple[list[int], list[int]]]:
    """prompt_and_answer_ids for many pairs (tokenized as two batches, and each text once: model/tokens.py)."""
    if not pairs:
        return []
    prompts = token_ids(tokenizer, [p for p, _ in pairs], add_special_tokens=True)
    answers = token_ids(tokenizer, [a for _, a in pairs], add_special_tokens=False)
    return [
        (p[-max_prompt_tokens:], a[:max_answer_tokens] or [tokenizer.eos_token_id]) for p, a in zip(prompts, answers)
    ]


def encoded_length(
    tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str, max_prompt_tokens: int, max_answer_tokens: int
) -> int:
    """Tokens a (prompt, answer) pair takes in a teacher-forced batch (for grouping rows of like length)."""
    p, a = prompt_and_answer_ids(tokenizer, prompt, answer, max_prompt_tokens, max_answer_tokens)
    return len(p) + len(a)


def encode_teacher_forced(
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, str]],
    max_prompt_tokens: int,
    max_answer_tokens: int,
    device: torch.device | str = "cpu",
) -> EncodedBatch:
    """(prompt, gold answer) pairs, right-padded; a prompt is cut from the left if too long."""
    seqs, starts = [], []
    for p, a in _token_ids(tokenizer, pairs, max_prompt_tokens, max_answer_tokens):
        seqs.append(p + a)
        starts.append(len(p))
    width = max(len(x) for x in seqs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    answer_mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    targets = torch.zeros((len(seqs), width), dtype=torch.long)
    for b, (seq, start) in enumerate(zip(seqs, starts)):
        ids[b, : len(seq)] = torch.tensor(seq)
        attn[b, : len(seq)] = 1
        span = answer_span(start, len(seq))
        answer_mask[b, span] = True
        targets[b, span] = torch.tensor(seq[start:])
    return EncodedBatch(ids.to(device), attn.to(device), answer_mask.to(device), targets.to(device))


@dataclass(frozen=True)
class AnswerPositions:
    """Where a batch's answer positions sit, as index tensors found before a pass: `flat` indexes the batch's
    [rows x tokens] positions row-major (the order a boolean mask picks them in), `rows` is each one's row and
    `targets` its gold next token. A boolean-mask pick inside a pass makes the host wait for the device to learn
    the count; these are found while the device is idle, so a GPU pass runs to its end without a wait."""

    flat: torch.Tensor  # [answer tokens] long
    rows: torch.Tensor  # [answer tokens] long
    targets: torch.Tensor  # [answer tokens] long
    n_rows: int

    @staticmethod
    def of(batch: EncodedBatch, mask: torch.Tensor | None = None) -> AnswerPositions:
        """The positions of `mask` (default: the batch's answer mask; a widened batch's own), targets from it."""
        mask = batch.answer_mask if mask is None else mask
        flat = mask.reshape(-1).nonzero().squeeze(1)
        targets = batch.targets.reshape(-1).index_select(0, flat)
        return AnswerPositions(flat, torch.div(flat, mask.shape[1], rounding_mode="floor"), targets, mask.shape[0])

    def pick(self, hidden: torch.Tensor) -> torch.Tensor:
        """[answer tokens, ...] from a [rows, tokens, ...] tensor (of any device)."""
        flat = hidden.reshape(-1, *hidden.shape[2:])
        return flat.index_select(0, self.flat.to(hidden.device))


def answer_logprob(logits: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
    """[batch] sum of the gold answer tokens' log-probabilities, from logits at every position."""
    where = AnswerPositions.of(batch)
    return _gold_sum(where.pick(logits), where)


def _gold_sum(at_answers: torch.Tensor, where: AnswerPositions) -> torch.Tensor:
    """[rows] sums from logits at the answer positions only ([answer tokens, vocab], row-major order)."""
    chosen = at_answers.float()  # log-softmax only where it is needed
    targets = where.targets.to(chosen.device)
    picked = chosen.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(chosen, dim=-1)
    return torch.zeros(where.n_rows, device=chosen.device, dtype=picked.dtype).index_add(
        0, where.rows.to(chosen.device), picked
    )


def gold_logprob(
    lm: LoadedModel, batch: EncodedBatch, cache: Cache | None = None, widen: int | None = None
) -> torch.Tensor:
    """Teacher-forced forward pass; the LM head runs on the answer positions and nowhere else.

    A pre-hook hands the output layer only the answer positions' hidden states, [1, answer tokens,
    hidden]: the vocabulary projection, the costliest product when answers are short and prompts
    long (a quarter of a CPU pass on GSM8K), then covers what is scored, and whatever the model does
    to logits afterwards (soft-capping, scaling) still applies. A model that never calls its output
    layer as a module gets full logits instead.

    The batch is right-padded, so causal attention alone keeps every real token from seeing the pads
    (and positions count from 0 in every row): no attention mask is passed, which lets attention take
    its fast causal path. Pad positions compute garbage that no answer position ever reads. With a
    `cache` (a shared context already run, one row per batch row), the batch holds what comes after it.
    With `widen`, a one-row batch whose hidden states a hook widens to that many rows inside the model
    (integrated gradients): one sum per row it became.
    """
    scored = batch if widen is None else batch.repeat(widen)
    where = AnswerPositions.of(scored)
    return _gold_sum(answer_logits(lm, batch, cache, where), where)


def answer_logits(
    lm: LoadedModel, batch: EncodedBatch, cache: Cache | None = None, where: AnswerPositions | None = None
) -> torch.Tensor:
    """[answer tokens, vocab] logits at the answer positions, row by row (see gold_logprob); `where`, found before
    the pass (default: the batch's own answer positions; a widened batch's, where the rows reaching the LM head are
    not the batch's own)."""
    where = AnswerPositions.of(batch) if where is None else where
    head = lm.model.get_output_embeddings()
    taken: list[bool] = []

    def take_answers(module, args):
        if not args:
            return None
        taken.append(True)
        return (where.pick(args[0]).unsqueeze(0), *args[1:])

    hook = owned_pre_hook(head, take_answers) if head is not None else None
    try:
        logits = lm.model(input_ids=batch.input_ids, cache=cache, use_cache=cache is not None).logits
    finally:
        if hook is not None:
            hook.remove()
    return logits[0] if taken else where.pick(logits)


def like_length_groups(lengths: Sequence[int], max_waste: float = 0.1) -> list[list[int]]:
    """Indices grouped, longest first, so that padding adds at most max_waste to each group's tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        group = groups[-1] if groups else None
        if group is not None:
            padded = lengths[group[0]] * (len(group) + 1)  # the group's first member is its longest
            if padded <= (1 + max_waste) * (sum(lengths[j] for j in group) + lengths[i]):
                group.append(i)
                continue
        groups.append([i])
    return groups


def pass_groups(lm: LoadedModel, lengths: Sequence[int]) -> list[list[int]]:
    """Which rows of a batch share a forward pass.

    On a CPU, groups of like length: the CPU is compute-bound, so a pad position costs as much as a
    real one, and a batch of GSM8K samples in dataset order is about 30% padding. On a GPU padding is
    nearly free and one pass for all rows is fastest.
    """
    if lm.input_device.type != "cpu":
        return [list(range(len(lengths)))]
    return like_length_groups(lengths)


SHARED_CONTEXT_LEAST = 16  # fewer shared leading tokens are not worth a pass of their own


def batch_context_length(batch: EncodedBatch, least: int = SHARED_CONTEXT_LEAST) -> int:
    """The context a teacher-forced batch shares: leading columns that every row has, token for token, and where no
    position predicts an answer (generation.prompts_context_length finds the same in token lists).

    The few-shot prefix is the same for every prompt; its KV cache is computed once and shared. Fewer
    than `least` shared tokens, or a single row, are not worth the extra pass.
    """
    ids = batch.input_ids
    if ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(0) & batch.attention_mask.bool().all(0) & ~batch.answer_mask.any(0)
    n = int(same.int().cumprod(0).sum())
    return n if n >= least else 0


@dataclass
class TeacherForced:
    total: torch.Tensor  # [rows] sum of the answer tokens' log-probabilities
    count: torch.Tensor  # [rows] answer tokens
    prompted: Prompted | None = None  # the prompts' keys and values, ready to decode (when asked and possible)


def teacher_forced_logprob(
    lm: LoadedModel,
    edit: Edit,
    prompts: list[str],
    answers: list[str],
    max_context_tokens: int,
    max_answer_tokens: int = 512,
    keep_prompts: bool = False,
) -> TeacherForced:
    """Sum log-prob of each answer after its prompt, and its token count, under `edit` (NO_EDIT: unmodified),
    which learns each pass's answer positions (none in the shared context).

    With `keep_prompts`, also what greedy decoding after each prompt needs, so generation does not run the
    prompts again: the shared context's keys and values, each row's own prompt keys and values, and the
    greedy first token (the logits at the last prompt position, which the gold pass computes anyway). Not
    for caches that cannot be cut by hand (a sliding window): `prompted` is then None.
    """
    batch = encode_teacher_forced(
        lm.tokenizer, list(zip(prompts, answers)), max_context_tokens, max_answer_tokens, lm.input_device
    )
    shared = batch_context_length(batch)
    ends = answer_start(batch.answer_mask) + 1  # the first answer position is the last prompt token
    own: list = [None] * len(prompts)
    first = torch.zeros(len(prompts), dtype=torch.long)
    with torch.no_grad():
        cache = prefix_cache(lm, batch.input_ids[0, :shared].tolist(), edit) if shared else None
        context = [(layer.keys, layer.values) for layer in cache.layers] if cache is not None else None
        tail = batch.after(shared)
        groups = pass_groups(lm, tail.attention_mask.sum(-1).tolist())
        total = torch.empty(len(prompts))
        for idx in groups:
            part, rows_cache = tail.select(idx), None
            if cache is not None:
                rows_cache = copy.deepcopy(cache) if len(groups) > 1 else cache
                rows_cache.batch_repeat_interleave(len(idx))
            elif keep_prompts:  # a cache to keep the prompts from, where one can be cut by hand
                rows_cache = DynamicCache(config=lm.model.config)
                rows_cache = rows_cache if plain_dynamic(rows_cache) else None
            where = AnswerPositions.of(part)
            with edited(lm, edit.at(part.answer_mask)):
                at_answers = answer_logits(lm, part, rows_cache, where)
            total[idx] = _gold_sum(at_answers, where).cpu()
            if keep_prompts and plain_dynamic(rows_cache):
                _keep_prompts(part, idx, at_answers, rows_cache, shared, ends, own, first)
    prompted = None
    if keep_prompts and all(row is not None for row in own):
        ids = [batch.input_ids[i, : int(ends[i])].tolist() for i in range(len(prompts))]
        prompted = Prompted(context, own, first.tolist(), ids)
    return TeacherForced(total, batch.answer_mask.sum(-1).cpu(), prompted)


def _keep_prompts(
    part: EncodedBatch,
    idx: list[int],
    at_answers: torch.Tensor,
    cache,
    shared: int,
    ends: torch.Tensor,
    own: list,
    first: torch.Tensor,
) -> None:
    """Each row's prompt keys and values after the shared context, up to its prompt's end (copied out of the
    pass's cache, which holds the context first), and its greedy first token (the logits at its first answer
    position, which is its last prompt position)."""
    counts = part.answer_mask.sum(-1)
    first[idx] = at_answers[(torch.cumsum(counts, 0) - counts).to(at_answers.device)].argmax(-1).cpu()
    for j, i in enumerate(idx):
        end = int(ends[i])
        own[i] = [
            (layer.keys[j, :, shared:end].clone(), layer.values[j, :, shared:end].clone()) for layer in cache.layers
        ]


def prefix_cache(lm: LoadedModel, prefix: Sequence[int], edit: Edit = NO_EDIT):
    """KV cache of a context every row shares, batch 1, under `edit`: no context position predicts an answer
    token, so an answer-position edit changes nothing there and runs no hooks."""
    ids = torch.tensor([list(prefix)], dtype=torch.long, device=lm.input_device)
    with edited(lm, NO_EDIT if edit.answers_only else edit):
        return lm.model(input_ids=ids, use_cache=True, **last_logits_only(lm)).cache


def last_logits_only(lm: LoadedModel) -> dict:
    """forward() arguments that skip the LM head on every position but the last, where the model allows it."""
    return {"logits_to_keep": 1} if lm.accepts_logits_to_keep else {}

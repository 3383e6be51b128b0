"""Per-sample neuron scores on the gold answer, teacher-forced.

Three methods (see shared paper notes):
- `activation`: mean activation over the answer positions (forward only).
- `grad_x_act`: activation x gradient of the gold-answer log-probability (one backward pass).
- `integrated_gradients`: Knowledge-Neurons style; one layer's activations at the answer positions
  are scaled by alpha = k/m (k = 1..m), the gradients averaged and multiplied by the activation.
  The (layer, alpha) pairs of a sample are packed as rows of one batch, so a sample costs about
  layers x m / batch_rows passes instead of layers x m.

"Answer positions" are the positions whose next-token prediction is a gold answer token.
Scores are streamed batch by batch: nothing of shape [samples, tokens, layers, neurons] is held.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Sequence

import torch

from .datasets import Sample
from .errors import ParameterError
from .models import LoadedModel
from .neurons import neuron_hooks

METHODS = ("activation", "grad_x_act", "integrated_gradients")


@dataclass(frozen=True)
class ScoreConfig:
    """Everything about the score computation that changes its numbers (part of the cache key)."""

    method: str = "grad_x_act"
    ig_steps: int = 20
    max_prompt_tokens: int = 384
    max_answer_tokens: int = 128

    def __post_init__(self):
        if self.method not in METHODS:
            raise ParameterError(f"Unknown scoring method '{self.method}'. Choose one of: {', '.join(METHODS)}.")
        if not 1 <= self.ig_steps <= 200:
            raise ParameterError("Integrated-gradient steps must be between 1 and 200.")
        if self.max_prompt_tokens < 1 or self.max_answer_tokens < 1:
            raise ParameterError("Token limits must be positive.")

    def key_params(self) -> dict:
        params = asdict(self)
        if self.method != "integrated_gradients":
            params.pop("ig_steps")
        return params


@dataclass
class EncodedBatch:
    input_ids: torch.Tensor  # [batch, tokens]
    attention_mask: torch.Tensor  # [batch, tokens] 1 on real tokens (right padding: only causal masking is needed)
    answer_mask: torch.Tensor  # [batch, tokens] bool: position predicts a gold answer token
    targets: torch.Tensor  # [batch, tokens] next token id at answer positions, else 0

    def select(self, rows: list[int]) -> "EncodedBatch":
        """These rows, cut to the longest of them (right padding: the columns after it are all pads)."""
        width = int(self.attention_mask[rows].sum(-1).max())
        return EncodedBatch(*(t[rows, :width] for t in (self.input_ids, self.attention_mask, self.answer_mask, self.targets)))

    def after(self, n: int) -> "EncodedBatch":
        """The columns from n on: what is left to run once the first n sit in a KV cache."""
        return EncodedBatch(self.input_ids[:, n:], self.attention_mask[:, n:], self.answer_mask[:, n:], self.targets[:, n:])


def _prompt_and_answer(tokenizer, s: Sample, cfg: ScoreConfig) -> tuple[list[int], list[int]]:
    """Token ids of the prompt (cut from the left if too long) and of the gold answer (cut at the end)."""
    prompt = tokenizer(s.prompt, add_special_tokens=True)["input_ids"][-cfg.max_prompt_tokens:]
    answer = tokenizer(s.answer, add_special_tokens=False)["input_ids"][: cfg.max_answer_tokens]
    return prompt, answer or [tokenizer.eos_token_id]


def encoded_length(tokenizer, s: Sample, cfg: ScoreConfig) -> int:
    """Tokens the sample takes in a teacher-forced batch (for grouping samples of like length)."""
    prompt, answer = _prompt_and_answer(tokenizer, s, cfg)
    return len(prompt) + len(answer)


def encode_teacher_forced(tokenizer, samples: Sequence[Sample], cfg: ScoreConfig, device: torch.device) -> EncodedBatch:
    """Prompt + gold answer, right-padded; the prompt is cut from the left if too long."""
    seqs, starts = [], []
    for s in samples:
        prompt, answer = _prompt_and_answer(tokenizer, s, cfg)
        seqs.append(prompt + answer)
        starts.append(len(prompt))
    width = max(len(x) for x in seqs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    answer_mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    targets = torch.zeros((len(seqs), width), dtype=torch.long)
    for b, (seq, start) in enumerate(zip(seqs, starts)):
        ids[b, : len(seq)] = torch.tensor(seq)
        attn[b, : len(seq)] = 1
        answer_mask[b, start - 1 : len(seq) - 1] = True
        targets[b, start - 1 : len(seq) - 1] = torch.tensor(seq[start:])
    return EncodedBatch(ids.to(device), attn.to(device), answer_mask.to(device), targets.to(device))


def answer_logprob(logits: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
    """[batch] sum of the gold answer tokens' log-probabilities, from logits at every position."""
    return _gold_sum(logits[batch.answer_mask.to(logits.device)], batch)


def _gold_sum(at_answers: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
    """[batch] sums from logits at the answer positions only ([answer tokens, vocab], row-major order)."""
    mask = batch.answer_mask.to(at_answers.device)
    targets = batch.targets.to(at_answers.device)[mask]
    chosen = at_answers.float()  # log-softmax only where it is needed
    picked = chosen.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(chosen, dim=-1)
    rows = mask.nonzero()[:, 0]
    return torch.zeros(mask.shape[0], device=chosen.device, dtype=picked.dtype).index_add(0, rows, picked)


def gold_logprob(lm: LoadedModel, batch: EncodedBatch, cache=None) -> torch.Tensor:
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
    """
    head = lm.model.get_output_embeddings()
    taken: list[bool] = []

    def take_answers(module, args):
        if not args:
            return None
        taken.append(True)
        hidden = args[0]
        return (hidden[batch.answer_mask.to(hidden.device)].unsqueeze(0), *args[1:])

    hook = head.register_forward_pre_hook(take_answers) if head is not None else None
    try:
        logits = lm.model(input_ids=batch.input_ids, cache=cache, use_cache=cache is not None).logits
    finally:
        if hook is not None:
            hook.remove()
    return _gold_sum(logits[0], batch) if taken else answer_logprob(logits, batch)


ProgressFn = Callable[[int, int], None]


def score_batches(
    lm: LoadedModel, samples: Sequence[Sample], cfg: ScoreConfig, batch_size: int = 8,
    progress: ProgressFn | None = None,
) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
    """Yield (sample ids, scores [batch, layers, width] float32 on CPU, gold log-prob [batch]) per batch."""
    if batch_size < 1:
        raise ParameterError("Batch size must be at least 1.")
    done = 0
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        with lm.lock:
            if cfg.method == "integrated_gradients":
                scores, gold = _integrated_gradients(lm, chunk, cfg)
            else:
                scores, gold = _like_lengths_together(lm, chunk, cfg)
        done += len(chunk)
        if progress:
            progress(done, len(samples))
        yield [s.id for s in chunk], scores, gold


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


def _like_lengths_together(lm: LoadedModel, samples: Sequence[Sample], cfg: ScoreConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of a batch, one pass per group of `pass_groups`."""
    batch = encode_teacher_forced(lm.tokenizer, samples, cfg, lm.input_device)
    scores = torch.empty(len(samples), lm.grid.n_layers, lm.grid.width)
    gold = torch.empty(len(samples))
    for idx in pass_groups(lm, batch.attention_mask.sum(-1).tolist()):
        scores[idx], gold[idx] = _single_pass(lm, batch.select(idx), cfg)
    return scores, gold


def _mask3(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(like.device, like.dtype).unsqueeze(-1)


def _single_pass(lm: LoadedModel, batch: EncodedBatch, cfg: ScoreConfig) -> tuple[torch.Tensor, torch.Tensor]:
    n_layers = lm.grid.n_layers
    acts: list[torch.Tensor | None] = [None] * n_layers
    per_layer: list[torch.Tensor | None] = [None] * n_layers
    need_grad = cfg.method == "grad_x_act"

    def hook(layer: int, x: torch.Tensor):
        if need_grad:
            if not x.requires_grad:
                x.requires_grad_(True)  # a leaf: nothing upstream needs gradients
            acts[layer] = x
            return None
        weights = batch.answer_mask.to(x.device, x.dtype)
        weights = (weights / weights.sum(1, keepdim=True).clamp(min=1)).unsqueeze(1)  # [batch, 1, tokens]
        per_layer[layer] = torch.bmm(weights, x).squeeze(1).float().cpu()  # masked mean without a [b, t, w] temporary
        return None

    with neuron_hooks(lm.ffn, hook), (torch.enable_grad() if need_grad else torch.inference_mode()):
        gold = gold_logprob(lm, batch)
        if need_grad:
            grads = torch.autograd.grad(gold.sum(), acts)
            for layer, (x, g) in enumerate(zip(acts, grads)):
                m = _mask3(batch.answer_mask, x)
                per_layer[layer] = (x.detach().float() * g.float() * m).sum(1).cpu()
    return torch.stack(per_layer, dim=1), gold.detach().cpu()


def ig_rows_per_pass(cfg: ScoreConfig, n_layers: int) -> int:
    """Rows (one layer at one alpha) packed into one forward+backward: at least all steps of a layer."""
    return max(cfg.ig_steps, min(n_layers * cfg.ig_steps, 4 * cfg.ig_steps))


def _integrated_gradients(lm: LoadedModel, samples: Sequence[Sample], cfg: ScoreConfig) -> tuple[torch.Tensor, torch.Tensor]:
    n_layers, width, m = lm.grid.n_layers, lm.grid.width, cfg.ig_steps
    scores = torch.zeros(len(samples), n_layers, width)
    golds = []
    rows_per_pass = ig_rows_per_pass(cfg, n_layers)
    alphas_all = torch.arange(1, m + 1, dtype=torch.float32) / m
    for s_idx, sample in enumerate(samples):
        single = encode_teacher_forced(lm.tokenizer, [sample], cfg, lm.input_device)
        with torch.no_grad():
            golds.append(gold_logprob(lm, single)[0].cpu())
        plan = [(layer, a) for layer in range(n_layers) for a in alphas_all.tolist()]
        for start in range(0, len(plan), rows_per_pass):
            rows = plan[start : start + rows_per_pass]
            row_layer = torch.tensor([r[0] for r in rows])
            row_alpha = torch.tensor([r[1] for r in rows])
            r = len(rows)
            batch = EncodedBatch(single.input_ids.expand(r, -1), single.attention_mask.expand(r, -1),
                                 single.answer_mask.expand(r, -1), single.targets.expand(r, -1))
            targeted = sorted(set(row_layer.tolist()))
            scaled: dict[int, torch.Tensor] = {}
            originals: dict[int, torch.Tensor] = {}

            def hook(layer: int, x: torch.Tensor):
                if layer not in targeted:
                    return None
                on = (row_layer == layer).to(x.device, x.dtype).view(r, 1, 1) * _mask3(batch.answer_mask, x)
                alpha = row_alpha.to(x.device, x.dtype).view(r, 1, 1)
                x_scaled = x * (1 + (alpha - 1) * on)
                if not x_scaled.requires_grad:
                    x_scaled.requires_grad_(True)
                originals[layer] = x.detach()
                scaled[layer] = x_scaled
                return x_scaled

            with neuron_hooks(lm.ffn, hook), torch.enable_grad():
                gold = gold_logprob(lm, batch)
                grads = torch.autograd.grad(gold.sum(), [scaled[l] for l in targeted])
            for layer, g in zip(targeted, grads):
                sel = (row_layer == layer).nonzero().flatten().to(g.device)
                x0 = originals[layer].index_select(0, sel).float()
                mask = _mask3(batch.answer_mask, x0)[: len(sel)]
                contrib = (x0 * g.index_select(0, sel).float() * mask).sum(dim=(0, 1)) / m
                scores[s_idx, layer] += contrib.cpu()
    return scores, torch.stack(golds)

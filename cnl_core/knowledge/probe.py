"""What the model says to a fact's prompts: the answer's log-probability and whether greedy decoding gives it.

One teacher-forced pass per batch serves both: the answer's log-probability is the sum over its tokens,
and greedy decoding would write the answer exactly when every answer token is the arg-max at its
position (so no generation is needed to check which facts the model knows). An intervention, an edit or
a hook that is active around these calls applies to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..model.forward import answer_logits, encode_teacher_forced
from ..model.loading import LoadedModel

MAX_PROMPT_TOKENS = 512  # a fact prompt with its demonstrations is well under this
MAX_ANSWER_TOKENS = 16
BATCH = 16


@dataclass(frozen=True)
class AnswerStats:
    """Per prompt: log p(answer | prompt) (summed over its tokens) and whether greedy decoding gives it."""

    logprob: torch.Tensor  # [n] float
    greedy: torch.Tensor  # [n] bool

    @property
    def prob(self) -> torch.Tensor:
        return self.logprob.exp()


def answer_stats(lm: LoadedModel, pairs: Sequence[tuple[str, str]], batch_size: int = BATCH) -> AnswerStats:
    """log p(answer | prompt) and greedy correctness of each (prompt, answer) pair, without gradients."""
    logps, greedy = [], []
    with lm.lock, torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            part = list(pairs[start:start + batch_size])
            batch = encode_teacher_forced(lm.tokenizer, part, MAX_PROMPT_TOKENS, MAX_ANSWER_TOKENS, lm.input_device)
            logits = answer_logits(lm, batch).float()
            mask = batch.answer_mask
            targets = batch.targets[mask].to(logits.device)
            picked = logits.gather(-1, targets[:, None])[:, 0] - torch.logsumexp(logits, -1)
            hit = (logits.argmax(-1) == targets).float()
            rows = mask.nonzero()[:, 0].to(logits.device)
            n = len(part)
            logps.append(torch.zeros(n, device=logits.device).index_add(0, rows, picked).cpu())
            misses = torch.zeros(n, device=logits.device).index_add(0, rows, 1 - hit)
            greedy.append((misses == 0).cpu())
    return AnswerStats(torch.cat(logps), torch.cat(greedy))

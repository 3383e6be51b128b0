"""What the model says to a fact's prompts: the answer's log-probability and whether greedy decoding gives it.

One teacher-forced pass per batch serves both: the answer's log-probability is the sum over its tokens,
and greedy decoding would write the answer exactly when every answer token is the arg-max at its
position (so no generation is needed to check which facts the model knows). An intervention, an edit or
a hook that is active around these calls applies to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..model.forward import answer_logits, encode_teacher_forced
from ..model.loading import LoadedModel
from ..schema import result_kind

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
            part = list(pairs[start : start + batch_size])
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


@result_kind(
    "cnl.knowledge.known",
    computed={  # for readers of the file, never read back
        "rule": lambda k: "greedy decoding (teacher-forced arg-max at every answer token) after the few-shot prompt",
        "known": "known",
    },
    order=("shots", "min_share", "rule", "known", "share", "correct", "prob"),
)
@dataclass(frozen=True)
class KnownCheck:
    """Which facts the model knows: greedy (teacher-forced arg-max) correctness of each paraphrase."""

    shots: int
    min_share: float
    correct: dict[str, bool]  # paraphrase id -> greedy decoding gives the answer
    prob: dict[str, float]  # paraphrase id -> p(answer)
    share: dict[str, float]  # fact id -> share of its paraphrases answered

    @property
    def known(self) -> list[str]:
        """Facts answered on at least `min_share` of their paraphrases."""
        return [f for f, s in self.share.items() if s >= self.min_share]


def check_known(lm: LoadedModel, facts_set, min_share: float = 0.5) -> KnownCheck:
    """Ask every paraphrase of every fact; a fact is known when most of its paraphrases get the answer."""
    paras = [p for f in facts_set.facts for p in facts_set.paraphrases(f)]
    stats = answer_stats(lm, [(p.text, p.answer) for p in paras])
    correct = {p.id: bool(g) for p, g in zip(paras, stats.greedy)}
    share: dict[str, list[bool]] = {}
    for p in paras:
        share.setdefault(p.fact_id, []).append(correct[p.id])
    return KnownCheck(
        facts_set.shots,
        min_share,
        correct,
        {p.id: float(v) for p, v in zip(paras, stats.prob)},
        {f: sum(v) / len(v) for f, v in share.items()},
    )

"""Where a prompt's answer is predicted, computed in one place.

The answer position of a prompt is its last prompt token: the position whose next-token prediction is the first
answer token. Teacher-forced batches mark it and every later answer position (`answer_span`, read back by
`answer_start`); passes over prompts alone (generation's prompt pass, a probe's pass) take each row's last
position (`last_positions`), their prompts being left-padded or unpadded; steering's passes over a prompt and
its answer so far take every position from the last prompt token on (`generated_positions`). Encoding, the
shared-context pass, integrated gradients, generation, steering, the knowledge scores and an answer-position
intervention all read these functions, so "which token is scored or changed" is written once.
"""

from __future__ import annotations

import torch


def answer_span(prompt_tokens: int, total_tokens: int) -> slice:
    """The positions of one teacher-forced row (prompt then answer) that predict its answer tokens: from the last
    prompt token to the one before the last answer token."""
    return slice(prompt_tokens - 1, total_tokens - 1)


def generated_positions(prompt_tokens: int, tokens: int, device: torch.device | str | None = None) -> torch.Tensor:
    """[1, tokens] bool, True from the last prompt token on: a pass over a prompt and the answer generated so far,
    where every position from the prompt's last predicts an answer token (the last one, the next token)."""
    where = torch.zeros((1, tokens), dtype=torch.bool, device=device)
    where[0, answer_span(prompt_tokens, tokens).start :] = True
    return where


def answer_start(answer_mask: torch.Tensor) -> torch.Tensor:
    """[rows] long: each row's first answer position (its last prompt token) in a [rows, tokens] answer mask."""
    return answer_mask.int().argmax(-1)


def last_positions(rows: int, tokens: int, device: torch.device | str | None = None) -> torch.Tensor:
    """[rows, tokens] bool, True at each row's last position: the answer position of a pass over left-padded or
    unpadded prompts (and a decoding step's one token)."""
    where = torch.zeros((rows, tokens), dtype=torch.bool, device=device)
    where[:, -1] = True
    return where

"""From per-sample scores to a located neuron set: per-sample selection, then commonality.

Works on cached scores alone, so changing tau, p, the rule or the sign never touches the model.

Sign: about half of grad x act scores are negative, and the most negative is about as large as the
top one. The knowledge-neurons convention, our default (`sign="positive"`), selects on the scores as
they are: a neuron that lowers the gold answer's probability is never selected, and a sample whose
largest score is not positive selects nothing under the relative rule. `negative` selects on the
negated scores (neurons that work against the gold answer), `absolute` on their magnitude.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

import torch

from .. import fields as F
from ..errors import ParameterError
from ..model.neurons import NeuronGrid, NeuronSet
from ..options import RULES, SIGNS


@dataclass(frozen=True)
class LocateParams:
    """Selection per sample (rule + tau/top_k/sigma), then keep neurons selected in >= p of samples."""

    rule: str = RULES[0]  # relative: score >= tau * sample max; topk: k best; zscore: z >= sigma
    tau: float = 0.2
    top_k: int = 100
    sigma: float = 3.0
    p: float = 0.5
    sign: str = SIGNS[0]  # positive (KN's convention) | negative | absolute

    def __post_init__(self):
        if self.rule not in RULES:
            raise ParameterError(f"Selection rule must be one of {', '.join(RULES)}.")
        if self.sign not in SIGNS:
            raise ParameterError(f"Sign must be one of {', '.join(SIGNS)}.")
        for field, value in ((F.TAU, self.tau), (F.P, self.p), (F.SIGMA, self.sigma), (F.TOP_K, self.top_k)):
            field.typed(value)

    @staticmethod
    def from_inputs(rule: str, tau, p, top_k, sigma, sign: str) -> LocateParams:
        """From a form or the command line (the one conversion both use): numbers may be text; each is checked,
        also those the rule does not read (a bad box is a sentence now, not when the rule changes)."""
        top_k = cast(int, F.TOP_K.check(top_k))  # an integer field gives an int (NumberField types it int | float)
        return LocateParams(
            rule=rule, tau=F.TAU.check(tau), p=F.P.check(p), top_k=top_k, sigma=F.SIGMA.check(sigma), sign=sign
        )

    def as_dict(self) -> dict:
        return asdict(self)


def select_per_sample(scores: torch.Tensor, params: LocateParams) -> torch.Tensor:
    """[n, layers, width] scores -> [n, layers*width] bool: the neurons each sample selects."""
    flat = scores.reshape(scores.shape[0], -1).float()
    if params.sign == "negative":
        flat = -flat
    elif params.sign == "absolute":
        flat = flat.abs()
    if params.rule == "relative":
        top = flat.max(dim=1, keepdim=True).values
        return (flat >= params.tau * top) & (top > 0)
    if params.rule == "topk":
        k = min(params.top_k, flat.shape[1])
        chosen = torch.zeros_like(flat, dtype=torch.bool)
        chosen.scatter_(1, flat.topk(k, dim=1).indices, True)
        return chosen
    mean, std = flat.mean(dim=1, keepdim=True), flat.std(dim=1, keepdim=True).clamp(min=1e-12)
    return (flat - mean) / std >= params.sigma


def selection_counts(scores: torch.Tensor, params: LocateParams, chunk: int = 256) -> torch.Tensor:
    """[layers*width] int: in how many samples each neuron was selected (chunked: bounded memory)."""
    counts = torch.zeros(scores.shape[1] * scores.shape[2], dtype=torch.int32)
    for start in range(0, scores.shape[0], chunk):
        counts += select_per_sample(scores[start : start + chunk], params).sum(0, dtype=torch.int32)
    return counts


def locate(scores: torch.Tensor, params: LocateParams) -> NeuronSet:
    """Neurons selected in at least a fraction p of the samples."""
    if scores.ndim != 3 or scores.shape[0] == 0:
        raise ParameterError("Scores must be [samples, layers, width] with at least one sample.")
    grid = NeuronGrid(scores.shape[1], scores.shape[2])
    counts = selection_counts(scores, params)
    needed = params.p * scores.shape[0]
    return NeuronSet.from_flat(grid, torch.nonzero(counts >= needed - 1e-9).flatten().numpy())


def neuron_prominence(scores: torch.Tensor, params: LocateParams) -> torch.Tensor:
    """[layers, width] fraction of samples selecting each neuron: what the heatmap shows."""
    counts = selection_counts(scores, params).float() / scores.shape[0]
    return counts.view(scores.shape[1], scores.shape[2])

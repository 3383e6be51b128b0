"""Neuron scores of every paraphrase, through the score cache, and the Knowledge-Neurons selection.

A fact set becomes a dataset whose samples are its paraphrases (id "relation/subject#template"), so the
cache, progress and cancel of `collect_scores` serve it as they serve any dataset, and the fidelity,
reliability and capability comparisons read the same scores. The per-paraphrase set is the Knowledge
Neurons rule: neurons whose score is at least tau times that prompt's largest score (`select_per_sample`
with the relative rule); a fact's set over several paraphrases keeps the neurons at least a fraction p
of them select (KN's refining step, the same commonality rule CNL applies to a dataset).

Scores are taken at the positions that predict the answer (`position="answer"`, as CNL scores a capability), or
at the subject's last token (`"subject"`: where KN and ROME place a fact; grad x act there, the activation times
the gradient of log p(answer), one teacher-forced pass per prompt through `neuron_hooks`, not cached).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data.samples import LOGLIK, DatasetSpec, Sample
from ..errors import ParameterError
from ..locate.collect import collect_scores
from ..locate.scorers import ScoreConfig
from ..locate.select import LocateParams, select_per_sample
from ..model.hooks import neuron_hooks
from ..model.loading import LoadedModel
from ..model.neurons import NeuronGrid, NeuronSet
from ..model.positions import answer_span
from ..options import SCORE_POSITIONS
from ..progress import Progress, check_cancel, report
from .facts import FactSet, Paraphrase
from .probe import MAX_ANSWER_TOKENS, MAX_PROMPT_TOKENS

PROMPT_FORMAT = "fact paraphrases: demonstrations + template with the subject"


def paraphrase_dataset(facts: FactSet) -> DatasetSpec:
    """The fact set's paraphrases as a dataset (not registered: it lives as long as the study)."""
    rows = [Sample(p.id, p.text, p.answer, p.answer.strip()) for f in facts.facts for p in facts.paraphrases(f)]
    name = f"facts-{facts.name}-{facts.shots}shot-" + "-".join(r.name for r in facts.relations)
    return DatasetSpec(
        name[:120],
        "Facts with paraphrases",
        "generated (code)",
        LOGLIK,
        PROMPT_FORMAT,
        lambda: rows,
        expected_rows=len(rows),
    )


@dataclass(frozen=True)
class ParaphraseScores:
    """Scores [n, layers, width] of paraphrases (float16, in `ids` order) and their gold log-probabilities."""

    ids: list[str]
    scores: torch.Tensor
    gold_logprob: torch.Tensor
    grid: NeuronGrid
    score_cfg: ScoreConfig  # with its token limits resolved

    def rows(self, ids: Sequence[str]) -> torch.Tensor:
        where = {i: k for k, i in enumerate(self.ids)}
        return self.scores[[where[i] for i in ids]]


def paraphrase_scores(
    lm: LoadedModel,
    facts: FactSet,
    paraphrases: Sequence[Paraphrase],
    method: str = "grad_x_act",
    ig_steps: int = 20,
    *,
    position: str = SCORE_POSITIONS[0],
    batch_size: int | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ParaphraseScores:
    """Per-paraphrase neuron scores on the gold answer (teacher-forced), computed or read from the cache."""
    cfg = ScoreConfig(
        method=method, ig_steps=ig_steps, max_prompt_tokens=MAX_PROMPT_TOKENS, max_answer_tokens=MAX_ANSWER_TOKENS
    )
    if position not in SCORE_POSITIONS:
        raise ParameterError(f"Scoring position must be one of {', '.join(SCORE_POSITIONS)}.")
    if position == "subject":
        if method != "grad_x_act":
            raise ParameterError(
                "Scoring at the subject's last token is grad x act only; choose method grad_x_act "
                "or the answer position."
            )
        return _subject_scores(lm, paraphrases, cfg, progress, cancel)
    table = collect_scores(
        lm,
        paraphrase_dataset(facts),
        [p.id for p in paraphrases],
        cfg,
        batch_size=batch_size,
        use_cache=use_cache,
        progress=progress,
        cancel=cancel,
    )
    return ParaphraseScores(table.sample_ids, table.scores, table.gold_logprob, table.grid, table.cfg or cfg)


def _subject_scores(
    lm: LoadedModel,
    paraphrases: Sequence[Paraphrase],
    cfg: ScoreConfig,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> ParaphraseScores:
    """grad x act at the subject's last token: activation times the gradient of log p(answer) there."""
    from .tracing import subject_positions

    scores = torch.zeros(len(paraphrases), lm.grid.n_layers, lm.grid.width)
    golds = torch.zeros(len(paraphrases))
    with lm.lock:
        for i, p in enumerate(paraphrases):
            check_cancel(cancel, i, len(paraphrases), "prompts")
            prompt, subj = subject_positions(lm, p)
            answer = lm.tokenizer(p.answer, add_special_tokens=False)["input_ids"][:MAX_ANSWER_TOKENS]
            ids = torch.tensor([prompt + answer], device=lm.input_device)
            acts: dict[int, torch.Tensor] = {}

            def keep(layer: int, x: torch.Tensor, _acts=acts):
                if not x.requires_grad:
                    x.requires_grad_(True)
                _acts[layer] = x

            with neuron_hooks(lm.ffn, keep), torch.enable_grad():
                span = answer_span(len(prompt), len(prompt) + len(answer))
                logits = lm.model(input_ids=ids).logits[0, span].float()
                gold = (
                    torch.log_softmax(logits, -1).gather(-1, torch.tensor(answer, device=logits.device)[:, None]).sum()
                )
                layers = sorted(acts)
                grads = torch.autograd.grad(gold, [acts[layer] for layer in layers])
            for layer, g in zip(layers, grads):
                scores[i, layer] = (acts[layer][0, subj[-1]].detach().float() * g[0, subj[-1]].float()).cpu()
            golds[i] = float(gold)
            report(progress, i + 1, len(paraphrases), f"scoring at the subject: {p.id}")
    return ParaphraseScores([p.id for p in paraphrases], scores.half(), golds, lm.grid, cfg)


def kn_masks(scores: torch.Tensor, tau: float, sign: str = "positive") -> torch.Tensor:
    """[n, layers*width] bool: each prompt's Knowledge-Neurons set (score >= tau x the prompt's largest score)."""
    return select_per_sample(scores, LocateParams(rule="relative", tau=tau, sign=sign))


def common_set(scores: torch.Tensor, tau: float, p: float, sign: str = "positive", cap: int | None = None) -> NeuronSet:
    """Neurons that at least a fraction p of these prompts select (KN's refinement; CNL's commonality). With `cap`,
    at most that many of them: those of the highest mean relative score (each prompt's score over its largest, so
    no prompt outweighs the others), so that sets of two sides can be compared at one size (like for like)."""
    grid = NeuronGrid(scores.shape[1], scores.shape[2])
    counts = kn_masks(scores, tau, sign).sum(0)
    flat = torch.nonzero(counts >= p * scores.shape[0] - 1e-9).flatten()
    if cap is not None and flat.numel() > cap:
        signed = scores.reshape(scores.shape[0], -1).float()
        signed = {"negative": -signed, "absolute": signed.abs()}.get(sign, signed)
        top = signed.max(dim=1, keepdim=True).values
        relative = torch.where(top > 0, signed / top.clamp(min=1e-30), torch.zeros_like(signed)).mean(0)
        flat = flat[relative[flat].topk(cap).indices]
    return NeuronSet.from_flat(grid, flat.numpy())


def iou_matrix(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(IoU [n, n], hypergeometric chance IoU [n, n]) of every pair of sets given as [n, N] bool masks.

    IoU of two empty sets is undefined; it is NaN here and left out of every mean (the caller counts them).
    """
    m = masks.float()
    sizes = m.sum(1)
    inter = m @ m.T
    union = sizes[:, None] + sizes[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.tensor(float("nan")))
    expected = sizes[:, None] * sizes[None, :] / masks.shape[1]
    chance_union = sizes[:, None] + sizes[None, :] - expected
    chance = torch.where(chance_union > 0, expected / chance_union.clamp(min=1e-12), torch.tensor(float("nan")))
    return iou, chance

"""What one neuron does: where it fires, on which tokens, and which words its output pushes up or down.

- Activation distribution per dataset: the neuron's value (the input of the down projection) at every
  token of n samples (prompt and gold answer, teacher-forced): firing rate (share of tokens > 0), mean,
  spread and quantiles, and the top samples by their largest activation, with every token's value.
- Vocabulary projection (the logit lens of a neuron's output direction): the neuron's column of the
  down projection, obtained by running the projection on a one-hot input (so 8/4-bit layers work as
  they are, dequantized by their own kernels; a bias cancels out), then the model's final norm and
  unembedding. Top promoted and suppressed tokens, by logit. It is a direction, not an activation:
  it says what the neuron writes when it fires positively, scaled by how strongly it fires.
- Its rank by mean score in each located set that holds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import fields as F
from ..data.samples import DatasetSpec
from ..data.splits import draw_disjoint
from ..errors import NeuronSetError, ParameterError
from ..model.forward import encode_teacher_forced
from ..model.hooks import neuron_hooks
from ..model.loading import LoadedModel
from ..model.neurons import NeuronGrid, NeuronSet
from ..model.tokens import decoded
from ..schema import in_file, result_kind

PROJECTION_METHOD = (
    "final_norm(W_down[:, index]) through the unembedding: the down projection applied to a "
    "one-hot input minus its bias, then the final norm and the LM head (logit lens of the "
    "neuron's output direction)"
)
MAX_TOKENS = 512


@dataclass(frozen=True)
class TokenLogit:
    token: str
    logit: float


@dataclass(frozen=True)
class Example:
    sample_id: str
    tokens: list[str]
    activations: list[float]
    max_activation: float


@dataclass(frozen=True)
class ActivationStats:
    samples: int
    tokens: int
    firing_rate: float
    mean: float
    std: float
    max: float
    quantiles: dict[str, float]


@result_kind(
    "cnl.neuron",
    order=("model", "layer", "index", "vocab_top", "vocab_bottom", "method", "stats", "top_examples", "ranks"),
)
@dataclass
class NeuronReport:
    model: str
    layer: int
    index: int
    vocab_top: list[TokenLogit]
    vocab_bottom: list[TokenLogit]
    stats: dict[str, ActivationStats] = field(default_factory=dict)
    top_examples: list[Example] = field(default_factory=list)
    ranks: dict[str, dict] = field(default_factory=dict)
    method: str = field(default=PROJECTION_METHOD, metadata=in_file(key="projection_method"))


def parse_neuron(text: str) -> tuple[int, int]:
    """'12:345' -> (12, 345)."""
    try:
        layer, index = (int(x) for x in F.NEURON.check(str(text)).split(":"))
    except ValueError as exc:
        raise ParameterError(f"A neuron is written LAYER:INDEX, like 12:345 (got {text!r:.40}).") from exc
    return layer, index


def check_neuron(grid: NeuronGrid, layer: int, index: int) -> None:
    """On a model's grid (before loading: config_grid), so a neuron it does not have never waits for a load."""
    if not 0 <= layer < grid.n_layers or not 0 <= index < grid.width:
        raise NeuronSetError(
            f"Neuron {layer}:{index} does not exist: this model has layers 0..{grid.n_layers - 1} "
            f"and indices 0..{grid.width - 1}."
        )


def output_direction(lm: LoadedModel, layer: int, index: int) -> torch.Tensor:
    """[hidden] the neuron's column of the down projection (works on quantized layers: it runs the layer)."""
    down = lm.ffn.down[layer]
    weight = lm.ffn.down_weight(layer)
    # a quantized layer stores int8/uint8 weights and computes in its compute dtype: feed it half precision
    dtype = weight.dtype if weight.dtype.is_floating_point else torch.float16
    x = torch.zeros(2, lm.grid.width, dtype=dtype, device=weight.device)
    x[0, index] = 1.0
    with torch.no_grad():
        out = down(x)
    return (out[0] - out[1]).float()


def vocab_projection(lm: LoadedModel, layer: int, index: int, k: int = 15) -> tuple[list[TokenLogit], list[TokenLogit]]:
    """Top promoted and suppressed tokens of the neuron's output direction."""
    with lm.lock:  # a model call of the visitor's job, in turn with the others' (hooks of theirs are inert here)
        return _vocab_projection(lm, layer, index, k)


def _vocab_projection(lm: LoadedModel, layer: int, index: int, k: int) -> tuple[list[TokenLogit], list[TokenLogit]]:
    direction = output_direction(lm, layer, index)
    head = lm.model.get_output_embeddings()
    norm = lm.ffn.final_norm
    with torch.no_grad():
        h = direction.view(1, 1, -1)
        if norm is not None:
            h = norm(h.to(norm.weight.device, norm.weight.dtype))
        logits = head(h.to(head.weight.device, head.weight.dtype)).float().view(-1).cpu()
    top, bottom = logits.topk(k), (-logits).topk(k)
    return (
        [TokenLogit(decoded(lm.tokenizer, [int(i)]), float(v)) for v, i in zip(top.values, top.indices)],
        [TokenLogit(decoded(lm.tokenizer, [int(i)]), float(-v)) for v, i in zip(bottom.values, bottom.indices)],
    )


def token_activations(
    lm: LoadedModel, dataset: DatasetSpec, ids: Sequence[str], layer: int, index: int, batch_size: int = 8
) -> list[Example]:
    """The neuron's value at every token (prompt + gold answer, teacher-forced) of each sample."""
    rows = dataset.by_id()
    out: list[Example] = []
    for start in range(0, len(ids), batch_size):
        chunk = [rows[i] for i in ids[start : start + batch_size]]
        batch = encode_teacher_forced(
            lm.tokenizer, [(s.prompt, s.answer) for s in chunk], MAX_TOKENS, MAX_TOKENS, lm.input_device
        )
        seen: list[torch.Tensor] = []

        def hook(_layer: int, x: torch.Tensor, seen: list[torch.Tensor] = seen) -> None:
            seen.append(x[..., index].float().cpu())

        with lm.lock, neuron_hooks(lm.ffn, hook, layers=[layer]), torch.no_grad():
            lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
        values = seen[0]
        for row, sample in enumerate(chunk):
            n = int(batch.attention_mask[row].sum())
            token_ids = batch.input_ids[row, :n].tolist()
            acts = values[row, :n].tolist()
            out.append(Example(sample.id, [decoded(lm.tokenizer, [t]) for t in token_ids], acts, max(acts)))
    return out


def _stats(examples: Sequence[Example]) -> ActivationStats:
    values = np.concatenate([np.asarray(e.activations) for e in examples])
    q = np.quantile(values, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    return ActivationStats(
        len(examples),
        int(values.size),
        float((values > 0).mean()),
        float(values.mean()),
        float(values.std()),
        float(values.max()),
        {f"p{p}": float(v) for p, v in zip((1, 5, 25, 50, 75, 95, 99), q)},
    )


def neuron_ranks(sets: Mapping[str, tuple[NeuronSet, list[tuple[int, int]]]], layer: int, index: int) -> dict:
    """Where the neuron stands in each located set: its rank among the set's neurons listed by mean score."""
    out = {}
    for name, (neurons, by_score) in sets.items():
        flat = layer * neurons.grid.width + index
        if flat not in set(neurons.flat.tolist()):
            continue
        order = [tuple(p) for p in by_score]
        rank = order.index((layer, index)) + 1 if (layer, index) in order else None
        out[name] = {"rank": rank, "of": len(neurons), "listed": len(order)}
    return out


def inspect_neuron(
    lm: LoadedModel,
    layer: int,
    index: int,
    datasets: Sequence[DatasetSpec],
    n: int = 20,
    seed: int = 0,
    top_k: int = 5,
    sets: Mapping[str, tuple[NeuronSet, list[tuple[int, int]]]] | None = None,
) -> NeuronReport:
    """The neuron's vocabulary projection, its activations on n samples of each dataset, and its ranks."""
    check_neuron(lm.grid, layer, index)
    F.INSPECT_N.typed(n)
    top, bottom = vocab_projection(lm, layer, index)
    report = NeuronReport(lm.spec.name, layer, index, top, bottom)
    examples: list[Example] = []
    for spec in datasets:
        ids = draw_disjoint([s.id for s in spec.rows()], [min(n, len(spec.rows()))], seed)[0]
        found = token_activations(lm, spec, ids, layer, index)
        report.stats[spec.name] = _stats(found)
        examples += found
    report.top_examples = sorted(examples, key=lambda e: -e.max_activation)[:top_k]
    report.ranks = neuron_ranks(sets or {}, layer, index)
    return report

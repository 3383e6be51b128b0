"""Causal tracing (ROME, Meng et al. 2022): at which layer does the subject's hidden state carry the fact?

For one prompt: a clean run records every layer's state; then Gaussian noise is added to the subject tokens
where the embedding enters the model (the first decoder layer's input: after any scaling the model does, as
Gemma's x sqrt(width), and OPT's projection), `noise` (3, as ROME) times sigma, the standard deviation of that
input over the subject tokens of the traced prompts (`subject_noise_std`: what the model actually adds, not
its embedding weights, which on Gemma would make the noise 25 times too small); then, one layer at a time,
that layer's clean state is put back at the subject's last token (`restore="last"`) or at every subject
token (`restore="subject"`). Indirect effect of layer l = p(answer | corrupted, l restored) - p(answer |
corrupted). Only informative traces count (`Trace.informative`: the noise at least halved p(answer)).

Sites: `hidden` restores the residual stream after layer l; with a one-token subject, restoring it at an
early layer undoes all the noise, so its curve is a plateau and an arg-max falls anywhere on it. `mlp`
restores the FFN outputs (the down projections' outputs) of a window of layers around l (ROME's MLP trace;
the window scales with depth, `mlp_window`). `attn` restores the attention outputs (each decoder layer's
attention module's output, before it joins the residual stream) over the same window (ROME's attention trace),
through `attention_hooks` here: the adapter table names no attention module, so it is found by the names the
supported architectures give it (ATTENTION_NAMES). The peak statistics that can discriminate (the centre of mass of
the effect curve, the average indirect effect, with intervals over facts and over facts then wordings, a
permutation test across facts) are in tracing_stats.py. Every hook goes through model/hooks.py (`residual_hooks`,
`neuron_hooks`), which gives [rows, tokens, width] on every architecture (OPT flattens its FFN's rows). Each noise
draw runs the corrupted prompt and the L restorations as one batch sharing that draw (paired); draws are seeded.
The tokens before the subject run once and their KV cache serves every row.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ..errors import ParameterError
from ..model.hooks import neuron_hooks, owned_forward_hook, residual_hooks
from ..model.loading import LoadedModel
from ..progress import Progress, check_cancel, report
from ..provenance import stamp
from ..schema import file_form, result_kind
from .facts import FactSet, Paraphrase

RESTORE = ("last", "subject")
# a decoder layer's output (the residual stream), its FFN's output (ROME's MLP trace), its attention's output
SITES = ("hidden", "mlp", "attn")
ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")  # Llama/OPT/Phi, GPT-2/J, NeoX, Falcon
NOISE_SOURCE = "first decoder layer's input (the embedding as the model adds it) at the subject tokens"
INFORMATIVE = 0.5  # a trace counts when the noise leaves at most this share of p(answer)


def mlp_window(n_layers: int) -> int:
    """ROME restores 10 of GPT-2 XL's 48 MLP layers around each layer: about a fifth of the depth (5 of 30), odd."""
    w = max(1, round(n_layers / 6))
    return w if w % 2 else w + 1 if w + 1 <= n_layers else w - 1


def decoder_layers(lm: LoadedModel) -> list:
    """The decoder layers, in order (the modules that hold each down projection, found through the adapter)."""
    return list(lm.ffn.blocks)


def subject_positions(lm: LoadedModel, p: Paraphrase) -> tuple[list[int], list[int]]:
    """(prompt token ids, positions of the tokens that overlap the subject's characters)."""
    enc = lm.tokenizer(p.text, return_offsets_mapping=True, add_special_tokens=True)
    where = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > p.subject_start and a < p.subject_end]
    if not where:
        raise ParameterError(f"The subject of {p.id} is not a token span of its prompt.")
    return list(enc["input_ids"]), where


def subject_noise_std(lm: LoadedModel, paraphrases: Sequence[Paraphrase]) -> float:
    """ROME's sigma: the standard deviation of the first decoder layer's input over the subject tokens."""
    if not paraphrases:
        raise ParameterError("The noise scale is measured on prompts: give at least one.")
    seen: list[torch.Tensor] = []
    with lm.lock, torch.no_grad():
        for p in paraphrases:
            prompt, subj = subject_positions(lm, p)
            ids = torch.tensor([prompt[: subj[-1] + 1]], device=lm.input_device)

            def grab(_layer, h, _s=subj):
                seen.append(h[0, _s].float().flatten().cpu())

            with residual_hooks(lm.ffn, grab, layers=[0], where="input"):
                lm.model(input_ids=ids)
    return float(torch.cat(seen).std())


@file_form(computed={"peak_layer": "peak_layer", "centre_of_mass": "centre_of_mass", "informative": "informative"})
@dataclass(frozen=True)
class Trace:
    """One prompt's trace: p(answer) clean, corrupted, and with each layer restored (mean over noise draws)."""

    paraphrase: str
    p_clean: float
    p_corrupt: float
    p_restored: list[float]  # [layers]
    subject_tokens: int

    @property
    def peak_layer(self) -> int:
        return int(max(range(len(self.p_restored)), key=lambda i: self.p_restored[i]))

    @property
    def effect(self) -> list[float]:
        """Indirect effect per layer: p restored minus p corrupted."""
        return [p - self.p_corrupt for p in self.p_restored]

    @property
    def restored_share(self) -> list[float]:
        """Per layer, the share of what the noise took that restoring it gives back (0 where nothing was taken)."""
        taken = self.p_clean - self.p_corrupt
        return [e / taken if taken > 0 else 0.0 for e in self.effect]

    @property
    def centre_of_mass(self) -> float | None:
        """The effect curve's centre of mass over layers (positive effects): unlike an arg-max, it moves with the
        whole curve, so a plateau or a tie in the 4th decimal does not decide it. None: no positive effect."""
        pos = [max(e, 0.0) for e in self.effect]
        total = sum(pos)
        return sum(layer * e for layer, e in enumerate(pos)) / total if total > 0 else None

    @property
    def informative(self) -> bool:
        """The noise at least halved p(answer): otherwise nothing is left to restore and the peak is noise."""
        return self.p_corrupt <= INFORMATIVE * self.p_clean


def _answer_logprob(logits: torch.Tensor, answer: list[int], first: int) -> torch.Tensor:
    """[rows] log p(answer tokens) from logits over positions first-1 .. (teacher-forced, the tail's columns)."""
    logp = torch.log_softmax(logits[:, first - 1 : first - 1 + len(answer)].float(), -1)
    idx = torch.tensor(answer, device=logits.device)[None, :, None].expand(logits.shape[0], -1, 1)
    return logp.gather(-1, idx)[..., 0].sum(-1)


def attention_modules(lm: LoadedModel) -> list[torch.nn.Module]:
    """Each decoder layer's attention module (the first child named as in ATTENTION_NAMES)."""
    found = []
    for layer, block in enumerate(decoder_layers(lm)):
        module = next(
            (getattr(block, n) for n in ATTENTION_NAMES if isinstance(getattr(block, n, None), torch.nn.Module)), None
        )
        if module is None:
            raise ParameterError(f"No attention module found in decoder layer {layer} (looked for {ATTENTION_NAMES}).")
        found.append(module)
    return found


@contextmanager
def attention_hooks(lm: LoadedModel, fn: Callable) -> Iterator[None]:
    """Call fn(layer, a[rows, tokens, hidden]) on every attention module's output; a returned tensor replaces it.
    Removed on exit; they act only in this thread's passes."""
    handles = []
    try:
        for layer, module in enumerate(attention_modules(lm)):

            def hook(_module, _args, out, _layer=layer):
                a = out[0] if isinstance(out, tuple) else out
                new = fn(_layer, a)
                if new is None:
                    return None
                return (new, *out[1:]) if isinstance(out, tuple) else new

            handles.append(owned_forward_hook(module, hook))
        yield
    finally:
        for h in handles:
            h.remove()


def _site_hooks(lm: LoadedModel, site: str, fn):
    """Hooks that call fn(layer, t[rows, tokens, width]) at the traced site of every layer."""
    if site == "hidden":
        return residual_hooks(lm.ffn, fn)
    return neuron_hooks(lm.ffn, None, output=fn) if site == "mlp" else attention_hooks(lm, fn)


def trace(
    lm: LoadedModel,
    p: Paraphrase,
    noise_std: float,
    draws: int = 3,
    seed: int = 0,
    noise: float = 3.0,
    restore: str = "last",
    site: str = "hidden",
    window: int | None = None,
) -> Trace:
    """Causal trace of one prompt (see the module doc); the model is held for the whole trace."""
    if restore not in RESTORE:
        raise ParameterError(f"Restore must be one of {', '.join(RESTORE)}.")
    if site not in SITES:
        raise ParameterError(f"The traced site must be one of {', '.join(SITES)}.")
    prompt, subj = subject_positions(lm, p)
    answer = lm.tokenizer(p.answer, add_special_tokens=False)["input_ids"]
    ids = prompt + answer
    cut = subj[0]  # columns before the subject: shared by every row, run once into a KV cache
    n_layers = lm.grid.n_layers
    half = 0 if site == "hidden" else (window or mlp_window(n_layers)) // 2
    # rows that restore layer j: those whose window (layer l +- half) holds j; row l + 1 restores around layer l
    restored_by = [torch.tensor([k + 1 for k in range(n_layers) if abs(k - j) <= half]) for j in range(n_layers)]
    where = [subj[-1]] if restore == "last" else subj
    tail_where = torch.tensor([w - cut for w in where])
    tail_subj = torch.tensor([s - cut for s in subj])
    rows = n_layers + 1  # row 0: corrupted; row l + 1: layer l restored
    with lm.lock, torch.no_grad():
        full = torch.tensor([ids], device=lm.input_device)
        clean: dict[int, torch.Tensor] = {}  # layer -> its state at the restored tokens

        def record(layer, t):
            clean[layer] = t[0, where].clone()

        with _site_hooks(lm, site, record):
            clean_logits = lm.model(input_ids=full).logits
        p_clean = float(_answer_logprob(clean_logits, answer, len(prompt)).exp()[0])
        prefix = lm.model(input_ids=full[:, :cut], use_cache=True).cache if cut else None
        tail = full[:, cut:].expand(rows, -1)
        gen = torch.Generator().manual_seed(seed)

        def put_back(layer, t):
            t = t.clone()
            r = restored_by[layer].to(t.device)
            t[r[:, None], tail_where.to(t.device)[None, :]] = clean[layer].to(t.device, t.dtype)
            return t

        totals = torch.zeros(rows)
        for _ in range(draws):
            shared = torch.randn(len(subj), _width(lm), generator=gen) * noise * noise_std

            def add_noise(_layer, h, _n=shared):
                h = h.clone()
                h[:, tail_subj.to(h.device)] += _n.to(h.device, h.dtype)
                return h

            cache = None
            if prefix is not None:
                cache = copy.deepcopy(prefix)
                cache.batch_repeat_interleave(rows)
            with residual_hooks(lm.ffn, add_noise, layers=[0], where="input"), _site_hooks(lm, site, put_back):
                logits = lm.model(input_ids=tail, cache=cache, use_cache=cache is not None).logits
            totals += _answer_logprob(logits, answer, len(prompt) - cut).exp().cpu()
        mean = (totals / draws).tolist()
    return Trace(p.id, p_clean, mean[0], mean[1:], len(subj))


def _width(lm: LoadedModel) -> int:
    """The residual stream's width (the first decoder layer's input)."""
    return int(lm.model.config.get_text_config().hidden_size)


@result_kind(
    "cnl.knowledge.tracing",
    computed={  # for readers of the file, never read back
        "noise_source": lambda r: NOISE_SOURCE,
        "informative_rule": lambda r: f"p(answer) corrupted <= {INFORMATIVE} x clean",
        "informative": lambda r: len(r.informative),
        "mean_effect": "mean_effect",
    },
    order=(
        *("model", "facts", "site", "restore", "noise", "noise_std", "noise_source", "window", "draws", "seed"),
        *("informative_rule", "informative", "agreement", "mean_effect", "effect_curve", "centre_of_mass", "traces"),
    ),
)
@dataclass
class TracingResult:
    """Traces of every paraphrase of the chosen facts, and the statistics of tracing_stats.py over them."""

    model: str
    facts: str
    site: str
    restore: str
    noise: float
    noise_std: float
    draws: int
    seed: int
    traces: list[Trace]
    agreement: dict  # group -> {"share", "ci", "pairs", "facts"}; see tracing_stats.peak_agreement
    window: int = 1
    effect_curve: dict = field(default_factory=dict)  # tracing_stats.effect_curve
    centre_of_mass: dict = field(default_factory=dict)  # tracing_stats.centre_of_mass_test
    created: str | None = None
    versions: dict = field(default_factory=dict)

    def peaks(self) -> dict[str, int]:
        return {t.paraphrase: t.peak_layer for t in self.traces}

    @property
    def informative(self) -> list[Trace]:
        return [t for t in self.traces if t.informative]

    def mean_effect(self) -> list[float]:
        """Per layer, the mean over informative prompts of the restored share of what the noise took."""
        rows = [t.restored_share for t in self.informative]
        return [sum(r[layer] for r in rows) / len(rows) for layer in range(len(rows[0]))] if rows else []


def run_tracing(
    lm: LoadedModel,
    facts_set: FactSet,
    fact_ids: list[str] | None = None,
    *,
    site: str = "hidden",
    restore: str = "last",
    draws: int = 3,
    noise: float = 3.0,
    seed: int = 0,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> TracingResult:
    """Trace every paraphrase of the chosen facts (default: all); statistics over the informative traces."""
    from .tracing_stats import centre_of_mass_test, effect_curve, peak_agreement

    facts = facts_set.subset(fact_ids) if fact_ids is not None else list(facts_set.facts)
    paraphrases = [p for f in facts for p in facts_set.paraphrases(f)]
    if not paraphrases:
        raise ParameterError("No facts to trace.")
    std = subject_noise_std(lm, paraphrases)
    traces = []
    for k, p in enumerate(paraphrases):
        check_cancel(cancel, k, len(paraphrases), "prompts")
        traces.append(trace(lm, p, std, draws, seed + k, noise, restore, site))
        report(progress, k + 1, len(paraphrases), f"causal tracing ({site}): {p.id}")
    fact_of = {p.id: p.fact_id for p in paraphrases}
    relation_of = {f.id: f.relation for f in facts}
    window = 1 if site == "hidden" else mlp_window(lm.grid.n_layers)
    return TracingResult(
        lm.spec.name,
        facts_set.name,
        site,
        restore,
        noise,
        std,
        draws,
        seed,
        traces,
        peak_agreement(traces, fact_of, relation_of, seed=seed),
        window,
        effect_curve(traces, fact_of, seed=seed),
        centre_of_mass_test(
            traces, fact_of, relation_of, seed=seed, template_of={p.id: p.template for p in paraphrases}
        ),
        **stamp(),
    )

"""ROME's keys: the second moment of the down projection's input on generic text, and a subject's averaged key.

ROME's rank-one edit W' = W + (v* - W k*) (C^-1 k*)^T / ((C^-1 k*)^T k*) needs two things besides the value:
- C = E[k k^T], the uncentred covariance of the keys (the down projection's inputs, which are this library's
  neurons) over generic text: ROME used about 100k tokens of Wikipedia; offline, the passages of the built-in
  BoolQ set (Wikipedia paragraphs) serve, `COVARIANCE_TOKENS` tokens by default (cached per model and layer). A
  small ridge (a share of the mean diagonal) keeps C invertible when there are fewer tokens than neurons' directions;
- k*, the key at the subject's last token averaged over several contexts: the edit prompt itself, and the
  query after short prefixes of that same text (ROME generated its prefixes with the model; fixed text serves).
Every read goes through `neuron_hooks`, so it is [rows, tokens, width] on every architecture.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..data.samples import get_dataset
from ..errors import ParameterError
from ..model.hooks import neuron_hooks
from ..model.loading import LoadedModel
from ..output_files import atomic_target
from ..paths import cache_root
from .facts import Paraphrase
from .tracing import subject_positions

COVARIANCE_TEXT = "boolq"  # Wikipedia passages, built in
COVARIANCE_TOKENS = 8_000  # over 5 keys per direction of SmolLM2's 1,536 neurons
CHUNK_TOKENS = 128
RIDGE = 1e-2  # added to C's diagonal, as a share of its mean diagonal
_CACHE: dict[tuple, dict[int, torch.Tensor]] = {}
_CACHE_LOCK = threading.Lock()


def _texts() -> list[str]:
    """The generic text's passages (prompts up to their question), in the dataset's order."""
    return [s.prompt.split("\n")[0] for s in get_dataset(COVARIANCE_TEXT).rows()]


class _Deep(Exception):
    """Raised after the deepest layer a pass needs: the layers above it would compute nothing used."""


def _cache_file(lm: LoadedModel, layer: int, tokens: int) -> Path:
    name = f"{lm.fingerprint}-{lm.grid.n_layers}x{lm.grid.width}-{COVARIANCE_TEXT}-{tokens}-{CHUNK_TOKENS}-L{layer}"
    return cache_root() / "key_covariance" / f"{name}.safetensors"


def _second_moments(lm: LoadedModel, layers: list[int], tokens: int) -> dict[int, torch.Tensor]:
    """E[k k^T] per layer over the first `tokens` tokens of the generic text, in chunks of CHUNK_TOKENS; each pass
    stops after the deepest layer asked for."""
    sums = {layer: torch.zeros(lm.grid.width, lm.grid.width, dtype=torch.float64) for layer in layers}
    count, deepest = 0, max(layers)

    def add(layer: int, x: torch.Tensor):
        k = x[0].detach().float().cpu()
        sums[layer] += (k.T @ k).double()
        if layer == deepest:
            raise _Deep

    with lm.lock, torch.no_grad(), neuron_hooks(lm.ffn, add, layers=layers):
        for text in _texts():
            ids = lm.tokenizer(text, add_special_tokens=True)["input_ids"][: min(CHUNK_TOKENS, tokens - count)]
            if not ids:
                break
            try:
                lm.model(input_ids=torch.tensor([ids], device=lm.input_device))
            except _Deep:
                pass
            count += len(ids)
    return {layer: (sums[layer] / max(count, 1)).float() for layer in layers}


def key_covariance(
    lm: LoadedModel, layers: Sequence[int], tokens: int = COVARIANCE_TOKENS, *, use_cache: bool = True
) -> dict[int, torch.Tensor]:
    """Per layer, C = E[k k^T] [width, width] float32 over `tokens` tokens of generic text, with the ridge added.
    Kept for the process, and (with `use_cache`) in the cache folder, per model and layer."""
    if tokens < 1:
        raise ParameterError("The key covariance needs at least one token of text.")
    key = (lm.fingerprint, id(lm.model), tokens)
    with _CACHE_LOCK:
        have = _CACHE.setdefault(key, {})
        missing = [layer for layer in dict.fromkeys(layers) if layer not in have]
    if use_cache:
        for layer in list(missing):
            path = _cache_file(lm, layer, tokens)
            if path.is_file():
                have[layer] = load_file(str(path))["moment"]
                missing.remove(layer)
    if missing:
        for layer, moment in _second_moments(lm, missing, tokens).items():
            have[layer] = moment
            if use_cache:
                with atomic_target(_cache_file(lm, layer, tokens)) as tmp:
                    save_file({"moment": moment.contiguous()}, str(tmp))
    out = {}
    for layer in layers:
        c = have[layer].clone()
        c += RIDGE * c.diagonal().mean().clamp(min=1e-12) * torch.eye(c.shape[0])
        out[layer] = c
    return out


def _prefixes(n: int) -> list[str]:
    """n short contexts: the first words of the generic text's first passages, each ending a sentence."""
    out = []
    for text in _texts()[:n]:
        out.append(" ".join(text.split()[:8]).rstrip(".,;:") + ". ")
    return out


def key_texts(p: Paraphrase, prefixes: int) -> list[tuple[str, int]]:
    """(text, subject end in characters) whose key at the subject's last token is averaged: the edit prompt (with
    its demonstrations) and its query line after each of `prefixes` short contexts."""
    query = p.text.rfind("\n", 0, p.subject_start) + 1
    out = [(p.text[: p.subject_end], p.subject_end)]
    for prefix in _prefixes(prefixes):
        text = prefix + p.text[query : p.subject_end]
        out.append((text, len(text)))
    return out


def averaged_key(lm: LoadedModel, p: Paraphrase, layer: int, prefixes: int) -> torch.Tensor:
    """k*: the down projection's input at the subject's last token, averaged over the contexts of `key_texts`."""
    keys = []
    for text, end in key_texts(p, prefixes):
        ids, subj = subject_positions(
            lm, Paraphrase(p.fact_id, p.template, text, p.answer, end - (p.subject_end - p.subject_start), end)
        )
        seen: dict[str, torch.Tensor] = {}

        def read(_layer, x, _pos=subj[-1], _seen=seen):
            _seen["k"] = x[0, _pos].detach().float().clone()

        with lm.lock, torch.no_grad(), neuron_hooks(lm.ffn, read, layers=[layer]):
            lm.model(input_ids=torch.tensor([ids[: subj[-1] + 1]], device=lm.input_device))
        keys.append(seen["k"])
    return torch.stack(keys).mean(0)

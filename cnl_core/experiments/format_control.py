"""The demo both ways: answer format and answer content, apart.

On `add1` the first answer token is a bare space (the format) and the second the digits (the content).
The demo's neurons are located on both and its accuracy needs both, so "48% -> 5%" may be a broken format
rather than broken addition. This runs the demo on `add1` and on `add1_content` (the space in the prompt:
only the digits are scored and generated), and measures what zeroing the `add1` set does to the format
token itself: p(" ") after the demo's few-shot test prompts, unmodified, with the located neurons zeroed, and with as
many random ones zeroed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from ..evaluate.accuracy import EvalConfig, fewshot_prefix
from ..evaluate.controls import control_seed, random_like
from ..evaluate.stats import bootstrap_ci
from ..model.hooks import Intervention, intervene
from ..model.loading import LoadedModel
from ..model.neurons import NeuronGrid, NeuronSet
from ..progress import Progress
from ..schema import result_kind
from .demo import DEMO, DemoPreset, DemoResult, run_demo
from .evaluate import eval_samples


@result_kind("cnl.format_control")
@dataclass
class FormatControlResult:
    with_format: DemoResult  # the demo as it was: located and scored on " " + digits
    content_only: DemoResult  # located and scored on the digits, the space given in the prompt
    format_token: dict  # p(" ") on the with-format demo's test prompts: unmodified, zeroed, random zeroed
    shared_neurons: int  # neurons in both located sets


def format_token_probability(
    lm: LoadedModel,
    prompts: list[str],
    token: str,
    ivs: dict[str, Intervention | None],
    draws: int = 1000,
    seed: int = 0,
) -> dict:
    """Mean p(token | prompt) [95% interval over prompts] under each named intervention."""
    from ..knowledge.probe import answer_stats

    out = {}
    for name, iv in ivs.items():
        with intervene(lm, iv):
            p = answer_stats(lm, [(x, token) for x in prompts]).prob.numpy()
        out[name] = {"p": float(p.mean()), "ci": bootstrap_ci(p, draws, seed)}
    return out


def run_format_control(
    lm: LoadedModel,
    preset: DemoPreset = DEMO,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> FormatControlResult:
    """The demo on the dataset and on its content-only variant, and the format token under the first set."""
    with_format = run_demo(lm, preset, progress=progress, cancel=cancel)
    content = run_demo(lm, replace(preset, dataset=preset.dataset + "_content"), progress=progress, cancel=cancel)
    grid = NeuronGrid(lm.grid.n_layers, lm.grid.width)
    located = NeuronSet.from_pairs(grid, with_format.neurons)
    cfg = EvalConfig(num_fewshot=preset.fewshot, batch_size=preset.eval_n)  # the demo's own test prompts and shots
    _, samples, shots = eval_samples(preset.dataset, preset.eval_n, cfg, preset.seed, with_format.located_ids)
    prompts = [fewshot_prefix(shots) + s.prompt for s in samples]
    control = random_like(located, control_seed(preset.seed), located)
    fmt = format_token_probability(
        lm,
        prompts,
        " ",
        {
            "unmodified": None,
            "located zeroed": Intervention(located, "zero"),
            "random zeroed": Intervention(control, "zero"),
        },
        seed=preset.seed,
    )
    content_set = NeuronSet.from_pairs(grid, content.neurons)
    shared = int(np.intersect1d(located.flat, content_set.flat).size)
    return FormatControlResult(with_format, content, fmt, shared)

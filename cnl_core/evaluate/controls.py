"""Random control sets: what an intervention on as many neurons, chosen by chance, does.

A control has the located set's count in every layer. By default it avoids the located neurons
themselves (with 8 located neurons, 1.4% of unrestricted draws hit one; more with large sets), so the
control measures "as many other neurons", not a diluted copy of the intervention.

Every control's seed comes from `control_seed` (why: the CLI drew steering's control from `seed + 1000` and the
dashboard from `1000`, and "+1000" was written out in five modules, "+3000" in the matrix; one function keeps the
same run drawing the same control wherever it is started). The offsets are the ones every stored result was
drawn with, so earlier results stay reproducible.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np

from ..errors import ParameterError
from ..model.hooks import Intervention
from ..model.neurons import NeuronSet

# What a control is drawn for: the d-th control of an evaluation (the demo, a harness run and steering too), the
# control row beside the matrix's k-th located set (kept apart from an evaluation's draws with the same seed), the
# random arm of fine-tuning, or the d-th control of the k-th fact of the knowledge reliability study (`group` k).
# The offsets are the ones stored results were drawn with: a purpose keeps its numbers, never a new offset.
Purpose = Literal["control", "matrix_row", "finetune", "fact"]
_OFFSETS: dict[str, int] = {"control": 1000, "matrix_row": 3000, "finetune": 2000, "fact": 0}
GROUP_STRIDE = 1000  # the reliability study's facts: fact k's draws start at seed + 1000 * k


def control_seed(seed: int, draw: int = 0, purpose: Purpose = "control", group: int = 0) -> int:
    """The seed of a run's `draw`-th random control (draw k of the matrix: its k-th located set's row; `group` k:
    the reliability study's k-th fact)."""
    return seed + _OFFSETS[purpose] + GROUP_STRIDE * group + draw


def random_like(neurons: NeuronSet, seed: int, exclude: NeuronSet | None = None) -> NeuronSet:
    """A random set with the same number of neurons in every layer, none of them in `exclude`."""
    rng = np.random.default_rng(seed)
    width = neurons.grid.width
    avoid = exclude.by_layer() if exclude is not None else {}
    flat = []
    for layer, count in enumerate(neurons.per_layer_counts()):
        if not count:
            continue
        pool = np.setdiff1d(np.arange(width), avoid.get(layer, []))
        if count > len(pool):
            raise ParameterError(
                f"Layer {layer} has too few neurons outside the located ones for a control of "
                f"{count}; allow the control to overlap the located set."
            )
        flat.append(layer * width + rng.choice(pool, size=count, replace=False))
    return NeuronSet.from_flat(neurons.grid, np.concatenate(flat) if flat else [])


def controlled(
    iv: Intervention, seed: int, draw: int = 0, purpose: Purpose = "control", may_overlap: bool = False
) -> Intervention:
    """The same intervention on a random control set: as many neurons per layer, drawn with `control_seed`, none
    of the intervened ones unless `may_overlap`."""
    avoid = None if may_overlap else iv.neurons
    return replace(iv, neurons=random_like(iv.neurons, control_seed(seed, draw, purpose), avoid))

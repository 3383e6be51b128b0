"""Random control sets: what an intervention on as many neurons, chosen by chance, does.

A control has the located set's count in every layer. By default it avoids the located neurons
themselves (with 8 located neurons, 1.4% of unrestricted draws hit one; more with large sets), so the
control measures "as many other neurons", not a diluted copy of the intervention.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..model.neurons import NeuronSet


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

"""Random control sets: what an intervention on as many neurons, chosen by chance, does."""

from __future__ import annotations

import numpy as np

from ..model.neurons import NeuronSet


def random_like(neurons: NeuronSet, seed: int) -> NeuronSet:
    """A random set with the same number of neurons in every layer (the control)."""
    rng = np.random.default_rng(seed)
    width = neurons.grid.width
    flat = [layer * width + rng.choice(width, size=count, replace=False)
            for layer, count in enumerate(neurons.per_layer_counts()) if count]
    return NeuronSet.from_flat(neurons.grid, np.concatenate(flat) if flat else [])

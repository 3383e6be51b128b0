"""Neurons as data: a grid of layers x width, and immutable sets of (layer, index) on it."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import NeuronSetError, ParameterError

MAX_GRID_NEURONS = 10**9  # no supported model comes near; a grid over this is a corrupt file


@dataclass(frozen=True)
class NeuronGrid:
    """layers x width neurons; flat id = layer * width + index."""

    n_layers: int
    width: int

    def __post_init__(self):  # a grid read from a file must be a plausible model
        if self.n_layers < 1 or self.width < 1 or self.n_layers * self.width > MAX_GRID_NEURONS:
            raise NeuronSetError(
                f"A grid of {self.n_layers} x {self.width} neurons is impossible "
                f"(each must be at least 1, and at most {MAX_GRID_NEURONS:,} neurons in all)."
            )

    @property
    def total(self) -> int:
        return self.n_layers * self.width

    def as_dict(self) -> dict:
        return {"n_layers": self.n_layers, "width": self.width, "total": self.total}

    def check_on(self, model: NeuronGrid, what: str = "The neurons") -> None:
        """Neurons on this grid used with a model of grid `model`: refused unless the two are the same (the one
        check every caller makes: the CLI, the dashboard, an intervention, a study)."""
        if self != model:
            raise ParameterError(
                f"{what} were located on a {self.n_layers} x {self.width} grid, but this model has "
                f"{model.n_layers} x {model.width}: load the model they were located on."
            )


@dataclass(frozen=True)
class NeuronSet:
    """An immutable set of neurons on a grid, stored as sorted flat ids."""

    grid: NeuronGrid
    flat: np.ndarray  # int64, sorted, unique

    @staticmethod
    def from_flat(grid: NeuronGrid, flat: Sequence[int] | np.ndarray) -> NeuronSet:
        arr = np.unique(np.asarray(flat, dtype=np.int64))
        if arr.size and (arr[0] < 0 or arr[-1] >= grid.total):
            raise NeuronSetError(f"Neuron ids out of range for a {grid.n_layers} x {grid.width} grid.")
        return NeuronSet(grid, arr)

    @staticmethod
    def from_pairs(grid: NeuronGrid, pairs: Sequence[Sequence[int]]) -> NeuronSet:
        """Build from [layer, index] pairs, rejecting any the grid does not have."""
        if not isinstance(pairs, (list, tuple)):
            raise NeuronSetError("Neurons must be a list of [layer, index] pairs.")
        flat = []
        for pair in pairs:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(_integral(v) for v in pair):
                raise NeuronSetError(f"A neuron must be a [layer, index] pair of whole numbers, got {str(pair)[:40]}.")
            layer, index = int(pair[0]), int(pair[1])
            if not (0 <= layer < grid.n_layers):
                raise NeuronSetError(f"Layer {layer} does not exist (the model has layers 0..{grid.n_layers - 1}).")
            if not (0 <= index < grid.width):
                raise NeuronSetError(f"Neuron index {index} does not exist (layers have {grid.width} neurons).")
            flat.append(layer * grid.width + index)
        return NeuronSet.from_flat(grid, flat)

    def __len__(self) -> int:
        return int(self.flat.size)

    def pairs(self) -> list[list[int]]:
        return [[int(f // self.grid.width), int(f % self.grid.width)] for f in self.flat]

    def by_layer(self) -> dict[int, np.ndarray]:
        layers = self.flat // self.grid.width
        return {int(layer): self.flat[layers == layer] % self.grid.width for layer in np.unique(layers)}

    def per_layer_counts(self) -> list[int]:
        return np.bincount(self.flat // self.grid.width, minlength=self.grid.n_layers).tolist()

    def mask(self) -> torch.Tensor:
        m = torch.zeros(self.grid.total, dtype=torch.bool)
        m[torch.from_numpy(self.flat)] = True
        return m.view(self.grid.n_layers, self.grid.width)


def _integral(value: object) -> bool:
    """An integer (Python's or numpy's, or a float with nothing after the point), and not a bool."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)

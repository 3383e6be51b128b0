"""The data layer: samples and the dataset registry, built-in and Hub datasets, uploads, splits.

Importing it registers the built-in and Hub datasets.
"""

from . import builtin, generated, hub  # noqa: F401  (registration)

# isort: split
from . import format_control  # noqa: F401  (registers variants of the generated datasets: after them)
from .samples import DatasetSpec, Sample, get_dataset, list_datasets, register_dataset

__all__ = ["DatasetSpec", "Sample", "get_dataset", "list_datasets", "register_dataset"]

"""The in-memory model cache shared by every user of one process: CLI steps, dashboard visitors, threads.

Loading the same spec twice returns the same object; a lock makes concurrent first loads
wait for one another instead of loading twice. At most `capacity` models stay in memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .loading import LoadedModel, ModelSpec, load_model
from .memory import Workload


class ModelCache:
    def __init__(self, capacity: int = 2):
        self.capacity = capacity
        self._models: OrderedDict[ModelSpec, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: ModelSpec | str, work: Workload | None = None) -> LoadedModel:
        """The model of spec; a first load plans its memory for `work` (see load_model)."""
        spec = ModelSpec(name=spec) if isinstance(spec, str) else spec
        with self._lock:
            if spec in self._models:
                self._models.move_to_end(spec)
                return self._models[spec]
            lm = load_model(spec, work)
            self._models[spec] = lm
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return lm

    def loaded(self) -> list[ModelSpec]:
        return list(self._models)


MODELS = ModelCache()

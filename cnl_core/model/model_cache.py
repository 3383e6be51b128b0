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
        self._lock = threading.Lock()  # guards the two dicts only, never held during a load
        self._loading: dict[ModelSpec, threading.Lock] = {}

    def get(self, spec: ModelSpec | str, work: Workload | None = None) -> LoadedModel:
        """The model of spec, loading it if needed; a first load plans its memory for `work` (see load_model).

        A load (seconds to minutes, or a slow Hub look-up) holds only that spec's own lock, so other
        visitors reach the models already loaded at once; visitors asking for the same new model wait
        for one load. The spec's lock leaves `_loading` only in the step that stores the model, so no
        newcomer can start a second load of it (after a failed load the lock stays: the next try waits
        its turn)."""
        spec = ModelSpec(name=spec) if isinstance(spec, str) else spec
        with self._lock:
            if spec in self._models:
                self._models.move_to_end(spec)
                return self._models[spec]
            loading = self._loading.setdefault(spec, threading.Lock())
        with loading:
            with self._lock:
                if spec in self._models:
                    self._models.move_to_end(spec)
                    return self._models[spec]
            lm = load_model(spec, work)
            with self._lock:
                self._models[spec] = lm
                self._loading.pop(spec, None)
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            return lm

    def peek(self, spec: ModelSpec) -> LoadedModel | None:
        """The model if it is loaded already; never loads."""
        with self._lock:
            return self._models.get(spec)

    def loaded(self) -> list[ModelSpec]:
        with self._lock:
            return list(self._models)


MODELS = ModelCache()

"""Identical work done once: finished results kept on disk by what they were computed from, and one run shared by
everyone who asks for the same work while it runs.

Why: a workshop points thirty people at one lab. Six visitors pressing "Run the demo" at once waited in one line,
the last 23 minutes, for six copies of the same computation with the same seed. Here the first asks and computes;
those who ask while it runs wait for that run (not for a copy of it in the queue); those who ask later get the
stored result at once, without the model.

An entry's key is a hash of everything its numbers depend on: the kind of work, the model's weight fingerprint and
precision, the datasets' content, the sample ids, the neurons, the intervention, every setting, and the code
version (a hash of this package's source: an upgrade never serves what the new code would not give). Entries sit
beside the score cache (`<cache>/results/<kind>/<key>.json`), each written atomically, with a checksum over
everything read back; a damaged entry is set aside and computed again with a note. A failure to write one is a
note, never a failed run. `python -m cnl_core cache list|clear` shows and removes them with the score cache's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..data.samples import DatasetSpec, get_dataset
from ..errors import Cancelled, CNLError, ResultFileError
from ..model.loading import LoadedModel
from ..model.neurons import NeuronSet
from ..output_files import atomic_write
from ..paths import REPO_ROOT, cache_root
from ..serialize import from_fields, to_fields
from .json_io import dumps

T = TypeVar("T")
log = logging.getLogger("cnl.results")
MAX_ENTRY_BYTES = 64 * 2**20
WAIT_STEP_S = 0.25  # how often a visitor waiting for another's run checks their own Cancel


def results_root() -> Path:
    return cache_root() / "results"


@cache
def code_version() -> str:
    """A hash of the package's own source files: results computed by other code are never served."""
    h = hashlib.sha256()
    package = REPO_ROOT / "cnl_core"
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def model_identity(lm: LoadedModel) -> dict:
    """A model in a key: its name, revision, weights' fingerprint and precision."""
    return {
        "name": lm.spec.name,
        "revision": lm.spec.revision,
        "weights": lm.fingerprint,
        "dtype": lm.dtype,
        "quantization": lm.quantization,
    }


def data_identity(dataset: DatasetSpec | str) -> dict:
    """A dataset in a key: its name and a hash of its content."""
    spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
    return {"dataset": spec.name, "content": spec.fingerprint()}


def neurons_identity(neurons: NeuronSet) -> str:
    """A neuron set in a key: a hash of its grid and its neurons' ids."""
    text = json.dumps([neurons.grid.n_layers, neurons.grid.width, neurons.flat.tolist()])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def result_key(kind: str, params: dict) -> str:
    """The entry's name: a hash of the kind, every parameter (canonical JSON) and the code version."""
    text = json.dumps({"kind": kind, "params": params, "code": code_version()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _checksum(entry: dict) -> str:
    return hashlib.sha256(
        json.dumps({k: v for k, v in entry.items() if k != "checksum"}, sort_keys=True).encode()
    ).hexdigest()


@dataclass
class Served(Generic[T]):
    """A result and where it came from: `computed` here, `shared` (another visitor's run of the same work, waited
    for), or `stored` (read from the cache); notes say what went wrong with the cache, if anything."""

    value: T
    source: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    key: str = ""  # the entry's name: a link to it (`?result=kind/key`) opens it for anyone, from the cache


class ResultCache:
    """Finished results by key, on disk, with the runs in progress shared between threads."""

    def __init__(self, root: Path | None = None):
        self._root = root
        self._lock = threading.Lock()
        self._running: dict[str, Future] = {}

    @property
    def root(self) -> Path:
        return self._root or results_root()

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.json"

    def read(self, kind: str, params: dict, result_type: type[T], notes: list[str] | None = None) -> T | None:
        """The stored result for this work, or None (absent, or damaged: set aside with a note)."""
        return self.read_key(kind, result_key(kind, params), result_type, notes)

    def read_key(self, kind: str, key: str, result_type: type[T], notes: list[str] | None = None) -> T | None:
        """The stored result of this kind under this key (a shared link names both), or None; a kind or key that is
        not a plain name is never a path."""
        if not (
            isinstance(kind, str)
            and kind.replace("_", "").isalnum()
            and len(kind) <= 40
            and isinstance(key, str)
            and key.isalnum()
            and len(key) <= 64
        ):
            return None
        path = self.path(kind, key)
        if not path.is_file() or path.is_symlink():
            return None
        try:
            if path.stat().st_size > MAX_ENTRY_BYTES:
                raise ResultFileError("larger than any result")
            entry = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(entry, dict) or entry.get("checksum") != _checksum(entry) or entry.get("key") != key:
                raise ResultFileError("its checksum or key does not match")
            return from_fields(result_type, entry["payload"])
        except (OSError, ValueError, RecursionError, ResultFileError) as exc:
            self._set_aside(path, exc, notes)
            return None

    def write(self, kind: str, params: dict, value: Any, notes: list[str] | None = None) -> None:
        """Store a result; a failure to write is a note (the run's result stands)."""
        key = result_key(kind, params)
        entry = {
            "key": key,
            "kind": kind,
            "params": params,
            "code": code_version(),
            "created": time.time(),
            "payload": to_fields(value),
        }
        entry["checksum"] = _checksum(json.loads(dumps(entry)))  # as it will read back (non-finite numbers: null)
        try:
            atomic_write(self.path(kind, key), dumps(entry))
        except (CNLError, OSError) as exc:
            _note(notes, f"The result could not be stored for reuse ({exc}); it is shown as computed.")

    def serve(
        self,
        kind: str,
        params: dict,
        result_type: type[T],
        compute: Callable[[], T],
        cancel: threading.Event | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> Served[T]:
        """The result of this work: stored, or the run of it already in progress (waited for), or computed now.

        `compute` runs at most once at a time per key in this process. If the run a visitor waits for fails or is
        cancelled by the visitor who started it, the waiting one runs it; `cancel` ends the wait (Cancelled).
        `on_wait(seconds waited)` is called while waiting for another's run (a dashboard says so on the page)."""
        started, notes = time.monotonic(), list[str]()
        key = result_key(kind, params)
        running: Future = Future()  # this visitor's run, told to those who wait for it
        while True:
            stored = self.read(kind, params, result_type, notes)
            if stored is not None:
                return Served(stored, "stored", time.monotonic() - started, notes, key)
            with self._lock:
                theirs = self._running.get(key)
                if theirs is None:
                    self._running[key] = running
                    break
            while not theirs.done():
                if cancel is not None and cancel.is_set():
                    raise Cancelled("Cancelled while waiting for the same work another visitor started.")
                if on_wait is not None:
                    on_wait(time.monotonic() - started)
                futures.wait([theirs], timeout=WAIT_STEP_S)
            if theirs.exception() is None:
                return Served(theirs.result(), "shared", time.monotonic() - started, notes, key)
            # theirs failed or its visitor cancelled it: this visitor runs it (the next pass finds no run)
        try:
            value = compute()
        except BaseException as exc:
            self._finished(key)
            running.set_exception(exc)
            raise
        self.write(kind, params, value, notes)  # stored before the waiting are told, so no one computes it again
        self._finished(key)
        running.set_result(value)
        return Served(value, "computed", time.monotonic() - started, notes, key)

    def _finished(self, key: str) -> None:
        with self._lock:
            self._running.pop(key, None)

    def _set_aside(self, path: Path, exc: BaseException, notes: list[str] | None) -> None:
        try:
            path.replace(path.with_name(path.name + ".damaged"))
        except OSError:
            pass
        _note(notes, f"A stored result ({path.name}) was damaged ({str(exc)[:120]}); it is computed again.")

    def entries(self) -> list[dict]:
        """One row per stored result: kind, key, size, when."""
        out = []
        root = self.root
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()) if root.is_dir() else []:
            for path in sorted(folder.glob("*.json")):
                if path.is_symlink():
                    continue
                out.append(
                    {
                        "kind": folder.name,
                        "key": path.stem,
                        "bytes": path.stat().st_size,
                        "modified": time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime)),
                    }
                )
        return out

    def remove(self, key: str) -> int:
        """Remove the stored result with this key (0 where none has it); a key is a plain name, never a path."""
        if not isinstance(key, str) or not key.isalnum() or len(key) > 64:
            return 0
        found = [p for p in self.root.glob(f"*/{key}.json") if not p.is_symlink() and not p.parent.is_symlink()]
        for path in found:
            path.unlink()
        return len(found)

    def clear(self) -> int:
        """Remove every stored result (the folders of kinds inside the cache; links are neither followed nor
        removed); returns how many results were removed."""
        root = self.root
        n = 0
        for folder in [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()] if root.is_dir() else []:
            n += sum(1 for _ in folder.glob("*.json"))
            shutil.rmtree(folder)
        return n


def _note(notes: list[str] | None, text: str) -> None:
    log.warning(text)
    if notes is not None:
        notes.append(text)


RESULTS = ResultCache()

"""On-disk store of per-sample neuron scores: safetensors shards under cache/scores/<key>/.

The key is a hash of a JSON record of everything that determines the scores (model weights,
dtype, quantization, neuron definition, dataset content, prompt format, method and params,
schema version). Sample ids are not in the key: each shard lists its own ids, so adding
samples computes only the new ones and a killed run resumes from the shards already written.
Every file is written to a temporary name and renamed (atomic, output_files.py); every shard carries a
SHA-256 of everything read back from it (its sample ids and other metadata, and its tensors), checked on
load: a changed id would silently give one sample another's scores. A write that fails in any way
(full disk, a folder gone, safetensors' own errors) is one CacheError, and the caller goes on without
caching. Nothing is unpickled: safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CacheError, OutputError, ParameterError
from ..output_files import atomic_target, atomic_write
from ..paths import cache_root

SCHEMA_VERSION = 2  # 2: token limits cover the dataset (resolved numbers in the record)


def scores_root() -> Path:
    return cache_root() / "scores"


def record_key(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:20]


def _digest(scores: torch.Tensor, gold: torch.Tensor) -> str:
    """SHA-256 of the tensors alone: all that shards written before the checksum below carry ("sha256")."""
    h = hashlib.sha256(scores.contiguous().view(torch.int16).numpy().tobytes())
    h.update(gold.contiguous().numpy().tobytes())
    return h.hexdigest()


def _checksum(meta: dict, scores: torch.Tensor, gold: torch.Tensor) -> str:
    """SHA-256 of every metadata field but the checksum itself, the tensors' shapes and their bytes."""
    fields = json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True)
    h = hashlib.sha256(fields.encode())
    h.update(repr((tuple(scores.shape), tuple(gold.shape))).encode())
    h.update(scores.contiguous().view(torch.int16).numpy().tobytes())
    h.update(gold.contiguous().numpy().tobytes())
    return h.hexdigest()


def _shard_name(sample_ids: list[str]) -> str:
    return "shard-" + hashlib.sha256("\n".join(sample_ids).encode()).hexdigest()[:16] + ".safetensors"


def _intact(path: Path, meta: dict, sample_ids: list, scores: torch.Tensor, gold: torch.Tensor) -> bool:
    """Whether a shard reads back as it was written, ids included.

    Shards from before the full checksum have only the tensors' digest; their ids are checked against the
    file name, which is the hash of the ids it was written with.
    """
    if "checksum" in meta:
        return meta["checksum"] == _checksum(meta, scores, gold)
    return _digest(scores, gold) == meta.get("sha256") and path.name == _shard_name(sample_ids)


def _ids(meta: dict) -> list[str]:
    """The sample ids a shard's metadata lists; ValueError if they are not a list of strings."""
    ids = json.loads(meta["sample_ids"])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("sample_ids is not a list of strings")
    return ids


def _why(exc: BaseException) -> str:
    """One short reason: the system's own words where there are some (under OutputError's sentence too)."""
    while isinstance(exc, OutputError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class Shard:
    path: Path
    sample_ids: list[str]


class ScoreStore:
    """The shards of one cache key. Corrupt shards are moved aside and reported, never used."""

    def __init__(self, record: dict, root: Path | None = None):
        self.record = {"schema": SCHEMA_VERSION, **record}
        self.key = record_key(self.record)
        self.folder = (root or scores_root()) / self.key
        self.problems: list[str] = []

    def ensure(self) -> None:
        """Create the folder and its record; raises CacheError when the cache cannot be written."""
        try:
            rec = self.folder / "record.json"
            if rec.exists() and _read_json(rec) != self.record:
                # The folder's record does not describe these scores: never reuse them.
                self.problems.append(
                    f"Cache folder {self.key} holds scores of another setup; set aside and recomputed."
                )
                self.folder.rename(self.folder.with_name(f"{self.key}.mismatch-{uuid.uuid4().hex[:8]}"))
            self.folder.mkdir(parents=True, exist_ok=True)
            if not rec.exists():
                atomic_write(rec, json.dumps(self.record, indent=2, sort_keys=True))
        except Exception as exc:  # any failure to write means: no cache, never a crash
            raise CacheError(f"The score cache at {self.folder} cannot be written ({_why(exc)}).") from exc

    def shards(self) -> list[Shard]:
        """Valid-looking shards (metadata readable); their tensors are verified when loaded."""
        out: list[Shard] = []
        try:
            paths = sorted(self.folder.glob("shard-*.safetensors")) if self.folder.is_dir() else []
        except OSError as exc:
            self.problems.append(
                f"The score cache at {self.folder} cannot be read ({_why(exc)}); scores are recomputed."
            )
            return out
        for path in paths:
            try:
                with safe_open(str(path), framework="pt") as fh:
                    meta = fh.metadata() or {}
                out.append(Shard(path, _ids(meta)))
            except Exception as exc:  # truncated / garbage file: any parse error means corrupt
                self._quarantine(path, f"unreadable ({type(exc).__name__})")
        return out

    def _quarantine(self, path: Path, why: str) -> None:
        self.problems.append(f"Cache shard {path.name} is corrupt ({why}); its samples are recomputed.")
        try:
            path.rename(path.with_suffix(".corrupt"))
        except OSError:
            pass

    def write_shard(self, sample_ids: list[str], scores: torch.Tensor, gold: torch.Tensor) -> Path:
        """Write one shard atomically: scores as float16 [b, layers, width], gold log-probs float32 [b]."""
        scores16 = scores.to(torch.float16).contiguous()
        gold32 = gold.to(torch.float32).contiguous()
        path = self.folder / _shard_name(sample_ids)
        # "sha256" (the tensors alone) stays for older versions reading a shared cache; "checksum" covers all.
        meta = {
            "sample_ids": json.dumps(sample_ids),
            "sha256": _digest(scores16, gold32),
            "schema": str(SCHEMA_VERSION),
        }
        meta["checksum"] = _checksum(meta, scores16, gold32)
        try:
            with atomic_target(path) as tmp:
                save_file({"scores": scores16, "gold_logprob": gold32}, str(tmp), metadata=meta)
        except Exception as exc:  # OSError, SafetensorError (not an OSError), anything: the run goes on uncached
            raise CacheError(
                f"Could not write to the score cache at {self.folder} ({_why(exc)}); going on without caching."
            ) from exc
        return path

    def load(self, wanted: Iterable[str]) -> dict[str, tuple[torch.Tensor, float]]:
        """Scores [layers, width] (float16) and gold log-prob of each wanted id found in valid shards."""
        wanted = set(wanted)
        out: dict[str, tuple[torch.Tensor, float]] = {}
        for shard in self.shards():
            if not wanted.intersection(shard.sample_ids):
                continue
            try:  # the ids used are the ones read with the tensors, and checked with them
                with safe_open(str(shard.path), framework="pt") as fh:
                    meta = fh.metadata() or {}
                    scores, gold = fh.get_tensor("scores"), fh.get_tensor("gold_logprob")
                ids = _ids(meta)
            except Exception as exc:
                self._quarantine(shard.path, f"unreadable ({type(exc).__name__})")
                continue
            grid = self.record.get("grid", {})
            shape_ok = scores.shape == (len(ids), grid.get("n_layers"), grid.get("width"))
            if not shape_ok or gold.shape != (len(ids),) or not _intact(shard.path, meta, ids, scores, gold):
                self._quarantine(shard.path, "checksum or shape mismatch")
                continue
            for row, sid in enumerate(ids):
                if sid in wanted:
                    out[sid] = (scores[row], float(gold[row]))
        return out


def _entries(root: Path) -> list[Path]:
    """The cache's own folders; a link (to anywhere) is not one of them and is never followed."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()) if root.is_dir() else []


def list_cache(root: Path | None = None) -> list[dict]:
    """One entry per cache key: what it holds and how big it is on disk."""
    root = root or scores_root()
    out = []
    for folder in _entries(root):
        record = _read_json(folder / "record.json") or {}
        files = list(folder.glob("shard-*.safetensors"))
        n = 0
        for f in files:
            try:
                with safe_open(str(f), framework="pt") as fh:
                    n += len(json.loads((fh.metadata() or {}).get("sample_ids", "[]")))
            except Exception:
                pass
        out.append(
            {
                "key": folder.name,
                "model": record.get("model"),
                "dataset": record.get("dataset"),
                "method": (record.get("score") or {}).get("method"),
                "samples": n,
                "shards": len(files),
                "bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
            }
        )
    return out


def entry_folder(key: str, root: Path | None = None) -> Path:
    """The folder of one cache entry, or ParameterError naming the key: only a folder directly inside the
    score cache can be named (no '..', separators, absolute paths, the cache itself, or a link)."""
    root = root or scores_root()
    shown = repr(key)[:80]
    if not isinstance(key, str) or key in ("", ".", "..") or any(c in key for c in "/\\\0") or len(key) > 255:
        raise ParameterError(
            f"--key {shown} is not a cache entry: give a key as `cache list` shows it "
            "(a folder name, without '..' or '/')."
        )
    folder = root / key
    if folder.is_symlink():
        raise ParameterError(f"--key {shown} is a link, not a cache entry; it is left alone.")
    if not folder.is_dir():
        raise ParameterError(
            f"--key {shown}: there is no such entry in the score cache at {root} (`cache list` shows the keys)."
        )
    real, inside = folder.resolve(), root.resolve()
    if real.parent != inside or real == inside:
        raise ParameterError(f"--key {shown} is not inside the score cache at {root}; it is left alone.")
    return folder


def clear_cache(key: str | None = None, root: Path | None = None) -> int:
    """Delete one entry's folder, or every entry of the score cache; returns the number removed.

    Only the cache's own folders are ever removed: a key naming anything else is refused (entry_folder),
    and links inside the cache are neither followed nor removed.
    """
    root = root or scores_root()
    targets = [entry_folder(key, root)] if key is not None else _entries(root)
    for t in targets:
        shutil.rmtree(t)
    return len(targets)

"""On-disk store of per-sample neuron scores: safetensors shards under cache/scores/<key>/.

The key is a hash of a JSON record of everything that determines the scores (model weights,
dtype, quantization, neuron definition, dataset content, prompt format, method and params,
schema version). Sample ids are not in the key: each shard lists its own ids, so adding
samples computes only the new ones and a killed run resumes from the shards already written.
Every file is written to a temporary name and renamed (atomic); every shard carries a SHA-256
of its tensors, checked on load. Nothing is unpickled: safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CacheError
from ..paths import cache_root

SCHEMA_VERSION = 2  # 2: token limits cover the dataset (resolved numbers in the record)


def scores_root() -> Path:
    return cache_root() / "scores"


def record_key(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:20]


def _digest(scores: torch.Tensor, gold: torch.Tensor) -> str:
    h = hashlib.sha256(scores.contiguous().view(torch.int16).numpy().tobytes())
    h.update(gold.contiguous().numpy().tobytes())
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
                self.problems.append(f"Cache folder {self.key} holds scores of another setup; set aside and recomputed.")
                self.folder.rename(self.folder.with_name(f"{self.key}.mismatch-{uuid.uuid4().hex[:8]}"))
            self.folder.mkdir(parents=True, exist_ok=True)
            if not rec.exists():
                atomic_write_bytes(rec, json.dumps(self.record, indent=2, sort_keys=True).encode())
        except OSError as exc:
            raise CacheError(f"The score cache at {self.folder} cannot be written ({exc.strerror or exc}).") from exc

    def shards(self) -> list[Shard]:
        """Valid-looking shards (metadata readable); their tensors are verified when loaded."""
        out = []
        if not self.folder.is_dir():
            return out
        for path in sorted(self.folder.glob("shard-*.safetensors")):
            try:
                with safe_open(str(path), framework="pt") as fh:
                    meta = fh.metadata() or {}
                out.append(Shard(path, json.loads(meta["sample_ids"])))
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
        name = hashlib.sha256("\n".join(sample_ids).encode()).hexdigest()[:16]
        path = self.folder / f"shard-{name}.safetensors"
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        meta = {"sample_ids": json.dumps(sample_ids), "sha256": _digest(scores16, gold32), "schema": str(SCHEMA_VERSION)}
        try:
            save_file({"scores": scores16, "gold_logprob": gold32}, str(tmp), metadata=meta)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise CacheError(f"Could not write to the score cache ({exc.strerror or exc}); going on without caching.") from exc
        return path

    def load(self, wanted: Iterable[str]) -> dict[str, tuple[torch.Tensor, float]]:
        """Scores [layers, width] (float16) and gold log-prob of each wanted id found in valid shards."""
        wanted = set(wanted)
        out: dict[str, tuple[torch.Tensor, float]] = {}
        for shard in self.shards():
            if not wanted.intersection(shard.sample_ids):
                continue
            try:
                with safe_open(str(shard.path), framework="pt") as fh:
                    meta = fh.metadata()
                    scores, gold = fh.get_tensor("scores"), fh.get_tensor("gold_logprob")
            except Exception as exc:
                self._quarantine(shard.path, f"unreadable ({type(exc).__name__})")
                continue
            grid = self.record.get("grid", {})
            shape_ok = scores.shape == (len(shard.sample_ids), grid.get("n_layers"), grid.get("width"))
            if not shape_ok or gold.shape != (len(shard.sample_ids),) or _digest(scores, gold) != meta.get("sha256"):
                self._quarantine(shard.path, "checksum or shape mismatch")
                continue
            for row, sid in enumerate(shard.sample_ids):
                if sid in wanted:
                    out[sid] = (scores[row], float(gold[row]))
        return out


def list_cache(root: Path | None = None) -> list[dict]:
    """One entry per cache key: what it holds and how big it is on disk."""
    root = root or scores_root()
    out = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        record = _read_json(folder / "record.json") or {}
        files = list(folder.glob("shard-*.safetensors"))
        n = 0
        for f in files:
            try:
                with safe_open(str(f), framework="pt") as fh:
                    n += len(json.loads((fh.metadata() or {}).get("sample_ids", "[]")))
            except Exception:
                pass
        out.append({
            "key": folder.name, "model": record.get("model"), "dataset": record.get("dataset"),
            "method": (record.get("score") or {}).get("method"), "samples": n, "shards": len(files),
            "bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
        })
    return out


def clear_cache(key: str | None = None, root: Path | None = None) -> int:
    """Delete one key's folder, or every score folder; returns the number of folders removed."""
    root = root or scores_root()
    targets = [root / key] if key else [p for p in root.glob("*") if p.is_dir()] if root.is_dir() else []
    removed = 0
    for t in targets:
        if t.is_dir() and t.parent == root:
            shutil.rmtree(t)
            removed += 1
    return removed

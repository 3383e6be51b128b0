"""Writing files so that nothing is lost: output paths checked before the work, files replaced atomically after.

Every file the library writes (result JSON, exported CSV and charts, score-cache shards and records)
goes through `atomic_write` or `atomic_target`: the bytes go to a temporary file in the target's own
folder, are flushed to disk (fsync) and renamed over the target. A full disk, a kill or an error
mid-write leaves the earlier file exactly as it was (never a truncated one) and no temporary file.

`check_output_file` / `check_output_folder` test a path a user gave (`--out`, `--out-dir`) before any
model is loaded, so an unwritable path costs a second, not the run it would have saved.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError


def _temp_name(path: Path) -> Path:
    # In the target's folder (a rename across filesystems is not atomic); a short prefix keeps it under NAME_MAX.
    return path.with_name(f".{path.name[:64]}.{uuid.uuid4().hex[:12]}.part")


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; not every system can open a folder (Windows), which is harmless."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sync_tree(folder: str | Path) -> None:
    """Flush every file under `folder` and the folder itself to disk: before a whole folder is renamed into
    place (the built-in model's conversion), so a crash after the rename never leaves empty files there."""
    folder = Path(folder)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDWR)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_folder(folder)


@contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """A temporary path to write the file at `path` to; on leaving the block it is synced and renamed over `path`.

    For writers that take a path (safetensors' save_file). If the block raises, the temporary file is
    removed and the earlier file at `path` is untouched; an OSError becomes OutputError (a sentence),
    any other error is passed on as it is.
    """
    path = Path(path)
    tmp = _temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"Could not write {path} ({_why(exc)}); any earlier file there is unchanged.") from exc
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    _fsync_folder(path.parent)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically: all of it, or nothing and the earlier file kept."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_target(path) as tmp:
        with open(tmp, "xb") as fh:
            fh.write(payload)
    return Path(path)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe(folder: Path, what: str, target: Path) -> None:
    """Create and remove a file in `folder`: the only check that also holds for root and read-only mounts."""
    probe = folder / f".cnl-probe-{uuid.uuid4().hex[:12]}"
    try:
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{what}: {target} cannot be written ({_why(exc)} in {folder}).") from exc


def _check_folders_above(target: Path, what: str) -> None:
    """The folders that will hold `target`: existing ones must be folders we can write in."""
    above = _nearest_existing(target.parent)
    if not above.is_dir():
        raise OutputError(f"{what}: {target} cannot be created: {above} is a file, not a folder.")
    _probe(above, what, target)


def _target(path: str | Path, what: str, noun: str) -> Path:
    text = str(path)
    if not text.strip() or "\0" in text:
        raise OutputError(f"{what}: {text!r:.80} is not a {noun} name.")
    target = Path(os.path.abspath(os.path.expanduser(text)))
    try:
        target.lstat()  # a name too long for the filesystem (or other trouble) says so here, not after the work
    except (FileNotFoundError, NotADirectoryError):  # not there yet, or under a file: said below, in words
        pass
    except OSError as exc:
        raise OutputError(f"{what}: {text[:200]} cannot be used ({_why(exc)}).") from exc
    return target


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """Refuse, with a sentence naming the path, an output file that could not be written; creates nothing."""
    target = _target(path, what, "file")
    if target.is_dir():
        raise OutputError(f"{what}: {path} is a folder; give a file name, such as {Path(path) / 'result.json'}.")
    _check_folders_above(target, what)
    return target


def check_output_folder(path: str | Path, what: str = "--out-dir") -> Path:
    """Refuse, with a sentence naming the path, an output folder that could not be created or written in."""
    target = _target(path, what, "folder")
    if target.exists() and not target.is_dir():
        raise OutputError(f"{what}: {path} is a file, not a folder.")
    if target.is_dir():
        _probe(target, what, target)
    else:
        _check_folders_above(target, what)
    return target

"""One visitor's files in one folder: uploads, exports, task files, each job's scratch; freed with the session.

Why: a shared dashboard's files were spread over Gradio's upload cache, cache/exports, cache/tasks and the
`datasets` cache, freed at start-up or never, and a process-wide cap evicted whoever's upload was oldest.
Here everything a visitor leaves on disk lives under cache/visitors/<session>/ (made readable by this
process only), is counted against a per-visitor quota (fields.VISITOR_DISK_BYTES) with a sentence when
full, and goes when the session ends. Nothing here is named by the visitor: the folders are fixed names
under a random session id, and no path from here is shown to them (they see file names only).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import fields as F
from .errors import ParameterError
from .paths import cache_root

KINDS = ("uploads", "exports", "tasks", "jobs")


def visitors_root() -> Path:
    return cache_root() / "visitors"


class VisitorSpace:
    """The folder of one session (`session_id`: the dashboard's random id), made on first use."""

    def __init__(self, session_id: str):
        if not session_id.isalnum():
            raise ParameterError("A session id is letters and digits.")
        self.root = visitors_root() / session_id

    def folder(self, kind: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"not a visitor folder: {kind}")
        path = self.root / kind
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        return path

    def used_bytes(self) -> int:
        total = 0
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
        return total

    def admit(self, adding: int) -> None:
        """ParameterError (a sentence) when `adding` more bytes would pass this visitor's disk quota."""
        used = self.used_bytes()
        if used + adding > F.VISITOR_DISK_BYTES:
            raise ParameterError(
                f"Your files on this lab would take {(used + adding) / 2**20:.0f} MiB; each visitor "
                f"keeps at most {F.VISITOR_DISK_BYTES // 2**20} MiB. Remove an upload or start a new "
                "session (reload the page) to free yours."
            )

    def take_upload(self, path: Path) -> Path:
        """A copy of an uploaded file in this visitor's uploads (quota checked first); the caller discards the
        original (the dashboard: Gradio's copy, ui/upload_guard.discard_upload)."""
        self.admit(path.stat().st_size)
        target = self.folder("uploads") / path.name
        shutil.copyfile(path, target)
        return target

    def free(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

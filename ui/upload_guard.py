"""Uploads are data only: Gradio's upload endpoint keeps files of the data types this app reads, nothing else.

Why: Gradio's `/upload` stores any file anyone posts and answers with its path on the server; a
component's `file_types` is checked only when a file is used as that component's input. An uploaded
.py file next to an uploaded task YAML was one step from being imported. This ASGI middleware sits
between Gradio's routes and the network: it lets an upload complete (Gradio copies the file in a
background task that runs before the response leaves), reads the paths Gradio answers with, and when
any of them is not a data file it deletes every file of that request and answers 400 with a sentence.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from cnl_core import CSV_SUFFIXES, DATA_SUFFIXES, JSONL_SUFFIXES, TASK_SUFFIXES

log = logging.getLogger("cnl.dashboard")
DATA_FILES = tuple(dict.fromkeys(CSV_SUFFIXES + JSONL_SUFFIXES + TASK_SUFFIXES + DATA_SUFFIXES))


def gradio_uploads() -> Path | None:
    """Gradio's upload folder (dashboard.py sets it under the lab's cache); None where it is not set."""
    folder = os.environ.get("GRADIO_TEMP_DIR")
    return Path(folder) if folder else None


def discard_upload(path: str | os.PathLike, upload_dir: str | os.PathLike | None = None) -> None:
    """Remove a file Gradio's upload route stored, and its one-file folder if now empty; nothing outside Gradio's
    upload folder (`upload_dir`, by default gradio_uploads()) is touched."""
    folder = upload_dir if upload_dir is not None else gradio_uploads()
    if folder is None:
        return
    real = Path(os.path.realpath(path))
    if Path(os.path.realpath(folder)) not in real.parents:
        return
    try:
        real.unlink(missing_ok=True)
        real.parent.rmdir()
    except OSError:
        pass


class DataOnlyUploads:
    """ASGI middleware: an upload of anything but DATA_FILES is removed and refused (the other routes pass)."""

    def __init__(self, app, upload_dir: str | os.PathLike, allowed: tuple[str, ...] = DATA_FILES):
        self.app, self.allowed = app, allowed
        self.upload_dir = Path(os.path.realpath(upload_dir))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].rstrip("/").endswith("/upload"):
            await self.app(scope, receive, send)
            return
        held: list[dict] = []

        async def hold(message):
            held.append(message)

        await self.app(scope, receive, hold)
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        paths = _paths(body) if start is not None and start["status"] == 200 else None
        refused = [p for p in paths or [] if not p.lower().endswith(self.allowed)]
        if not refused:
            for message in held:
                await send(message)
            return
        for path in paths:
            discard_upload(path, self.upload_dir)
        name = Path(refused[0]).name[:80]
        text = (f"Uploads are data only: {name!r} is refused. This app reads {', '.join(self.allowed)} files.").encode()
        log.info("refused upload: %s", name)
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(text)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": text})


def _paths(body: bytes) -> list[str] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return [p for p in data if isinstance(p, str)] if isinstance(data, list) else None

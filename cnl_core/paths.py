"""Where run-time data lives: `cache/` beside the package unless CNL_CACHE_DIR says otherwise."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    return Path(os.environ.get("CNL_CACHE_DIR", REPO_ROOT / "cache"))

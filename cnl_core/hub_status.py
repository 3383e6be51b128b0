"""Whether the Hugging Face Hub can be reached, checked once and quickly.

Without this, a Hub dataset shows "available: yes" and a Hub model id is tried, and the user waits for
the `datasets`/`huggingface_hub` retries (about 20 s) to learn there is no network. One TCP connection
to the Hub's host (HF_ENDPOINT, or huggingface.co) with a short timeout answers it; the answer is kept
for a few minutes. The offline switches (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE) answer without a connection.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

TIMEOUT_S = 1.5
KEEP_S = 300.0  # an answer is reused this long, then checked again (a laptop may come online)

_lock = threading.Lock()
_cached: tuple[float, str, "HubStatus"] | None = None


@dataclass(frozen=True)
class HubStatus:
    reachable: bool
    why: str  # a phrase for messages: "offline mode is on (HF_HUB_OFFLINE)", "huggingface.co did not answer within 1.5 s"


def _endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _check(host: str, port: int) -> HubStatus:
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            return HubStatus(True, f"{host}:{port} answered")
    except OSError as exc:
        reason = f"did not answer within {TIMEOUT_S:g} s" if isinstance(exc, TimeoutError) else \
            f"cannot be reached: {str(exc.strerror or exc).lower()}"
        return HubStatus(False, f"{host} {reason}")


def hub_status(datasets: bool = False) -> HubStatus:
    """Reachable or not, and why; at most one connection attempt per KEEP_S (and per endpoint).

    `datasets`: also honour HF_DATASETS_OFFLINE (which switches off Hub datasets, not models)."""
    global _cached
    for switch in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")[: 2 if datasets else 1]:
        if os.environ.get(switch, "").strip().lower() in ("1", "true", "yes", "on"):
            return HubStatus(False, f"offline mode is on ({switch})")
    host, port = _endpoint()
    key = f"{host}:{port}"
    with _lock:
        if _cached is not None and _cached[1] == key and time.monotonic() - _cached[0] < KEEP_S:
            return _cached[2]
        status = _check(host, port)
        _cached = (time.monotonic(), key, status)
        return status

"""Whether the Hugging Face Hub can be reached, checked once and quickly.

Without this, a Hub dataset shows "available: yes" and a Hub model id is tried, and the user waits for
the `datasets`/`huggingface_hub` retries (about 20 s) to learn there is no network. One TCP connection
to the Hub's host (HF_ENDPOINT, or huggingface.co) with a short timeout answers it; the answer is kept
for a few minutes (an "out of reach" answer for 30 s). The offline switches (HF_HUB_OFFLINE,
HF_DATASETS_OFFLINE) answer without a connection; behind a proxy (HTTPS_PROXY/ALL_PROXY) the Hub is taken
as reachable, since only the proxy could say.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlparse

TIMEOUT_S = 1.5
KEEP_S = 300.0  # a "reachable" answer is reused this long
KEEP_NO_S = 30.0  # an "out of reach" one only this long: a slow link or a cold DNS may answer next time

_lock = threading.Lock()
_cached: tuple[float, str, HubStatus] | None = None


@dataclass(frozen=True)
class HubStatus:
    reachable: bool
    # a phrase for messages: "offline mode is on (HF_HUB_OFFLINE)", "huggingface.co did not answer within 1.5 s"
    why: str


def _endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _proxy_for(host: str) -> str | None:
    """The proxy that huggingface_hub's requests would use for host, if any (HTTPS_PROXY, ALL_PROXY, NO_PROXY)."""
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(host):
        return None
    return proxies.get("https") or proxies.get("all")


def _check(host: str, port: int) -> HubStatus:
    """One TCP connection, name lookup included, bounded by TIMEOUT_S (the lookup runs in a helper thread)."""
    proxy = _proxy_for(host)
    if proxy:  # only the proxy could say; a direct connection would fail on a proxy-only network
        return HubStatus(True, f"through the proxy {urlparse(proxy).hostname} (not checked)")
    answer: list[HubStatus] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=TIMEOUT_S):
                answer.append(HubStatus(True, f"{host} answered"))
        except OSError as exc:
            answer.append(HubStatus(False, f"{host} cannot be reached: {str(exc.strerror or exc).lower()}"))

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(TIMEOUT_S + 0.5)
    return answer[0] if answer else HubStatus(False, f"{host} did not answer within {TIMEOUT_S:g} s")


def hub_status(datasets: bool = False) -> HubStatus:
    """Reachable or not, and why; at most one connection attempt per KEEP_S (and per endpoint).

    `datasets`: also honour HF_DATASETS_OFFLINE (which switches off Hub datasets, not models)."""
    global _cached
    for switch in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")[: 2 if datasets else 1]:
        if os.environ.get(switch, "").strip().lower() in ("1", "true", "yes", "on"):
            return HubStatus(False, f"offline mode is on: {switch}=1")
    host, port = _endpoint()
    key = f"{host}:{port}"
    with _lock:
        if (
            _cached is not None
            and _cached[1] == key
            and time.monotonic() - _cached[0] < (KEEP_S if _cached[2].reachable else KEEP_NO_S)
        ):
            return _cached[2]
        status = _check(host, port)
        _cached = (time.monotonic(), key, status)
        return status

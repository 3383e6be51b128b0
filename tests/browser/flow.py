"""Driving the dashboard in headless Chromium: shared by the browser tests and the README screenshot."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.request import urlopen

from cnl_core import fields as F

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


SERVER_LOGS: list[Path | None] = [None]  # the running test dashboard's output file


def server_log(chars: int = 3000) -> str:
    """The end of the test dashboard's output, for a failure's message."""
    log = SERVER_LOGS[0]
    return log.read_text(errors="replace")[-chars:] if log is not None and log.exists() else "(no server output)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dashboard(cache_dir: Path, *flags: str, env: dict[str, str] | None = None):
    """Start dashboard.py (with these flags, and these environment variables) on a free loopback port with its own
    score cache; yield its URL."""
    port = free_port()
    env = {**os.environ, "CNL_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT), **(env or {})}
    # the server's output goes to a file: a pipe nobody reads fills up and then stalls the server's threads
    log = SERVER_LOGS[0] = cache_dir / "dashboard.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "dashboard.py", "--port", str(port), *flags],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urlopen(url, timeout=2)
                break
            except OSError as exc:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"dashboard did not start: {server_log()}") from exc
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def browser_page(url: str, width: int = 1366, height: int = 900):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.get_by_text("Capability Neuron Lab").first.wait_for(timeout=60_000)
            yield page
        finally:
            browser.close()


def wait_for_text(locator, parts, timeout: float, absent: tuple[str, ...] = ()) -> str:
    """Poll until every part shows in the element's text and none of `absent` does (progress messages change
    meanwhile; `absent` tells a new result from an earlier text that shares its words)."""
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = locator.inner_text()
        if all(p in text for p in parts) and not any(a in text for a in absent):
            return text
        time.sleep(0.5)
    toasts = locator.page.locator("[data-testid=toast-body]").all_inner_texts()
    raise AssertionError(
        f"{parts} never appeared; last text: {text[:500]}\nnotices on screen: {toasts}\n"
        f"the server's output ends:\n{server_log()}"
    )


def close_toasts(page) -> None:
    """Close every notice still on screen, as a reader does; a warning stays until closed and
    sits over the buttons at the top right."""
    close = "document.querySelectorAll('[data-testid=toast-close]').forEach(b => b.click())"
    for _ in range(50):  # a toast re-renders as its timer runs: click by script, not by a located handle
        if page.locator("[data-testid=toast-close]").count() == 0:
            return
        page.evaluate(close)
        page.wait_for_timeout(200)
    raise AssertionError("the notices did not close")


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def locate(page, n: int) -> tuple[float, float]:
    """Data tab n, Locate tab run; returns the default dataset's row's (overlap, IoU) from the summary."""
    from cnl_core.options import DEFAULTS

    page.get_by_role("tab", name="2 · Data").click()
    set_number(page, "n per split", n)
    page.get_by_role("tab", name="3 · Locate").click()
    page.locator("#locate-btn").click()
    text = wait_for_text(page.locator("#locate-summary"), ["computed"], timeout=900)
    row = next(line for line in text.splitlines() if f":{DEFAULTS.dataset}" in line)  # the table's row comes first
    numbers = re.findall(r"\d+\.\d+", row)
    return float(numbers[1]), float(numbers[2])


def intervene(page, n: int, draws: int, fewshot: int, max_new_tokens: int) -> str:
    page.get_by_role("tab", name="5 · Intervene").click()
    set_number(page, "n test samples", n)
    set_number(page, "random-control draws", draws)
    set_number(page, F.FEWSHOT.label, fewshot)
    set_number(page, "max new tokens (0: the task's own)", max_new_tokens)
    page.locator("#intervene-btn").click()
    return wait_for_text(page.locator("#eval-table"), ["\nbaseline\n", "\nintervened\n", "\ncontrol\n"], timeout=900)

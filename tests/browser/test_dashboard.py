"""The dashboard in a real browser: headless Chromium driven by Playwright.

The whole path a workshop participant takes: default model, gsm8k, two small splits, locate,
see the heatmap and the overlap number, zero the neurons, see the before/after table; and a
bad upload that shows an error without breaking the page.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
                                reason="Debian's chromium package is not installed (make test installs it)")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, lm):
    from cnl_core.paths import cache_root

    cache = tmp_path_factory.mktemp("ui-cache")
    (cache / "models").symlink_to(cache_root() / "models")
    port = _free_port()
    env = {**os.environ, "CNL_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "dashboard.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"dashboard exited: {proc.stdout.read()}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(app_url)
        page.get_by_text("Capability Neuron Lab").first.wait_for(timeout=60_000)
        yield page
        browser.close()


def _wait_for_text(locator, parts, timeout: float) -> None:
    """Poll until every part shows in the element's text (progress messages change meanwhile)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = locator.inner_text()
        if all(p in text for p in parts):
            return
        time.sleep(0.5)
    raise AssertionError(f"{parts} never appeared; last text: {text[:500]}")


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def test_whole_path_locate_compare_intervene(page, tmp_path):
    page.get_by_role("tab", name="2 · Data").click()
    _set_number(page, "n per split", 3)
    page.get_by_role("tab", name="3 · Locate").click()
    page.locator("#locate-btn").click()
    summary = page.locator("#locate-summary")
    summary.get_by_text("computed").wait_for(timeout=600_000)
    text = summary.inner_text()
    row = next(line for line in text.splitlines() if "gsm8k" in line)
    numbers = re.findall(r"\d+\.\d+", row)
    overlap, iou = float(numbers[1]), float(numbers[2])
    assert 0.0 <= iou <= overlap <= 1.0

    page.get_by_role("tab", name="4 · Compare").click()
    page.locator("#heatmap canvas, #heatmap svg").first.wait_for(timeout=60_000)

    page.get_by_role("tab", name="5 · Intervene").click()
    _set_number(page, "n test samples", 2)
    _set_number(page, "random-control draws", 1)
    _set_number(page, "few-shot (-1: task default)", 1)
    _set_number(page, "max new tokens", 12)
    page.locator("#intervene-btn").click()
    table = page.locator("#eval-table")
    _wait_for_text(table, ["\nbaseline\n", "\nintervened\n", "\ncontrol\n"], timeout=600)
    assert "gsm8k" in table.inner_text()
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)


def test_bad_upload_shows_an_error_and_the_page_keeps_working(page, tmp_path):
    page.get_by_role("tab", name="2 · Data").click()
    page.get_by_text("Upload your own CSV / JSONL").click()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02\x03 binary junk \x00")
    page.locator("#upload-file input[type=file]").set_input_files(str(bad))
    page.get_by_text("looks binary").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Show chosen rows").click()
    _wait_for_text(page.locator("#split-rows"), ["gsm8k/"], timeout=60)  # the app still answers

"""The dashboard in a real browser: headless Chromium driven by Playwright.

The whole path a workshop participant takes: default model, the default task (add1), two small splits, locate,
see the heatmap and the overlap number, zero the neurons, see the before/after table; a
bad upload that shows an error without breaking the page; Cancel. (The demo button, its result and its chart: in
test_lesson.py, where five pages press it on a shared lab that computed the demo at start; presses that compute it,
on a small preset: tests/integration/test_workshop.py.)
"""

import os
from pathlib import Path

import pytest

from cnl_core.options import DEFAULTS

from .flow import CHROMIUM, browser_page, close_toasts, dashboard, intervene, locate, set_number, wait_for_text

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
    reason="Debian's chromium package is not installed (make test installs it)",
)


@pytest.fixture(scope="module")
def page(tmp_path_factory, lm):
    from cnl_core.paths import cache_root

    cache = tmp_path_factory.mktemp("ui-cache")
    (cache / "models").symlink_to(cache_root() / "models")
    with dashboard(cache) as url, browser_page(url) as page:
        yield page


def test_whole_path_locate_compare_intervene(page, tmp_path):
    wait_for_text(page.locator("#model-info"), ["30 layers x 1536"], timeout=120)  # loaded with no input
    overlap, iou = locate(page, n=3)
    assert 0.0 <= iou <= overlap <= 1.0
    page.get_by_role("tab", name="4 · Compare").click()
    page.locator("#heatmap canvas.marks").first.wait_for(timeout=60_000)
    page.get_by_text("Inspect a neuron").first.click()  # open the inspector, click a cell of the map
    page.locator("#click-map img").first.click(position={"x": 40, "y": 20})
    summary = wait_for_text(page.locator("#inspector-summary"), ["Neuron", "Vocabulary projection"], timeout=180)
    assert ":" in summary.splitlines()[0]
    table = intervene(page, n=2, draws=1, fewshot=1, max_new_tokens=12)
    assert DEFAULTS.dataset in table
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)


def test_bad_upload_shows_an_error_and_the_page_keeps_working(page, tmp_path):
    page.get_by_role("tab", name="2 · Data").click()
    page.get_by_text("Upload your own CSV / JSONL").click()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02\x03 binary junk \x00")
    page.locator("#upload-file input[type=file]").set_input_files(str(bad))
    page.get_by_text("looks binary").first.wait_for(timeout=30_000)
    close_toasts(page)
    page.get_by_role("button", name="Show chosen rows").click()
    wait_for_text(page.locator("#split-rows"), [f"{DEFAULTS.dataset}/"], timeout=60)  # the app still answers


def test_cancel_stops_a_long_locate_and_the_next_run_goes_through(page):
    page.get_by_role("tab", name="2 · Data").click()
    page.locator("#datasets").get_by_label("add2", exact=True).check()  # 8,100 rows (add1 has 100)
    page.locator("#datasets").get_by_label(DEFAULTS.dataset, exact=True).uncheck()
    set_number(page, "n per split", 300)  # 600 samples: many minutes if it were not cancelled
    page.get_by_role("tab", name="3 · Locate").click()
    page.locator("#locate-btn").click()
    page.wait_for_timeout(5000)
    page.locator("#locate-cancel").click()
    wait_for_text(page.locator("#locate-summary"), ["Cancelled", "picks up"], timeout=30)
    page.get_by_role("tab", name="2 · Data").click()
    set_number(page, "n per split", 3)
    page.get_by_role("tab", name="3 · Locate").click()
    page.locator("#locate-btn").click()  # queued behind the cancelled run, which must stop within a batch
    # the new table replaces "Cancelled" (whose text repeats the earlier table, "computed" included): until then
    # the run still holds this visitor's one job
    wait_for_text(page.locator("#locate-summary"), ["computed", "add2"], timeout=180, absent=("Cancelled",))

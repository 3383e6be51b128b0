"""Shared mode in a real browser (issue #25): the dashboard as a stranger meets it when its operator runs it
with --shared. The page says so, offers no trust_remote_code, names no server folder as a model, and the
upload route refuses code; an uploaded task YAML with `!function` is refused with a sentence."""

import os
import time
from pathlib import Path

import httpx
import pytest

from cnl_core.options import DEFAULTS

from .flow import CHROMIUM, browser_page, dashboard, server_log, wait_for_text

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
    reason="Debian's chromium package is not installed (make test installs it)",
)


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory, lm):
    from cnl_core.paths import cache_root

    cache, allowed = tmp_path_factory.mktemp("ui-cache"), tmp_path_factory.mktemp("operator-folder")
    (cache / "models").symlink_to(cache_root() / "models")
    # Gradio's heartbeat every second (its default is 15 s; Kubernetes operators shorten it too): a closed tab is
    # noticed within a second or two, so the closed-tab test waits for our unload, not for Gradio's clock
    heartbeat = {"GRADIO_HEARTBEAT_INTERVAL": "1"}
    # no demo warmed at start (on by default in shared mode; test_lesson.py tests it): a warming demo is a job ahead
    flags = ("--shared", "--no-warm-demo", "--allow-path", str(allowed))
    with dashboard(cache, *flags, env=heartbeat) as url, browser_page(url) as page:
        yield url, page, allowed


def test_the_page_says_shared_mode_and_offers_no_remote_code(shared_app):
    url, page, allowed = shared_app
    banner = wait_for_text(page.locator("#shared-mode"), ["This lab is shared", str(allowed)], timeout=30)
    assert "trust_remote_code stays off" in banner and "one job at a time" in banner
    trust = page.get_by_label("trust_remote_code (runs the repo's code: only if you trust it)")
    assert trust.count() == 0 or not trust.first.is_visible()
    wait_for_text(page.locator("#model-info"), ["30 layers x 1536"], timeout=180)  # the built-in model still loads


def test_a_server_folder_in_the_model_box_is_refused_with_a_sentence(shared_app):
    url, page, _ = shared_app
    box = page.get_by_label("Model (built-in name, Hub id or local folder)")
    box.fill("/etc")
    box.press("Tab")
    wait_for_text(page.locator("#memory-estimate"), ["This dashboard is shared", "'/etc'"], timeout=60)
    box.fill("smollm2-135m")
    box.press("Tab")
    wait_for_text(page.locator("#memory-estimate"), ["fits"], timeout=60)


def test_the_upload_route_refuses_code_files(shared_app):
    url, _, _ = shared_app
    answer = httpx.post(f"{url}gradio_api/upload", files=[("files", ("x.py", b"import os\n"))], timeout=30)
    assert answer.status_code == 400 and "Uploads are data only" in answer.text
    ok = httpx.post(f"{url}gradio_api/upload", files=[("files", ("rows.csv", b"q,a\n1,2\n"))], timeout=30)
    assert ok.status_code == 200


def test_an_uploaded_task_yaml_with_function_is_refused(shared_app, tmp_path):
    pytest.importorskip("lm_eval")
    _, page, _ = shared_app
    page.get_by_role("tab", name="5 · Intervene").click()
    evil = tmp_path / "evil.yaml"
    evil.write_text("task: evil\ndataset_path: json\nprocess_docs: !function x.fn\n")
    page.locator("#lm-eval-files input[type=file]").set_input_files(str(evil))
    page.get_by_text("the tag !function could run code").first.wait_for(timeout=60_000)


def test_a_closed_tab_stops_its_job_and_the_next_visitor_runs_at_once(shared_app):
    """A visitor starts a long locate and closes the tab: the job stops at its next batch (Gradio's unload, when
    the tab's heartbeat ends) instead of using the model for minutes, and another visitor's locate runs."""
    from .flow import set_number

    url, page, _ = shared_app
    other = page.context.browser.new_context(viewport={"width": 1366, "height": 900})
    leaving = other.new_page()
    leaving.goto(url)
    wait_for_text(leaving.locator("#model-info"), ["30 layers x 1536"], timeout=180)
    leaving.get_by_role("tab", name="2 · Data").click()
    leaving.locator("#datasets").get_by_label("add2", exact=True).check()  # 8,100 rows (add1 has 100)
    leaving.locator("#datasets").get_by_label(DEFAULTS.dataset, exact=True).uncheck()
    set_number(leaving, "n per split", 300)  # 600 samples: over a minute if it ran on
    leaving.get_by_role("tab", name="3 · Locate").click()
    leaving.locator("#locate-btn").click()
    wait_for_text(leaving.locator("#locate-summary"), ["add2: scored"], timeout=60)  # it runs
    other.close()  # the tab (and its browser window) goes away
    deadline = time.time() + 30
    while "cancelled: " not in server_log(20_000) and time.time() < deadline:  # errors.cancelled logs a stopped job
        time.sleep(0.5)
    log = server_log(20_000)
    assert "ended: its job (if any) stops" in log and "cancelled: " in log, log[-3000:]
    page.get_by_role("tab", name="2 · Data").click()
    set_number(page, "n per split", 3)
    page.get_by_role("tab", name="3 · Locate").click()
    page.locator("#locate-btn").click()
    wait_for_text(page.locator("#locate-summary"), ["computed"], timeout=240)

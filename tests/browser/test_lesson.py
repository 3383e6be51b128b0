"""Issue #33 in a real browser: five students' pages on one shared lab (demo warmed, a job limit set by the
operator). Each page opens on a task the model can do with the expected time under the buttons; the demo reaches
every page; "Use the demo's settings" reproduces the demo's located set and the summary says its settings; a
refresh keeps a student's work; a job over the lab's limit is refused before it runs; a link opens the demo's
stored result for another student; Cancel says which job it cancelled, in neutral words."""

import json
import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from cnl_core.options import DEFAULTS, JOBS

from .flow import CHROMIUM, FLAGS, close_toasts, dashboard, server_log, wait_for_text

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
    reason="Debian's chromium package is not installed (make test installs it)",
)
STUDENTS = 5


@pytest.fixture(scope="module")
def room(tmp_path_factory, lm):
    from playwright.sync_api import sync_playwright

    from cnl_core.paths import cache_root

    cache = tmp_path_factory.mktemp("lesson-cache")
    (cache / "models").symlink_to(cache_root() / "models")
    os.environ[JOBS.env] = "120"  # the operator's limit: a GSM8K Intervene of 10 samples is over it
    try:
        with dashboard(cache, "--shared", "--warm-demo") as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            pages = []
            for _ in range(STUDENTS):  # a context each: their own session and their own browser storage
                page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
                page.goto(url)
                pages.append(page)
            for page in pages:
                wait_for_text(page.locator("#model-info"), ["30 layers x 1536"], timeout=180)
            yield url, pages
            browser.close()
    finally:
        os.environ.pop(JOBS.env, None)


def test_every_page_opens_on_a_task_the_model_can_do_with_the_cost_shown(room):
    _, pages = room
    for page in pages:
        wait_for_text(page.locator("#demo-estimate"), ["Expected: about", "short-job line"], timeout=30)
    page = pages[0]
    page.get_by_role("tab", name="2 · Data").click()
    assert page.locator("#datasets").get_by_label(DEFAULTS.dataset, exact=True).is_checked()
    page.get_by_role("tab", name="3 · Locate").click()
    wait_for_text(page.locator("#locate-estimate"), ["Expected: about"], timeout=30)


def test_the_demo_reaches_every_page_and_locate_reproduces_it(room):
    _, pages = room
    for page in pages:
        page.locator("#demo-btn").click()
    texts = [
        wait_for_text(p.locator("#demo-summary"), ["Demo result", "Link for the room"], timeout=600) for p in pages
    ]
    located = re.search(r"(\d+) neurons located", texts[0]).group(1)
    assert all(f"{located} neurons located" in t for t in texts) and "split IoU" in texts[0] and "Settings:" in texts[0]
    assert "Accuracy" in texts[0] and "zeroed" in texts[0]
    for page in pages[:2]:  # its chart, drawn
        page.locator("#demo-plot canvas.marks").first.wait_for(timeout=60_000)
    page = pages[0]
    page.get_by_role("tab", name="3 · Locate").click()
    page.locator("#demo-settings").click()
    # every box changes in the one answer to that click: once tau reads the demo's 0.1 (the default is 0.2), so do
    # n and seed on the Data tab; on a busy machine that answer takes more than a moment
    expect(page.get_by_label("tau (x sample max)").first).to_have_value("0.1", timeout=30_000)
    page.locator("#locate-btn").click()
    summary = wait_for_text(page.locator("#locate-summary"), ["tau 0.1 · p 0.5 · n 12 x 2 · seed 2"], timeout=300)
    row = next(line for line in summary.splitlines() if f":{DEFAULTS.dataset}" in line)  # the table's row first
    assert row.split("\t")[1].strip() == located, row  # the demo's set, from the tabs
    assert "split IoU" in summary and "x chance" in summary  # its reading


def settled(page, quiet_s: float = 3.0, timeout_s: float = 60.0) -> None:
    """Wait until the browser's copy of the session has not changed for `quiet_s` seconds."""
    deadline, last, since = time.time() + timeout_s, None, time.time()
    while time.time() < deadline:
        now = page.evaluate("localStorage.getItem('cnl-session')")
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet_s:
            return
        page.wait_for_timeout(250)
    raise AssertionError("the browser's copy of the session kept changing")


def test_a_refresh_keeps_the_students_work(room):
    _, pages = room
    page = pages[0]
    page.wait_for_function("localStorage.getItem('cnl-session') !== null", timeout=30_000)  # the browser kept it
    # a box ticked, then kept: each Cancel (like each finished job) keeps the page's boxes in the browser. Each copy
    # is encrypted afresh, so a changed copy means a new one; a copy from an earlier event still on its way would
    # land after ours, so the copy is first let settle
    page.get_by_role("tab", name="5 · Intervene").click()
    settled(page)
    page.locator("#intervene-targets").get_by_label("gsm8k", exact=True).check()
    kept = page.evaluate("localStorage.getItem('cnl-session')")
    page.locator("#intervene-cancel").click()
    page.wait_for_function(f"localStorage.getItem('cnl-session') !== {json.dumps(kept)}", timeout=30_000)
    settled(page)
    page.reload()
    wait_for_text(page.locator("#session-notice"), ["Restored 1 located set"], timeout=120)
    page.get_by_role("tab", name="3 · Locate").click()
    wait_for_text(page.locator("#locate-summary"), [f":{DEFAULTS.dataset}", "tau 0.1"], timeout=30)
    # the restored set does not pull 'Test on' back to its own dataset (a change listener once did, a moment later)
    page.get_by_role("tab", name="5 · Intervene").click()
    page.wait_for_timeout(2000)
    targets = page.locator("#intervene-targets")
    assert targets.get_by_label("gsm8k", exact=True).is_checked()
    assert targets.get_by_label(DEFAULTS.dataset, exact=True).is_checked()


def test_a_job_over_the_labs_limit_is_refused_before_it_runs(room):
    _, pages = room
    page = pages[0]  # the student with a located set (restored after the refresh)
    page.get_by_role("tab", name="5 · Intervene").click()
    page.locator("#intervene-targets").get_by_label("gsm8k", exact=True).check()  # (ticked before the refresh)
    wait_for_text(page.locator("#intervene-estimate"), ["long-job line", "it would be refused"], timeout=30)
    page.locator("#intervene-btn").click()
    try:
        page.get_by_text("over this shared lab's limit").first.wait_for(timeout=60_000)
    except Exception as exc:
        toasts = page.locator("[data-testid=toast-body]").all_inner_texts()
        table = page.locator("#eval-table").inner_text()[:500]
        raise AssertionError(f"no refusal; notices: {toasts}; table: {table}\n{server_log()}") from exc
    close_toasts(page)


def test_a_link_opens_the_demos_result_for_another_student(room):
    url, pages = room
    text = pages[1].locator("#demo-summary").inner_text()  # (page 0 was refreshed since)
    key = re.search(r"\?result=demo/(\w+)", text).group(1)
    page = pages[4]
    page.goto(f"{url}?result=demo/{key}")
    wait_for_text(page.locator("#link-note"), ["Shared result: the demo", "neurons located"], timeout=60)


def test_cancel_names_the_job_it_stops(room):
    _, pages = room
    page = pages[2]
    page.locator("#demo-scored").get_by_text("both (format control)").click()  # not stored yet: it computes
    page.locator("#demo-btn").click()
    page.wait_for_timeout(3000)
    page.locator("#demo-cancel").click()
    text = wait_for_text(page.locator("#demo-summary"), ["Cancelled: Demo"], timeout=30)
    assert "Error" not in text


def test_a_neuron_link_opens_its_inspector_page(room):
    url, pages = room
    page = pages[3]
    page.goto(f"{url}?neuron=12:345")
    wait_for_text(page.locator("#link-note"), ["Shared link: neuron 12:345"], timeout=60)
    wait_for_text(page.locator("#inspector-summary"), ["Neuron 12:345"], timeout=300)

"""Take the README screenshots: the real flow in headless Chromium, one picture per tab and the demo.

make screenshot      # writes assets/screenshot.png (Compare), assets/demo.png and assets/tab-*.png
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser.flow import browser_page, dashboard, intervene, locate, set_number, wait_for_text  # noqa: E402


def shot(page, path: Path, full: bool = True) -> None:
    page.wait_for_timeout(1500)
    page.screenshot(path=str(path), full_page=full)
    print(f"wrote {path}")


def main(out: str) -> None:
    from cnl_core.model.loading import load_model
    from cnl_core.options import DEFAULTS
    from cnl_core.paths import cache_root

    assets = Path(out).parent
    load_model()  # converts the built-in model once, into the shared cache
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "models").symlink_to(cache_root() / "models")
        with dashboard(Path(tmp)) as url, browser_page(url, 1280, 900) as page:
            wait_for_text(page.locator("#model-info"), ["30 layers x 1536"], timeout=120)
            shot(page, assets / "tab-1-model.png")
            page.locator("#demo-btn").click()
            wait_for_text(page.locator("#demo-summary"), ["Demo result"], timeout=600)
            page.locator("#demo-plot canvas.marks").first.wait_for(timeout=60_000)
            shot(page, assets / "demo.png")
            page.get_by_role("tab", name="2 · Data").click()
            page.get_by_role("button", name="Show chosen rows").click()
            wait_for_text(page.locator("#split-rows"), [f"{DEFAULTS.dataset}/"], timeout=60)
            shot(page, assets / "tab-2-data.png")
            locate(page, n=8)
            shot(page, assets / "tab-3-locate.png")
            page.get_by_role("tab", name="4 · Compare").click()
            page.locator("#heatmap canvas.marks").first.wait_for(timeout=60_000)
            shot(page, Path(out), full=False)
            shot(page, assets / "tab-4-compare.png")
            page.get_by_text("Inspect a neuron").first.click()
            page.locator("#click-map img").first.click(position={"x": 40, "y": 20})
            wait_for_text(page.locator("#inspector-summary"), ["Neuron"], timeout=300)
            page.locator("#inspector").scroll_into_view_if_needed()
            shot(page, assets / "inspector.png")
            intervene(page, n=10, draws=2, fewshot=-1, max_new_tokens=0)
            page.locator("#intervene-reading").scroll_into_view_if_needed()
            shot(page, assets / "tab-5-intervene.png")
            page.get_by_text("Steering playground").first.click()
            page.locator("#steer-btn").click()
            page.wait_for_timeout(20000)
            page.locator("#steer-baseline").scroll_into_view_if_needed()
            shot(page, assets / "steering.png", full=False)
            page.get_by_role("tab", name="6 · Studies").click()
            set_number(page, "n per subsample", 4)
            page.get_by_label("shared fractions f").fill("0 0.5 1")
            page.locator("#decouple-btn").click()
            page.locator("#decouple-plot canvas.marks").first.wait_for(timeout=600_000)
            shot(page, assets / "tab-6-studies.png")
            page.get_by_role("tab", name="7 · Export").click()
            page.get_by_role("button", name="Prepare downloads").click()
            page.wait_for_timeout(8000)
            shot(page, assets / "tab-7-export.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "assets/screenshot.png")

"""Take the README screenshot: run the real flow in headless Chromium and save the Compare and Intervene tabs."""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser.flow import browser_page, dashboard, intervene, locate  # noqa: E402


def main(out: str) -> None:
    from cnl_core.model.loading import load_model
    from cnl_core.paths import cache_root

    load_model()  # converts the built-in model once, into the shared cache
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "models").symlink_to(cache_root() / "models")
        with dashboard(Path(tmp)) as url, browser_page(url, 1280, 900) as page:
            locate(page, n=8)
            page.get_by_role("tab", name="4 · Compare").click()
            page.locator("#heatmap canvas.marks").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=out, full_page=False)
            intervene(page, n=4, draws=2, fewshot=1, max_new_tokens=48)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(Path(out).with_name("screenshot-intervene.png")), full_page=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "assets/screenshot.png")

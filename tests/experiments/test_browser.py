"""Open a reproduction's report.html in headless Chromium (Debian `chromium` driven by playwright):
every image decodes, the console stays clean, and a screenshot is saved next to the report."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def open_report(path: Path, screenshot: Path) -> dict:
    """Load `path` in Chromium; return image states, console errors and page errors; save a screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
            failed_rows = page.eval_on_selector_all("tr.fail", "els => els.length")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"images": images, "errors": errors, "requests": requests, "failed_rows": failed_rows}


@pytest.mark.quick_repro
def test_report_in_headless_chromium(quick_outcomes, tmp_path):
    if CHROMIUM is None:
        pytest.skip("Debian chromium not installed (apt-get install -y chromium): browser check skipped")
    pytest.importorskip("playwright", reason="playwright not installed (pip install playwright)")
    out = quick_outcomes("balance-weight-decay")
    shot = tmp_path / "report-screenshot.png"  # not in the report folder: that one holds only figures
    res = open_report(out.out / "report.html", shot)
    assert res["images"], "the report shows no images"
    assert all(ok and w > 0 and h > 0 for ok, w, h in res["images"]), res["images"]
    assert res["errors"] == []
    assert all(u.startswith(("file:", "data:")) for u in res["requests"]), res["requests"]  # self-contained
    assert res["failed_rows"] == 0  # every row green: claims pass, the control's sub-claims fail as required
    assert shot.stat().st_size > 10_000

"""Open a reproduction's report.html in headless Chromium (Debian `chromium` driven by playwright):
every image decodes, the console stays clean, and a screenshot is saved next to the report."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import need_browser, open_page

def open_report(path: Path, screenshot: Path) -> dict:
    """Load `path` in Chromium; return image states, console errors and page errors; save a screenshot."""
    with open_page(path) as opened:
        page = opened.page
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
        failed_rows = page.eval_on_selector_all("tr.fail", "els => els.length")
        page.screenshot(path=str(screenshot), full_page=True)
    return {"images": images, "errors": opened.errors, "requests": opened.requests, "failed_rows": failed_rows}


@pytest.mark.quick_repro
def test_report_in_headless_chromium(quick_outcomes, tmp_path):
    need_browser()
    out = quick_outcomes("balance-weight-decay")
    shot = tmp_path / "report-screenshot.png"  # not in the report folder: that one holds only figures
    res = open_report(out.out / "report.html", shot)
    assert res["images"], "the report shows no images"
    assert all(ok and w > 0 and h > 0 for ok, w, h in res["images"]), res["images"]
    assert res["errors"] == []
    assert all(u.startswith(("file:", "data:")) for u in res["requests"]), res["requests"]  # self-contained
    assert res["failed_rows"] == 0  # every row green: claims pass, the control's sub-claims fail as required
    assert shot.stat().st_size > 10_000

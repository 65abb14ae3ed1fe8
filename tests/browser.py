"""Headless Chromium for the page tests (Debian `chromium` driven by playwright, no browser download):
one harness that records console errors, page errors and every requested URL."""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@dataclass
class Opened:
    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def offline(self) -> bool:
        """Nothing was fetched from outside the page itself."""
        return all(u.startswith(("file:", "data:")) for u in self.requests)


def need_browser() -> None:
    if CHROMIUM is None:
        pytest.skip("Debian chromium not installed (apt-get install -y chromium): browser check skipped")
    pytest.importorskip("playwright", reason="playwright not installed (pip install playwright)")


@contextmanager
def open_page(path: Path, width: int = 1200, height: int = 900) -> Iterator[Opened]:
    """`path` loaded in Chromium; errors and requests keep being recorded while the block runs."""
    from playwright.sync_api import sync_playwright

    need_browser()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            opened = Opened(page)
            page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: opened.errors.append(str(e)))
            page.on("request", lambda r: opened.requests.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            yield opened
        finally:
            browser.close()

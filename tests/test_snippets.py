"""Every ```python snippet in README.md and docs/ (docs/theory/ included) runs as written, each in a
fresh interpreter from a scratch folder that holds a copy of examples/. A snippet that cannot run
(a template, a cluster, a user's own model) is marked with `<!-- no-run: reason -->` on the line
before it; the reason is required."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "theory").glob("*.md"))]
BLOCK = re.compile(r"(?:<!--\s*no-run:(?P<why>[^>]*)-->\s*\n)?```python\n(?P<code>.*?)```", re.S)


def snippets() -> list[tuple[str, str, str]]:
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text[: m.start("code")].count("\n")
            out.append((f"{page.relative_to(ROOT)}:{line}", m.group("code"), (m.group("why") or "").strip()))
    return out


SNIPPETS = snippets()


def test_snippets_found_and_no_run_marks_give_a_reason():
    assert len(SNIPPETS) >= 6
    marks = sum(page.read_text(encoding="utf-8").count("<!-- no-run") for page in PAGES)
    assert marks == sum(bool(why) for _, _, why in SNIPPETS), "a <!-- no-run --> mark must sit right above a snippet"


@pytest.mark.parametrize("where,code,why", SNIPPETS, ids=[s[0] for s in SNIPPETS])
def test_snippet_runs(where, code, why, tmp_path):
    if why:
        pytest.skip(f"marked no-run: {why}")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{where} failed:\n{p.stderr[-3000:]}"
    assert p.stdout.strip(), f"{where} prints nothing: end it with a print of what it computed"

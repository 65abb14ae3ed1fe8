"""Every reproduction of this room at --quick size: exit code 0, claims.json schema, a negative control
that passed (i.e. its switched pipeline failed), figures as PNG and PDF, and a self-contained report."""
from __future__ import annotations

import json

import pytest

from lazyrich.experiments.base import COMPARISONS, PROVENANCE

NAMES = ["kunin-fig1", "spectral-width-scaling", "balance-weight-decay", "balance-warmup", "balance-deep"]
KEYS = {"id", "statement", "source", "provenance", "measured", "expected", "tolerance", "comparison", "relative", "passed"}


def _check_claim(c: dict) -> None:
    assert KEYS <= set(c), f"claim {c.get('id')} lacks {KEYS - set(c)}"
    assert c["provenance"] in PROVENANCE and c["comparison"] in COMPARISONS
    assert isinstance(c["passed"], bool) and c["statement"] and c["source"]
    assert c["tolerance"] >= 0
    m, e, tol = c["measured"], c["expected"], c["tolerance"]
    if m is None:
        assert c["passed"] is False
        return
    # `passed` must follow from the numbers (recomputed independently of Claim.passed)
    t = tol * (abs(e) if c["relative"] else 1.0)
    want = {"within": abs(m - e) <= t, "at_most": m <= e + t, "at_least": m >= e - t}[c["comparison"]]
    assert c["passed"] is want, c["id"]


@pytest.mark.quick_repro
@pytest.mark.parametrize("name", NAMES)
def test_quick_reproduction(name, quick_outcomes):
    out = quick_outcomes(name)
    failed = [c for c in out.claims if not c.passed]
    assert out.exit_code == 0, "failed claims: " + "; ".join(f"{c.id}: measured {c.measured:.4g} vs {c.expected:.4g}" for c in failed)
    doc = json.loads((out.out / "claims.json").read_text())
    assert doc["experiment"] == name and doc["size"] == "quick"
    ids = [c["id"] for c in doc["claims"]]
    assert len(ids) == len(set(ids)) >= 3
    for c in doc["claims"]:
        _check_claim(c)
        for sub in c.get("details", []):
            _check_claim(sub)
    controls = [c for c in doc["claims"] if c["id"].startswith("control-")]
    assert controls, "every reproduction needs a negative control"
    for c in controls:
        assert c["details"] and all(not s["passed"] for s in c["details"]) and c["passed"]
    pngs = sorted(out.out.glob("*.png"))
    assert pngs and all((p.with_suffix(".pdf")).stat().st_size > 0 for p in pngs)
    html = (out.out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs)
    assert "All " in html and "code version" in html and "runtime" in html
    assert out.runtime_s < 90, f"quick size took {out.runtime_s:.0f} s (budget 45 s on 2 cores)"

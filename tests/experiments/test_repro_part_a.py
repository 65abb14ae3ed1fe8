"""Quick-size runs of kunin-single-neuron, mechanisms-1d, saxe-agf and balance-mup-lambda: every claim passes
(exit code 0) except those measured to fail and reported failing, claims.json follows the schema, figures
and report are written."""
import json
import math

import pytest

from lazyrich.experiments import REGISTRY
from lazyrich.experiments.base import COMPARISONS, PROVENANCE

NAMES = [n for n in ("kunin-single-neuron", "mechanisms-1d", "saxe-agf", "balance-mup-lambda") if n in REGISTRY]
# measured failing and reported so (never loosened): AGF's drop time for the last frequency of modular addition
KNOWN_FAILING = {"saxe-agf": {"modadd-agf-drop-times"}}
FIELDS = {"id", "statement", "source", "provenance", "measured", "expected", "tolerance", "comparison", "relative", "passed"}


@pytest.fixture(params=NAMES)
def outcome(request, quick_outcomes):
    return quick_outcomes(request.param)  # one quick run per name per session (conftest.py)


def _check_claim(c: dict) -> None:
    assert FIELDS <= set(c), set(c) ^ FIELDS
    assert c["provenance"] in PROVENANCE and c["comparison"] in COMPARISONS
    assert c["statement"] and c["source"]
    m, e, tol = c["measured"], c["expected"], c["tolerance"]
    if m is None:  # non-finite measurement never passes
        assert c["passed"] is False
        return
    scale = abs(e) if c["relative"] else 1.0
    want = {"within": abs(m - e) <= tol * scale, "at_most": m <= e + tol * scale, "at_least": m >= e - tol * scale}
    assert c["passed"] == want[c["comparison"]]  # `passed` is computed from the numbers


@pytest.mark.quick_repro
def test_quick_run_passes_every_claim(outcome):
    known = KNOWN_FAILING.get(outcome.name, set())
    assert set(outcome.failed) == known, outcome.failed
    assert outcome.exit_code == (1 if known else 0)
    doc = json.loads((outcome.out / "claims.json").read_text())
    assert doc["experiment"] == outcome.name and doc["size"] == "quick"
    ids = [c["id"] for c in doc["claims"]]
    assert len(ids) == len(set(ids)) >= 3
    for c in doc["claims"]:
        _check_claim(c)
        assert c["passed"] is (c["id"] not in known), c["id"]
        for d in c.get("details", []):
            _check_claim(d)
    controls = [c for c in doc["claims"] if c["id"].startswith("control-")]
    assert controls, "every reproduction has a negative control"
    for c in controls:  # the control's own claims all fail
        assert c["details"] and not any(d["passed"] for d in c["details"])
        assert math.isclose(c["measured"], len(c["details"]))


@pytest.mark.quick_repro
def test_quick_run_writes_figures_and_report(outcome):
    pngs = sorted(outcome.out.glob("*.png"))
    assert pngs and all((p.with_suffix(".pdf")).exists() for p in pngs)
    html = (outcome.out / "report.html").read_text()
    assert "data:image/png;base64," in html and outcome.name in html

"""One check of a quick-size reproduction run, shared by every quick-run test: every claim's verdict is
the pinned one (pass unless listed in KNOWN_VERDICTS; exit code follows: 1 iff a claim fails), claims.json
follows the schema with `verdict` recomputed from the numbers (the tolerance test for exact claims, the
interval or the ordering support for claims over seeds), every negative control's switched claims fail,
figures come as PNG + PDF and the report embeds them."""
from __future__ import annotations

import json
import math

from lazyrich.experiments.base import COMPARISONS, METHODS, PROVENANCE

# measured verdicts other than pass at quick size, never loosened (docs/reproductions.md): a claim
# changing verdict (pass → inconclusive, inconclusive → fail, ...) turns CI red
KNOWN_VERDICTS: dict[str, dict[str, str]] = {
    "fact": {"rfm-fixed-point": "fail",                  # FACT-RFM fixed point T6.4: sym FACT is indefinite
             # 8 (set, split) pairs; their spread asks for 25 and 19 (Student t). 16 pairs pass and 24 do not
             # (the --sensitivity map): more pairs do not settle them, so the quick size keeps 8
             "rfm-fact-vs-laplace": "inconclusive", "rfm-fact-vs-nfa": "inconclusive"},
    # 3 seeds: median speed-up 0.28 [0.21, 0.61] straddles 1/3; 3/3 grok gives [0.29, 1] (6/6 would pass);
    # the downstream control's majority claim is undecided the same way. Power (issue 23): the α = 1 grok ÷ fit
    # median (3 of 3 seeds above 3: the sign test needs 6) and the α-order ordering (needs 6 seeds) cannot pass
    # with 3 seeds; 6 would double the quick run (29 s)
    "grokking": {"speedup": "inconclusive", "majority-groks": "inconclusive", "control-downstream": "inconclusive",
                 "alpha1-groks-late": "inconclusive", "order": "inconclusive"},
    # per-seed slopes over widths 64–256, 6 seeds: the NTP point slopes sit near the ±0.15 band's edge, so the
    # measured spread asks for 9, 15 and 8 seeds (Student t); the μP slopes and NTP alignment pass with 6
    "spectral-width-scaling": {"slope-feature-ntp": "inconclusive", "slope-spectral-ntp": "inconclusive",
                               "slope-frobenius-ntp": "inconclusive"},
    "saxe-agf": {"modadd-agf-drop-times": "fail",
                 # 3 of 6 seeds in order under equal coefficients: Clopper–Pearson [0.12, 0.88], undecided
                 "control-equal-coefficients": "inconclusive"},       # AGF onset of every modular-addition frequency within 20 %
    # step 10³, d = 100, 4 seeds: upstream best in 32 % of resamples; the small-τ ordering holds in 100 % but an
    # ordering needs 6 seeds (power rule; it passes with 6, 45 s CPU time against 39 s with 4: over the CI budget)
    "kunin-fig1": {"best-cell-upstream": "inconclusive", "best-cell-small-tau": "inconclusive"},
    # θ = 0.05 and 0.2 at once, 6 seeds: 94 % of resamples (3 seeds gave 100 % and passed, 6 of the old exact count
    # failed: it counted undecided thresholds as failures); the full size (8 seeds) has 2 seeds never rich at 0.2
    "kunin-single-neuron": {"relu-argmin-other-thresholds": "inconclusive"},
    # the ridgeless risk under an exponential spectrum is heavy-tailed (E₀ ≈ 20 at n = 160): 0.062 [0.045, 0.127]
    # straddles the 0.1 tolerance over 256 draws
    "cost-of-overfitting": {"cost-curve-exponential": "inconclusive"},
    # width 16, depth 2 → 8, 30 steps: μP without a depth rule does not drift (−0.52 [−0.71, −0.27]), so the
    # depth negative control fails at quick size; a deeper, longer probe (depth 16, 100 steps) did not separate either
    "lr-transfer-lm": {"control-mup-depth": "fail"},
}
KNOWN_FAILING: dict[str, set[str]] = {k: {c for c, v in d.items() if v == "fail"} for k, d in KNOWN_VERDICTS.items()}
FIELDS = {"id", "statement", "source", "provenance", "measured", "expected", "tolerance", "comparison", "relative", "passed",
          "verdict", "method"}


def check_claim(c: dict) -> None:
    assert FIELDS <= set(c), f"claim {c.get('id')} lacks {FIELDS - set(c)}"
    assert c["provenance"] in PROVENANCE and c["comparison"] in COMPARISONS and c["method"] in METHODS
    assert isinstance(c["passed"], bool) and c["statement"] and c["source"] and c["tolerance"] >= 0
    assert c["passed"] is (c["verdict"] == "pass")
    m, e, tol = c["measured"], c["expected"], c["tolerance"]
    if c["method"] == "control":
        v = [d["verdict"] for d in c["details"]]
        assert c["verdict"] == ("fail" if "pass" in v else "pass" if set(v) == {"fail"} else "inconclusive")
        return
    if m is None:  # a non-finite measurement never passes
        assert c["verdict"] == "fail"
        return
    t = tol * (abs(e) if c["relative"] else 1.0)
    holds = lambda x: {"within": abs(x - e) <= t, "at_most": x <= e + t, "at_least": x >= e - t}[c["comparison"]]  # noqa: E731
    if c["method"] == "exact":
        assert c["verdict"] == ("pass" if holds(m) else "fail"), c["id"]  # the verdict is computed from the numbers
        return
    # power: a bootstrap or ordering claim over fewer seeds than it needs never passes
    weak = c["method"] != "clopper-pearson" and c["seeds_needed"] is not None and c["n"] < c["seeds_needed"]
    clears = "inconclusive" if weak else "pass"
    if c["method"] == "ordering":
        s, conf = c["support"], c["confidence"]
        want = "inconclusive" if s is None else clears if s >= conf else "fail" if s <= 1 - conf else "inconclusive"
        assert c["verdict"] == want, c["id"]
    else:  # an interval: pass only if both ends hold, never on the point estimate alone
        lo, hi = c["interval"]
        if lo is None or hi is None:
            assert c["verdict"] == "inconclusive", c["id"]
        elif holds(lo) and holds(hi):
            assert c["verdict"] == clears, c["id"]
        else:
            assert c["verdict"] != "pass", c["id"]


def check_quick_outcome(outcome) -> None:
    pinned = KNOWN_VERDICTS.get(outcome.name, {})
    got = {cid: v for cid, v in outcome.verdicts.items() if v != "pass" or cid in pinned}
    assert got == pinned, f"{outcome.name}: verdicts other than pass {got}, pinned {pinned}"
    known = KNOWN_FAILING.get(outcome.name, set())
    assert outcome.exit_code == (1 if known else 0)
    doc = json.loads((outcome.out / "claims.json").read_text())
    assert doc["experiment"] == outcome.name and doc["size"] == "quick"
    ids = [c["id"] for c in doc["claims"]]
    assert len(ids) == len(set(ids)) >= 3
    for c in doc["claims"]:
        check_claim(c)
        assert c["verdict"] == pinned.get(c["id"], "pass"), c["id"]
        for d in c.get("details", []):
            check_claim(d)
    controls = [c for c in doc["claims"] if c["id"].startswith("control-")]
    assert controls, "every reproduction needs a negative control"
    for c in controls:  # the control passes because every one of its switched claims fails
        if c["id"] in pinned:
            continue
        assert c["details"] and all(d["verdict"] == "fail" for d in c["details"]) and c["passed"]
        assert math.isclose(c["measured"], len(c["details"]))
    pngs = sorted(outcome.out.glob("*.png"))
    assert pngs and all(p.with_suffix(".pdf").stat().st_size > 0 for p in pngs)
    html = (outcome.out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs)
    assert outcome.name in html and "code version" in html and "runtime" in html
    assert outcome.runtime_s > 0  # wall time is reported (docs/reproductions.md), never asserted: speed lives in bench/

"""Claims over seeds: intervals against independent computations (scipy.stats.binomtest, exact enumeration
of bootstrap resamples, coverage of a known mean over simulated draws), the three-way verdict, negative
controls with undecided sub-claims, and the --sensitivity map on a toy reproduction."""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import sys

import numpy as np
import pytest
from scipy import stats

from lazyrich.experiments import REGISTRY, reproduce, reproduction
from lazyrich.experiments.base import Claim, control, k_of_n, ordering, over_resamples, over_seeds, with_knob
from lazyrich.experiments.intervals import (MIN_SAMPLES, bootstrap_interval, clopper_pearson, ordering_support,
                                            resample_interval, seeds_needed, seeds_needed_share)


@pytest.mark.parametrize("k,n", [(0, 5), (3, 5), (5, 5), (8, 8), (2, 2), (7, 20), (1, 1)])
def test_clopper_pearson_matches_binomtest(k, n):
    want = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert np.allclose(clopper_pearson(k, n), (want.low, want.high), atol=1e-12)


def test_bootstrap_interval_covers_a_known_mean_at_the_advertised_rate():
    """BCa 90 % intervals of the mean of 20 normal draws cover the true mean in ≈ 90 % of 300 simulated
    data sets (binomial s.d. 1.7 %; BCa slightly under-covers at n = 20, so the band is 0.83–0.95)."""
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(300):
        lo, hi = bootstrap_interval(rng.normal(1.0, 2.0, 20), confidence=0.90, n_resamples=1000)
        hits += lo <= 1.0 <= hi
    assert 0.83 <= hits / 300 <= 0.95, hits


def test_bootstrap_interval_needs_three_values_and_handles_constant_samples():
    assert all(math.isnan(v) for v in bootstrap_interval([1.0, 2.0]))
    assert bootstrap_interval([0.5] * MIN_SAMPLES) == (0.5, 0.5)
    assert all(math.isnan(v) for v in bootstrap_interval([1.0, math.nan, 2.0]))


def test_ordering_support_matches_exact_enumeration():
    """Support of 'mean of the resample > 0' for x = (3, −1, −1): exact share over all 27 resamples vs the
    Monte Carlo estimate (2000 resamples: s.d. ≤ 1.1 %)."""
    x = np.array([3.0, -1.0, -1.0])
    exact = np.mean([x[list(idx)].mean() > 0 for idx in itertools.product(range(3), repeat=3)])
    assert abs(ordering_support(3, lambda idx: x[idx].mean() > 0) - exact) < 0.04
    assert math.isnan(ordering_support(2, lambda idx: True))


def test_resampled_statistic_interval():
    """Percentile interval of a statistic of the seed set: the mean's matches numpy's own percentile bootstrap
    within resampling noise; a constant statistic gives the point; fewer than 3 seeds give none."""
    x = np.array([0.3, 1.2, 0.8, 2.0, 1.1, 0.6])
    lo, hi = resample_interval(len(x), lambda idx: x[idx].mean())
    rng = np.random.default_rng(1)
    ref = np.quantile(x[rng.integers(0, 6, (20000, 6))].mean(1), [0.025, 0.975])
    assert abs(lo - ref[0]) < 0.05 and abs(hi - ref[1]) < 0.05
    assert resample_interval(4, lambda idx: 2.0) == (2.0, 2.0)
    assert all(math.isnan(v) for v in resample_interval(2, lambda idx: 1.0))
    c = over_resamples("c", "s", "src", "derived", len(x), lambda idx: x[idx].mean(), 0.0, 0.0, "at_least")
    assert c.verdict == "pass" and c.measured == pytest.approx(x.mean()) and c.n == 6


def test_seeds_needed_is_the_smallest_n_that_clears():
    x = np.array([1.0, 1.4, 0.7, 1.2, 0.9])
    n = seeds_needed(x, 0.8)
    t = lambda m: stats.t.ppf(0.975, m - 1)  # noqa: E731  Student t: z would say 7, too few for so few seeds
    s, gap = x.std(ddof=1), abs(x.mean() - 0.8)
    assert n == 8 and t(n) * s / math.sqrt(n) < gap and t(n - 1) * s / math.sqrt(n - 1) >= gap
    assert seeds_needed([1.0], 0.0) is None and seeds_needed([1.0, 1.0], 0.0) == MIN_SAMPLES


@pytest.mark.parametrize("samples,e,cmp,verdict", [
    ([1.0, 1.1, 0.9, 1.05, 0.95], 0.5, "at_least", "pass"),
    ([1.0, 1.1, 0.9, 1.05, 0.95], 1.5, "at_least", "fail"),
    ([0.0, 2.0, 0.1, 1.9, 1.0], 1.0, "at_least", "inconclusive"),  # the mean is 1.0: the point alone would pass
    ([1.0, 1.1, 0.9, 1.05, 0.95], 1.5, "at_most", "pass"),
    ([1.0, 1.1, 0.9, 1.05, 0.95], 0.5, "at_most", "fail"),
    ([1.0, 1.1, 0.9, 1.05, 0.95], 1.0, "within", "pass"),  # tolerance 0.2 below
    ([3.0, 3.1, 2.9, 3.05, 2.95], 1.0, "within", "fail"),
    ([1.0, 1.5], 0.0, "at_least", "inconclusive"),  # two seeds: no interval
])
def test_over_seeds_verdict_follows_the_interval(samples, e, cmp, verdict):
    c = over_seeds("c", "s", "src", "derived", samples, e, 0.2 if cmp == "within" else 0.0, cmp)
    assert c.verdict == verdict and c.passed is (verdict == "pass")
    assert c.measured == pytest.approx(np.mean(samples))
    lo, hi = c.interval
    if verdict != "inconclusive" or len(samples) >= MIN_SAMPLES:
        assert lo <= c.measured <= hi
    d = c.to_dict()
    assert d["verdict"] == verdict and d["method"] == "bootstrap" and len(d["samples"]) == len(samples)
    json.dumps(d, allow_nan=False)


def test_k_of_n_verdicts():
    assert k_of_n("c", "s", "src", "derived", [True] * 8, 0.5).verdict == "pass"   # CP lower bound 0.63
    assert k_of_n("c", "s", "src", "derived", [True] * 2, 0.5).verdict == "inconclusive"
    assert k_of_n("c", "s", "src", "derived", [False] * 8, 0.5).verdict == "fail"
    assert k_of_n("c", "s", "src", "derived", [True] * 8, 0.5).measured == 1.0


def test_ordering_verdicts_and_exact_claims_keep_tolerance():
    up = ordering("c", "s", "src", "paper", 1.0, 0.5, 0.0, "at_least", 6, lambda idx: True)
    split = ordering("c", "s", "src", "paper", 1.0, 0.5, 0.0, "at_least", 6, lambda idx: idx[0] % 2 == 0)
    few = ordering("c", "s", "src", "paper", 1.0, 0.5, 0.0, "at_least", 1, lambda idx: True)
    assert (up.verdict, split.verdict, few.verdict) == ("pass", "inconclusive", "inconclusive")
    assert ordering("c", "s", "src", "paper", 0.0, 0.5, 0.0, "at_least", 5, lambda idx: False).verdict == "fail"
    exact = Claim("c", "s", "src", "derived", 1e-13, 0.0, 1e-12)
    assert exact.verdict == "pass" and "interval" not in exact.to_dict() and exact.uncertainty == ""


def test_control_is_inconclusive_when_a_switched_claim_is():
    bad = Claim("a", "s", "src", "derived", 2.0, 1.0)
    unsure = over_seeds("b", "s", "src", "derived", [0.0, 2.0], 1.0, 0.0, "at_least")
    good = Claim("g", "s", "src", "derived", 1.0, 1.0)
    assert control("k", "s", "src", [bad, bad]).verdict == "pass"
    assert control("k", "s", "src", [bad, unsure]).verdict == "inconclusive"
    assert control("k", "s", "src", [bad, unsure, good]).verdict == "fail"


def test_with_knob_sets_nested_keys():
    cfg = {"a": 1, "b": {"c": 2}}
    assert with_knob(cfg, "b.c", 5) == {"a": 1, "b": {"c": 5}} and cfg["b"]["c"] == 2


@pytest.fixture()
def toy_sensitive():
    """A reproduction whose claim holds for small noise and at late checkpoints only."""
    @reproduction("toy-sens", "toy", quick={"noise": 0.1, "seeds": [0, 1, 2, 3, 4]}, full={"noise": 0.1, "seeds": [0]},
                  runtime={"quick": "0 s", "full": "0 s"}, source="t", knobs={"noise": [0.1, 3.0], "seeds": [[0, 1]]},
                  decisive=["positive"])
    def run(ctx):
        rng = np.random.default_rng(0)
        per_seed = {t: 0.2 * t + ctx.cfg["noise"] * rng.normal(size=len(ctx.cfg["seeds"])) for t in (0, 5, 10)}
        evaluate = lambda t: [over_seeds("positive", "value > 0", "t", "derived", per_seed[t], 0.0, 0.0, "at_least")]  # noqa: E731
        ctx.add(evaluate(10)[0])
        ctx.at_checkpoints([0, 5, 10], evaluate)
        ctx.control("control-neg", "negated values must fail", "t",
                    [over_seeds("positive", "x", "t", "derived", -per_seed[10], 0.0, 0.0, "at_least")])
    yield "toy-sens"
    REGISTRY.pop("toy-sens")


def test_sensitivity_map(toy_sensitive, tmp_path):
    out = reproduce(toy_sensitive, quick=True, out=tmp_path, sensitivity=True)
    assert out.exit_code == 0 and out.verdicts == {"positive": "pass", "control-neg": "pass"}
    m = json.loads((tmp_path / "sensitivity.json").read_text())
    assert m["rows"] == ["as run (quick)", "noise = 3.0", "seeds = 2 seeds"]
    assert m["columns"] == ["step 0", "step 5", "step 10", "reported"]
    v = m["verdicts"]["positive"]
    assert v["as run (quick)"]["step 10"] == "pass" and v["as run (quick)"]["step 0"] != "pass"
    assert v["noise = 3.0"]["step 10"] == "inconclusive" and v["seeds = 2 seeds"]["reported"] == "inconclusive"
    assert (tmp_path / "sensitivity.png").stat().st_size > 0
    assert "Sensitivity (--sensitivity)" in (tmp_path / "report.html").read_text()


def test_cli_reports_inconclusive_without_failing(toy_sensitive, tmp_path, monkeypatch, capsys):
    """Inconclusive claims exit 0 and are listed; the summary line counts them; --sensitivity is accepted."""
    from lazyrich import cli

    monkeypatch.setattr(sys, "argv", ["lazyrich", "reproduce", toy_sensitive, "--quick", "--sensitivity", "--out", str(tmp_path)])
    cli.main()  # returns normally: exit code 0
    out = capsys.readouterr()
    assert "2/2 claims passed, 0 failed, 0 inconclusive" in out.out and "95% CI [" in out.out
    assert (tmp_path / "sensitivity.png").exists()
    REGISTRY[toy_sensitive] = dataclasses.replace(REGISTRY[toy_sensitive], sizes={
        "quick": {"noise": 0.1, "seeds": [0, 1]}, "full": {"noise": 0.1, "seeds": [0]}})
    monkeypatch.setattr(sys, "argv", ["lazyrich", "reproduce", toy_sensitive, "--quick", "--out", str(tmp_path / "two")])
    cli.main()
    out = capsys.readouterr()
    assert re.search(r"INCONCLUSIVE +positive", out.out) and "inconclusive (interval straddles" in out.err
    doc = json.loads((tmp_path / "two" / "claims.json").read_text())
    assert doc["verdicts"] == {"pass": 0, "fail": 0, "inconclusive": 2}  # the control of an undecided claim is undecided
    assert "INCONCLUSIVE" in (tmp_path / "two" / "report.html").read_text()


def test_at_checkpoints_merges_calls_per_arm(tmp_path):
    """balance-deep calls at_checkpoints once per activation: every arm's claims reach the map at every
    checkpoint (an overwrite kept only the last arm's); a repeated step is evaluated once; an id evaluated
    twice at one step is an error."""
    from lazyrich.errors import LazyrichError
    from lazyrich.experiments.base import Context, Experiment
    from lazyrich.experiments.sensitivity import sensitivity_map

    calls: list[tuple[str, int]] = []

    def arm(name: str, sign: float):
        def evaluate(step: int):
            calls.append((name, step))
            return [Claim(f"{name}-ok", "s", "t", "derived", sign * step, 0.0, 0.0, "at_least")]
        return evaluate

    def run(ctx):
        for name, sign in (("linear", 1.0), ("relu", -1.0)):
            ctx.at_checkpoints([1, 2, 2], arm(name, sign))
            ctx.claim(f"{name}-ok", "s", "t", "derived", sign, 0.0, 0.0, "at_least")

    exp = Experiment("toy-arms", "toy", {"quick": {}, "full": {}}, {"quick": "0 s", "full": "0 s"}, "t", run,
                     decisive=("linear-ok", "relu-ok"))
    ctx = Context("toy-arms", "quick", {}, tmp_path, sensitivity=True)
    run(ctx)
    m = sensitivity_map(exp, ctx, tmp_path).verdicts
    assert {c: m["linear-ok"]["as run (quick)"][c] for c in ("step 1", "step 2")} == {"step 1": "pass", "step 2": "pass"}
    assert {c: m["relu-ok"]["as run (quick)"][c] for c in ("step 1", "step 2")} == {"step 1": "fail", "step 2": "fail"}
    assert calls == [("linear", 1), ("linear", 2), ("relu", 1), ("relu", 2)]
    with pytest.raises(LazyrichError, match="evaluated twice at checkpoint 1"):
        ctx.at_checkpoints([1], arm("linear", 1.0))
    Context("off", "quick", {}, tmp_path).at_checkpoints([1], arm("never", 1.0))  # no-op without --sensitivity
    assert ("never", 1) not in calls


@pytest.mark.parametrize("share,rate,conf", [(1.0, 0.5, 0.95), (1.0, 0.5, 0.99), (7 / 8, 0.5, 0.95), (0.75, 0.5, 0.95),
                                             (1.0, 0.8, 0.95), (0.5, 0.5, 0.95)])
def test_seeds_needed_share_is_the_first_n_whose_exact_interval_clears(share, rate, conf):
    """Against scipy.stats.binomtest's exact interval, n by n; every seed agreeing needs (α/2)^{1/n} > rate."""
    want = next((n for n in range(MIN_SAMPLES, 400) if round(share * n) > 0 and stats.binomtest(
        round(share * n), n).proportion_ci(conf, "exact").low > rate), None) if share > rate else None
    assert seeds_needed_share(share, rate, conf) == want
    if share == 1.0:
        assert want == math.floor(math.log((1 - conf) / 2) / math.log(rate)) + 1


def test_power_floor_claims_over_too_few_seeds_are_never_a_pass():
    """The fragile pattern (kunin-single-neuron: 3 agreeing seeds pass, 6 fail): a claim over fewer seeds than
    it needs is inconclusive although its bootstrap interval or support clears."""
    few = over_seeds("m", "s", "src", "derived", [1.0, 1.2, 1.4], 0.8, 0.0, "at_least")
    assert few.interval[0] > 0.8 and few.seeds_needed == 4 and few.verdict == "inconclusive"
    assert "needs 4 seeds" in few.uncertainty
    assert over_seeds("m", "s", "src", "derived", [1.0, 1.2, 1.4, 1.1], 0.8, 0.0, "at_least").verdict == "pass"
    # a median is the sign test: 7 of 8 seeds above the threshold is p = 0.07 > 0.05 (binomtest), 8 of 8 clears
    x = [2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 0.5]
    med = over_seeds("m", "s", "src", "derived", x, 1.0, 0.0, "at_least", statistic="median")
    assert stats.binomtest(7, 8).pvalue > 0.05 and med.interval[0] > 1.0 and med.seeds_needed == 9
    assert med.verdict == "inconclusive"
    assert over_seeds("m", "s", "src", "derived", x[:-1] + [1.5], 1.0, 0.0, "at_least", statistic="median").verdict == "pass"
    # orderings: resamples of 3 (or 5) agreeing seeds all agree; 6 agreeing seeds show "most seeds" at 95 %
    for n, want in ((3, "inconclusive"), (5, "inconclusive"), (6, "pass")):
        assert ordering("o", "s", "src", "paper", 1.0, 0.5, 0.0, "at_least", n, lambda idx: True).verdict == want
    # failing stays failing at any n; Clopper–Pearson is exact and only reports its count
    assert ordering("o", "s", "src", "paper", 0.0, 0.5, 0.0, "at_least", 3, lambda idx: False).verdict == "fail"
    cp = k_of_n("k", "s", "src", "paper", [True] * 8, 0.5)
    assert cp.verdict == "pass" and cp.seeds_needed == 6 and not cp.underpowered
    assert k_of_n("k", "s", "src", "paper", [False] * 6, 0.5, "at_most").seeds_needed == 6

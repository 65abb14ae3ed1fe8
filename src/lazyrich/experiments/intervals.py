"""Confidence intervals for claims measured over seeds: bootstrap (BCa) of a statistic, Clopper–Pearson for
"k of n seeds", the bootstrap support of an ordering, and the seed count a claim needs to be conclusive.

Everything is deterministic (fixed resampling seed) so that claims.json is reproducible. Rules
(docs/reproductions.md, "Verdicts"):
- bootstrap: `scipy.stats.bootstrap`, BCa, 9,999 resamples; percentile where BCa is undefined (constant
  samples: the interval is the point). Fewer than `MIN_SAMPLES` values give no interval (NaN, NaN): such
  a claim is inconclusive, because bootstrap intervals of 1–2 values are the range of the values.
- Clopper–Pearson: the exact two-sided binomial interval (`scipy.stats.binomtest(...).proportion_ci("exact")`).
- ordering support: the share of bootstrap resamples of the seeds in which the ordering holds.
- any other statistic of the seed set (a slope fitted to seed-averaged values): percentile bootstrap over
  resamples of the seeds (`resample_interval`).
- power: the seed count a claim needs (`seeds_needed` for a mean: Student t from the measured spread;
  `seeds_needed_share` for a share of seeds, a median or an ordering: the exact binomial interval). A
  claim over fewer seeds than it needs is never a pass (`base.Claim.verdict`): the bootstrap of a
  handful of seeds never leaves their range, so 3 seeds that agree look certain.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np
from scipy import stats

MIN_SAMPLES = 3       # below this a statistic over seeds has no interval: inconclusive
N_RESAMPLES = 9999
RESAMPLE_SEED = 20240606


def _clean(samples: Sequence[float]) -> np.ndarray:
    return np.asarray([float(s) for s in samples], float)


def bootstrap_interval(samples: Sequence[float], statistic: str = "mean", confidence: float = 0.95,
                       n_resamples: int = N_RESAMPLES) -> tuple[float, float]:
    """Two-sided bootstrap interval (BCa; percentile where BCa is undefined) of `statistic` ("mean" or
    "median") of `samples`. (NaN, NaN) with fewer than MIN_SAMPLES values or any non-finite value."""
    x = _clean(samples)
    if len(x) < MIN_SAMPLES or not np.all(np.isfinite(x)):
        return (math.nan, math.nan)
    if np.all(x == x[0]):
        return (float(x[0]), float(x[0]))
    fn = {"mean": np.mean, "median": np.median}[statistic]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa's degenerate-jackknife warnings: we fall back below
        for method in ("BCa", "percentile"):
            ci = stats.bootstrap((x,), fn, method=method, n_resamples=n_resamples, confidence_level=confidence,
                                 random_state=np.random.default_rng(RESAMPLE_SEED), vectorized=True).confidence_interval
            lo, hi = float(ci.low), float(ci.high)
            if math.isfinite(lo) and math.isfinite(hi):
                return (lo, hi)
    return (math.nan, math.nan)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval of a binomial proportion from k successes in n trials."""
    a = 1.0 - confidence
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return (lo, hi)


def ordering_support(n: int, holds: Callable[[np.ndarray], bool], n_resamples: int = 2000) -> float:
    """Share of bootstrap resamples of n seeds (index arrays drawn with replacement) for which
    `holds(indices)` is true. NaN with fewer than MIN_SAMPLES seeds."""
    if n < MIN_SAMPLES:
        return math.nan
    rng = np.random.default_rng(RESAMPLE_SEED)
    return float(np.mean([bool(holds(rng.integers(0, n, n))) for _ in range(n_resamples)]))


def resample_interval(n: int, statistic: Callable[[np.ndarray], float], confidence: float = 0.95,
                      n_resamples: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap interval of any statistic of the seed set (e.g. a slope fitted to seed-averaged
    values): `statistic(idx)` on resamples `idx` of range(n) drawn with replacement. (NaN, NaN) with fewer
    than MIN_SAMPLES seeds or when any resample gives a non-finite value."""
    if n < MIN_SAMPLES:
        return (math.nan, math.nan)
    rng = np.random.default_rng(RESAMPLE_SEED)
    v = np.array([float(statistic(rng.integers(0, n, n))) for _ in range(n_resamples)])
    if not np.all(np.isfinite(v)):
        return (math.nan, math.nan)
    a = (1 - confidence) / 2
    return (float(np.quantile(v, a)), float(np.quantile(v, 1 - a)))


def seeds_needed(samples: Sequence[float], threshold: float, confidence: float = 0.95) -> int | None:
    """Seeds needed for a mean over seeds to clear `threshold`, from the measured spread: the smallest n ≥
    MIN_SAMPLES with t_{n−1}·s/√n < |mean − threshold| (Student t, two-sided at `confidence`: the normal z
    understates the spread of 3–5 seeds by a factor up to 2.2). None when it cannot be estimated (fewer
    than 2 values, or the mean sits on the threshold)."""
    x = _clean(samples)
    if len(x) < 2 or not np.all(np.isfinite(x)):
        return None
    gap, s = abs(float(x.mean()) - threshold), float(x.std(ddof=1))
    if s == 0:
        return MIN_SAMPLES if gap > 0 else None
    if gap == 0:
        return None
    q = 0.5 + confidence / 2
    n = max(MIN_SAMPLES, math.ceil((float(stats.norm.ppf(q)) * s / gap) ** 2))  # z gives a lower bound on n
    while float(stats.t.ppf(q, n - 1)) * s / math.sqrt(n) >= gap:
        n += 1
    return n


def seeds_needed_share(share: float, rate: float = 0.5, confidence: float = 0.95, n_max: int = 100_000) -> int | None:
    """Seeds needed for a share of seeds to clear `rate` (the exact Clopper–Pearson lower bound above `rate`) if
    further seeds keep the measured `share`: the smallest n ≥ MIN_SAMPLES with clopper_pearson(round(share·n),
    n)[0] > rate. `share` = 1 (every seed agrees) at rate ½ needs 6 seeds at 95 % ((α/2)^{1/n} > ½), 8 at 99 %.
    None when share ≤ rate (no seed count would do)."""
    if not share > rate:
        return None
    lo, hi = MIN_SAMPLES, MIN_SAMPLES
    clears = lambda n: round(share * n) > 0 and clopper_pearson(round(share * n), n, confidence)[0] > rate  # noqa: E731
    while not clears(hi):  # the lower bound grows with n at a fixed share (up to rounding): bracket, then scan
        lo, hi = hi, 2 * hi
        if hi > n_max:
            return None
    return next(n for n in range(lo, hi + 1) if clears(n))

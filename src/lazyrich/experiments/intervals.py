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
    """Seeds needed for a mean-over-seeds interval to clear `threshold`, from the measured spread: the
    smallest n with z·s/√n < |mean − threshold| (normal approximation, z two-sided), at least MIN_SAMPLES.
    None when it cannot be estimated (fewer than 2 values, or the mean sits on the threshold)."""
    x = _clean(samples)
    if len(x) < 2 or not np.all(np.isfinite(x)):
        return None
    gap, s = abs(float(x.mean()) - threshold), float(x.std(ddof=1))
    if s == 0:
        return MIN_SAMPLES if gap > 0 else None
    if gap == 0:
        return None
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return max(MIN_SAMPLES, math.ceil((z * s / gap) ** 2))

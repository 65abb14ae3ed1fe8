"""ssl-stepwise at quick size (verdicts, schema, figures) and its helpers against obvious implementations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyrich.experiments import ssl_stepwise as sw
from lazyrich.theory import ssl

from .quick_checks import check_quick_outcome


@pytest.mark.quick_repro
def test_quick_run_passes_with_schema(quick_outcomes):
    torch.set_num_threads(1)
    check_quick_outcome(quick_outcomes("ssl-stepwise"))


def test_plateau_count_reads_a_staircase():
    t = np.linspace(0, 10, 201)
    stair = ssl.eigenvalue_trajectory(t, [2.0, 1.0, 0.5], [1e-6, 1e-6, 1e-6])
    assert sw.plateaus(stair) == 3
    together = ssl.eigenvalue_trajectory(t, [1.0, 1.0, 1.0], [1e-6, 1e-6, 1e-6])
    assert sw.plateaus(together) == 1  # only the final plateau (all learned): no steps
    tc = sw.crossings(t, stair)
    assert np.allclose(tc, ssl.step_times([2.0, 1.0, 0.5], [1e-6] * 3), atol=t[1])


def test_batched_linear_gd_equals_a_per_seed_loop():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 6))
    G = ssl.contrastive_matrix(X, X + 0.3 * rng.normal(size=X.shape))
    cfg = dict(scale=1e-3, lr=0.01, T=0.5, every=10)
    run = sw.linear_runs(G, cfg, 2, [0, 5])
    for s in range(2):
        W = run["W0"][s].copy()
        for _ in range(50):
            W = W - cfg["lr"] * ssl.barlow_gradient(W, G)
        assert np.allclose(run["W"][s], W, rtol=0, atol=1e-13)
        assert np.allclose(run["ev"][-1, s], np.sort(np.linalg.eigvalsh(W @ G @ W.T))[::-1], atol=1e-13)


def test_digit_views_are_centred_shifted_copies():
    a, b = sw.digit_pairs(20, 1, 0.0, 3)
    assert a.shape == b.shape == (20, 64)
    assert np.abs(np.concatenate([a, b]).mean(0)).max() < 1e-12
    # without noise the views are wrap-around shifts of one image: equal pixel sums, image by image
    assert np.allclose(a.sum(1), b.sum(1), atol=1e-12)
    a2, b2 = sw.digit_pairs(20, 1, 0.1, 3)
    assert not np.allclose(a2.sum(1), b2.sum(1), atol=1e-3)  # noise breaks it

"""tuned-lr-scaling: the quick run (every claim pass, the control's swapped claims fail) and its helpers
against hand computations: the tables' exponent rule, lr* from the top trials, per-seed slopes, the cost
of the search to reach the grid's best loss."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lazyrich.experiments import tuned_lr_scaling as tl
from lazyrich.experiments.base import get

from .quick_checks import check_quick_outcome


@pytest.mark.quick_repro
def test_quick_run_passes_with_schema(quick_outcomes):
    out = quick_outcomes("tuned-lr-scaling")
    check_quick_outcome(out)
    cost = pd.read_csv(out.out / "cost.csv")
    assert len(cost) == 2 * 3 * 3 and (cost.grid_cost == 17 * 3 * 40).all()  # schemes × widths × grid seeds


def test_registered_with_sizes_and_knobs():
    exp = get("tuned-lr-scaling")
    assert set(exp.sizes) == {"quick", "full"} and set(exp.knobs) == {"steps", "batches"}
    assert set(exp.decisive) == {"slope-sp", "slope-mup"}


def test_table_exponents_from_the_layer_tables():
    """SGD, two layers (d, n, 1): c_lr = m²·lr. SP: every lr_scale 1 → exponents (0, 0). μP: input lr = fan_out = n,
    readout lr = 1/fan_in = 1/n → (1, −1). NTP: m = 1/√fan_in → c_lr = 1/fan_in → (0, −1). The rule
    min_l (e_μP − e_S): SP min(1, −1) = −1; NTP min(1, 0) = 0 (the NTK's lr is width-independent); μP 0."""
    assert tl.table_exponent("sp") == pytest.approx(-1.0)
    assert tl.table_exponent("ntp") == pytest.approx(0.0)
    assert tl.table_exponent("mup") == pytest.approx(0.0)
    # Adam: μP hidden/readout lr 1/fan_in, SP 1: the readout sets −1 again (three layers: the hidden layer too)
    assert tl.table_exponent("sp", "adam", depth=3) == pytest.approx(-1.0)


def _frame(law: float, noise: float = 0.0, seeds: int = 3) -> pd.DataFrame:
    """Synthetic trials whose loss is minimal at lr* = 2·n^law (per seed, the minimum shifted by `noise`)."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        shift = noise * rng.standard_normal()
        for n in (32, 128, 512):
            star = math.log(2 * n**law) + shift
            for lr in np.exp(np.linspace(star - 2, star + 2, 41)):
                rows.append({"scheme": "sp", "width": n, "seed": seed, "lr": lr, "std_scale": 1.0,
                             "loss": 1 + (math.log(lr) - star) ** 2})
    return pd.DataFrame(rows)


def test_best_lr_and_per_seed_slopes_recover_the_law():
    frame = _frame(-1.0)
    best = tl.best_lr(frame, top=3)  # the minimum and its two neighbours, symmetric in log lr
    for r in best.itertuples():
        assert r.lr == pytest.approx(2 * r.width**-1.0, rel=1e-12)
    np.testing.assert_allclose(tl.seed_slopes(best, "sp"), [-1.0] * 3, atol=1e-12)
    shifted = tl.seed_slopes(tl.best_lr(_frame(-1.0, noise=0.5)), "sp")  # a per-seed shift leaves every slope
    np.testing.assert_allclose(shifted, [-1.0] * 3, atol=1e-12)


def test_slope_claims_pass_on_the_law_and_fail_on_the_other():
    best = tl.best_lr(_frame(-1.0, seeds=6), top=3)
    cfg = {"widths": [32, 128, 512], "tolerance": 0.25}
    assert tl.slope_claims(best, cfg, "sp", "sp")[0].verdict == "pass"
    assert tl.slope_claims(best, cfg, "sp", "mup")[0].verdict == "fail"


def test_cost_to_match_counts_whole_batches_until_the_grid_best():
    cfg = {"steps": 10, "batch_size": 4, "grid_lr": 5, "grid_init": [1.0, 2.0]}
    grid = pd.DataFrame({"scheme": "sp", "width": 32, "seed": 0, "loss": [1.0, 2.0]})
    trials = pd.DataFrame({"scheme": "sp", "width": 32, "seed": [0] * 8, "batch": [0] * 4 + [1] * 4,
                           "loss": [3.0, 2.0, 1.5, 1.2, 1.1, 1.005, 4.0, 5.0]})
    cost = tl.cost_to_match(trials, grid, cfg, rel=0.01)
    assert cost.search_cost.tolist() == [2 * 4 * 10] and cost.grid_cost.tolist() == [5 * 2 * 10]
    never = tl.cost_to_match(trials.assign(loss=trials.loss + 1), grid, cfg, rel=0.01)
    assert math.isinf(never.search_cost.iloc[0])

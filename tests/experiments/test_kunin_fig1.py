"""kunin-fig1's best-cell statistic (`best_cell`): the seed-bootstrap of the upstream-vs-rest gap against its
exact distribution on two seeds, clear cases, and bad input. The quick run itself is checked in
test_reproductions.py (shared quick check)."""
from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lazyrich.errors import LazyrichError
from lazyrich.experiments.kunin_fig1 import best_cell


def table(values: dict[int, dict[tuple[float, float], float]]) -> pd.DataFrame:
    return pd.DataFrame([{"seed": s, "tau": t, "delta": d, "value": v} for s, cells in values.items()
                         for (t, d), v in cells.items()])


def test_three_seeds_match_the_exact_bootstrap_distribution():
    # one upstream and one δ ≤ 0 cell; seed ratios up/other 1/3, 3/2, 1. A resample's ratio of sums lies between
    # its seeds' ratios, so the extremes are the single-seed resamples (probability 1/27 > 2.5 % each): the 95 %
    # interval is [log10(1/3), log10(3/2)] exactly; P(up) is counted over all 27 resamples.
    seeds = {0: (1.0, 3.0), 1: (3.0, 2.0), 2: (2.0, 2.0)}
    b = best_cell(table({s: {(0.1, 1.0): u, (0.1, -1.0): o} for s, (u, o) in seeds.items()}))
    assert (b.tau, b.delta, b.mean) == (0.1, 1.0, 2.0)
    assert b.up == (0.1, 1.0, 2.0) and b.other == pytest.approx((0.1, -1.0, 7 / 3), abs=1e-15)
    assert b.gap == pytest.approx(math.log10(2 / (7 / 3)), abs=1e-15)
    assert b.gap_lo == pytest.approx(math.log10(1 / 3), abs=1e-15)
    assert b.gap_hi == pytest.approx(math.log10(3 / 2), abs=1e-15)
    resamples = list(itertools.product(range(3), repeat=3))
    exact = sum(sum(seeds[i][0] for i in r) < sum(seeds[i][1] for i in r) for r in resamples) / len(resamples)
    assert abs(b.p_up - exact) < 0.035  # 2000 resamples: binomial sd ≤ 0.011
    assert b.verdict == "undecided"


def test_clear_orderings_get_their_verdicts():
    rng = np.random.default_rng(1)
    noise = lambda: float(np.exp(0.05 * rng.standard_normal()))  # noqa: E731
    up = table({s: {(0.1, 1.0): 1e-3 * noise(), (0.1, 0.0): 1e-2 * noise(), (1.0, -1.0): 1e-1 * noise()} for s in range(5)})
    b = best_cell(up)
    assert b.verdict == "upstream" and b.p_up == 1.0 and b.gap_hi < -0.8 and b.seeds == 5
    down = up.assign(delta=-up.delta)  # δ flipped: the same numbers now say "not upstream"
    b = best_cell(down)
    assert b.verdict == "not upstream" and b.p_up == 0.0 and (b.tau, b.delta) == (0.1, -1.0)
    # largest value: the (1.0, -1.0) cell in `up` is 100x the rest, so its mirror in `down` is upstream
    assert best_cell(up, lowest=False).verdict == "not upstream"
    h = best_cell(down, lowest=False)
    assert h.verdict == "upstream" and (h.tau, h.delta) == (1.0, 1.0) and h.gap_lo > 0.8


def test_fewer_than_three_seeds_have_no_interval():
    for n in (1, 2):
        b = best_cell(table({s: {(0.1, 1.0): 1.0 + s, (0.1, -1.0): 3.0} for s in range(n)}))
        assert b.verdict == "undecided" and b.gap_lo == -math.inf and b.gap_hi == math.inf and b.p_up == 1.0


def test_bad_tables_are_refused():
    with pytest.raises(LazyrichError, match="every .* cell needs a value for every seed"):
        best_cell(table({0: {(0.1, 1.0): 1.0, (0.1, -1.0): 3.0}, 1: {(0.1, 1.0): 1.0}}))
    with pytest.raises(LazyrichError, match="delta > 0 and with delta <= 0"):
        best_cell(table({0: {(0.1, 1.0): 1.0, (0.2, 0.5): 3.0}}))


def test_gpu_session_runs_its_tiny_size(tmp_path):
    """bench/gpu_session.sh: the Kunin test-loss section end to end at --size tiny (CPU, seconds); bad sizes exit 2."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    p = subprocess.run(["bash", "bench/gpu_session.sh", "--size", "tiny"], cwd=root, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "sessions.txt").read_text().startswith("kunin_test_loss: rc=0 ")
    rows = [json.loads(x) for x in (tmp_path / "kunin_test_loss" / "summary.jsonl").read_text().splitlines()]
    assert sorted((r["d"], r["step"]) for r in rows) == [(5, 10), (5, 30), (8, 10), (8, 30)]
    assert all(r["seeds"] == 3 and r["verdict"] in ("upstream", "not upstream", "undecided") for r in rows)
    # issue 13's sections: the Triton tests, bench/gpu_fig1.py (every engine's rate and error row), the reproductions
    sections = [line.split(":")[0] for line in (tmp_path / "sessions.txt").read_text().splitlines()]
    assert sections == ["kunin_test_loss", "triton_tests", "gpu_fig1", "reproduce_spectral-width-scaling", "reproduce_kunin-fig1"]
    assert all(" rc=0 " in line for line in (tmp_path / "sessions.txt").read_text().splitlines())
    fig1 = tmp_path / "gpu_fig1"
    rates = [json.loads(x) for x in (fig1 / "rates.jsonl").read_text().splitlines()]
    assert [r["method"] for r in rates] == ["gemm peak", "loop", "batched", "compile", "fused", "triton/fp32", "triton/tf32",
                                            "triton/3xtf32"] and all(r.get("rate", 1) > 0 for r in rates[1:] if "error" not in r)
    errors = {r["engine"]: r for r in map(json.loads, (fig1 / "errors.jsonl").read_text().splitlines())}
    for mode in ("fp32", "tf32", "3xtf32"):  # the interpreter computes fp32 in every mode: fp32 rounding only
        assert errors[f"triton/{mode}"]["loss_rel_err"] < 1e-5 and errors[f"triton/{mode}"]["delta_k_rel_err"] < 1e-5
    # the written-out emulation loop is the library's dynamics: the same float64 δ_k drift as lazyrich.train
    assert abs(errors["emulated float64 (CPU)"]["delta_k_drift"] / errors["float64 fused (reference)"]["delta_k_drift"] - 1) < 1e-9
    emulated = {mode: errors[f"emulated {mode} (CPU)"]["loss_rel_err"] for mode in ("float32", "tf32", "3xtf32")}
    assert emulated["tf32"] > 10 * max(emulated["float32"], emulated["3xtf32"]), emulated  # 2⁻¹¹ rounding vs fp32
    assert "summary (tiny, cpu" in p.stdout and "triton/3xtf32" in p.stdout
    bad = subprocess.run(["bash", "bench/gpu_session.sh", "--size", "huge"], cwd=root, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "gpu, cpu or tiny" in bad.stderr


def test_sensitivity_reevaluates_the_decisive_claims_at_every_checkpoint(tmp_path):
    """A tiny grid through the reproduction with --sensitivity on: the decisive claims come back at each recorded
    checkpoint, with the checkpoint's own verdict (the reported best-cell claims cover every checkpoint ≥ 10³)."""
    from lazyrich.experiments import get
    from lazyrich.experiments.base import Context

    exp = get("kunin-fig1")
    cfg = dict(exp.sizes["quick"], d=8, n=60, n_test=200, deltas=[-1.0, 0.0, 1.0], steps=100, checkpoints=[10, 100],
               fig1a=dict(exp.sizes["quick"]["fig1a"], steps=50))
    ctx = Context("kunin-fig1", "quick", cfg, tmp_path, sensitivity=True)
    exp.run(ctx)
    assert sorted(ctx.checkpoint_claims) == [10, 100]
    for step, claims in ctx.checkpoint_claims.items():
        assert [c.id for c in claims] == list(exp.decisive)
        assert f"step {step}" in claims[0].statement and claims[0].n == len(cfg["seeds"])
    assert set(exp.decisive) <= {c.id for c in ctx.claims} and set(exp.knobs) == {"d", "seeds"}

"""A-priori regime predictor vs the measured kernel distance on a τ×δ grid of two-layer ReLU students."""
import numpy as np
import pytest
import torch

from lazyrich import MLP, build, train
from lazyrich.errors import LazyrichError
from lazyrich.tasks import teacher_student
from lazyrich.theory import predict_regime, predict_regime_from_table

D, M, N = 5, 20, 50
TAUS, DELTAS = np.logspace(-2, 0.5, 5), np.linspace(-1, 1, 5)


def _kunin_params(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Kunin et al.'s symmetric init (f₀ ≡ 0) at every (τ, δ), one direction set for all cells. Built
    here with a² = 2τ⁴/(√(δ² + 4τ⁴) − δ) for δ < 0: the core `kunin_scales` loses ~1e-11 to
    cancellation there and its self-check refuses τ = 0.01, δ = −1."""
    w = torch.randn(M // 2, D, generator=gen, dtype=torch.float64)
    w = torch.cat([w, w]) / w.norm(dim=1).repeat(2)[:, None]
    a = torch.sign(torch.randn(M // 2, generator=gen, dtype=torch.float64))
    a = torch.cat([a, -a])
    W1, W2, rows = [], [], []
    for tau in TAUS:
        for delta in DELTAS:
            disc = np.sqrt(delta**2 + 4 * tau**4)
            a2 = (delta + disc) / 2 if delta >= 0 else 2 * tau**4 / (disc - delta)
            an = np.sqrt(a2)
            W1.append(w * (tau**2 / an))
            W2.append((a * an)[None])
            rows.append({"tau": float(tau), "delta": float(delta), "lr": 0.01 / max(disc, 0.1)})
    return torch.stack(W1), torch.stack(W2), rows


def _grid_agreement(teacher_neurons: int) -> tuple[float, list]:
    data = teacher_student(d=D, k=teacher_neurons, n=N, n_test=10, seed=0)
    W1, W2, rows = _kunin_params(torch.Generator().manual_seed(1))
    ens = build(MLP((D, M, 1), "relu"), rows, scheme="sp")
    ens = ens.with_params({"W1": W1, "W2": W2})
    for name in ens.lr:
        ens.lr[name] = ens.base_lr.clone()
        ens.multipliers[name] = torch.ones(len(rows), dtype=torch.float64)
    run = train(ens, data, 8000, record=[0, 8000], observers=("loss", "kernel_distance"))
    assert (run.diverged_step < 0).all()
    S = run.final("kernel_distance").sort_index().to_numpy()
    y_scale = float(data.y.pow(2).sum(1).mean().sqrt())
    x_scale = float(data.x.pow(2).sum(1).mean().sqrt())
    agree = []
    for row, s in zip(rows, S):
        pred = predict_regime((D, M, 1), row["tau"], row["delta"], y_scale, x_scale).regime
        measured = "lazy" if s < 0.05 else ("rich" if s > 0.3 else "mixed")
        agree.append(measured == pred or (measured == "rich" and pred == "ultra-rich"))
    return float(np.mean(agree)), list(zip([(r["tau"], r["delta"]) for r in rows], S.round(3), agree))


@pytest.mark.xfail(strict=True, reason="known gap: with Kunin's three-neuron teacher, downstream cells turn "
                   "delayed-rich within the window (S 0.08-0.20), which the predictor does not model: 17/25 measured")
def test_predictor_on_kunin_three_neuron_teacher():
    frac, cells = _grid_agreement(3)
    assert frac >= 0.9, cells


def test_predictor_agrees_with_measured_kernel_distance_on_a_5x5_grid():
    """Kunin Fig. 1 setup at small size (d = 5, m = 20, n = 50, one teacher neuron, inputs on the
    sphere, symmetric init), GD for 8000 steps at lr = 0.01/max(κ, 0.1) so every cell runs the same
    number of NTK time constants. Measured band: lazy S < 0.05, rich S > 0.3, mixed in between."""
    frac, cells = _grid_agreement(1)
    assert frac >= 0.9, cells
    assert max(s for (tau, _), s, _ in cells if tau > 0.5) < 0.05  # large scale: lazy at every δ


def test_predictor_numbers_and_limits():
    p = predict_regime((10, 100, 1), 1.0, 0.0, y_scale=1.0)
    assert p.regime == "lazy" and p.fit_ratio == pytest.approx(0.01) and p.first_layer_share == pytest.approx(0.5)
    up, down = predict_regime((10, 100, 1), 0.05, 5.0), predict_regime((10, 100, 1), 0.05, -5.0)
    assert up.regime in ("rich", "ultra-rich") and down.regime == "lazy"  # get rich quick vs delayed rich
    assert predict_regime((10, 100, 1), 0.001, 0.0).regime == "ultra-rich"
    lin = predict_regime((10, 100, 1), 0.05, 5.0, activation="linear")  # linear nets: upstream is lazy too
    assert lin.regime == "lazy" and lin.ntk_ratio == pytest.approx(np.sqrt(1 + lin.chi**-2))
    with pytest.raises(LazyrichError, match="two-layer"):
        predict_regime((10, 20, 20, 1), 1.0, 0.0)


def test_predictor_from_parametrization_tables():
    """NTP with a small output multiplier → lazy at width; γ ≫ 1 in μP → rich; a tiny init → ultra-rich."""
    widths = (10, 4096, 1)
    ntp = predict_regime_from_table(widths, "ntp", lr=1.0)
    assert ntp.regime == "lazy"
    assert predict_regime_from_table(widths, "mup", gamma=1e3).regime in ("rich", "ultra-rich")
    assert predict_regime_from_table((10, 256, 1), "sp", std_scale=1e-4).regime == "ultra-rich"
    assert predict_regime_from_table(widths, "mup", gamma=1e3).fit_ratio > predict_regime_from_table(widths, "mup").fit_ratio

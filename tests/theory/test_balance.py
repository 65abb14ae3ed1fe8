"""Balancedness predictions: λ and ||Q||_op on sampled inits, per-neuron imbalance, weight decay, exact GD drift."""
import numpy as np
import pytest
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

from lazyrich import MLP, build, flow
from lazyrich.dynamics import loss_and_grads
from lazyrich.dynamics.optim import OptimizerSpec, step
from lazyrich.dynamics.schedules import Schedule
from lazyrich.errors import LazyrichError
from lazyrich.observe import Data
from lazyrich.observe.core import Conserved
from lazyrich.tasks import whitened_regression
from lazyrich.theory import (conserved_step, conserved_under_decay, decay_rate, neuron_imbalance, one_d_step_factor,
                             predict_balance, warmup_regime)

from .helpers import ensemble, series

D, C, SEEDS = 30, 10, 8


def _sample(scheme: str, width: int):
    ens = build(MLP((D, width, C), "linear"), [{"seed": s} for s in range(SEEDS)], scheme=scheme, lr=1.0)
    return ens.params["W1"], ens.params["W2"], ens.lr["W1"], ens.lr["W2"]


def _op_norm(W: np.ndarray, A: np.ndarray, ew: float, ea: float) -> float:
    h = W.shape[0]
    op = LinearOperator((h, h), matvec=lambda v: A.T @ (A @ v) / ea - W @ (W.T @ v) / ew, dtype=float)
    return float(abs(eigsh(op, k=1, which="LM", return_eigenvectors=False, tol=1e-12)[0]))


@pytest.mark.parametrize("scheme", ["sp", "ntp", "mup"])
def test_lambda_and_operator_norm_on_sampled_inits(scheme):
    ops, lams = [], []
    for width in (64, 512, 4096):
        pred = predict_balance((D, width, C), scheme)[0]
        W, A, ew, ea = _sample(scheme, width)
        lam = ((A**2).sum((1, 2)) / ea - (W**2).sum((1, 2)) / ew).numpy() / width  # tr Q / h, measured
        assert abs(lam.mean() - pred.lam) <= 4 * pred.lam_std / np.sqrt(SEEDS)
        op = np.array([_op_norm(W[e].numpy(), A[e].numpy(), float(ew[e]), float(ea[e])) for e in range(SEEDS)])
        assert abs(op.mean() - pred.q_op) <= 4 * pred.q_op_std / np.sqrt(SEEDS)
        assert op.max() <= max(pred.upper * (1 + np.sqrt(C / width)) ** 2, pred.lower * (1 + np.sqrt(D / width)) ** 2) * 1.1
        ops.append(op.mean() / pred.q_op_limit)
        lams.append(abs(lam.mean()))
    if scheme == "mup":  # the blog's λ vanishes like 1/width, ||Q||_op does not
        assert lams[-1] < lams[0] / 30 and 1 < ops[-1] < ops[0] and ops[-1] < 1.1


def test_per_neuron_imbalance_median_is_exact():
    for scheme in ("sp", "mup"):
        for width in (256, 2048):
            pred = predict_balance((D, width, C), scheme)[0]
            W, A, ew, ea = _sample(scheme, width)
            r = neuron_imbalance(W, A, ew, ea).reshape(-1).numpy()
            q25, q75 = np.percentile(r, [25, 75])
            se = 1.2533 * (q75 - q25) / 1.349 / np.sqrt(r.size)
            assert abs(np.median(r) - pred.imbalance_median) < 5 * se


def test_weight_decay_shrinks_q_exponentially_when_lr_times_decay_match():
    data = whitened_regression(4, 3, n=12, seed=0)
    rng = np.random.default_rng(0)
    W1, W2 = rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 3, 6))
    ens = ensemble((4, 6, 3), {"W1": W1, "W2": W2}, {"W1": [0.7, 1.5], "W2": [0.7, 0.3]})
    ens.weight_decay["W1"] = torch.tensor([0.05, 0.05], dtype=torch.float64)
    ens.weight_decay["W2"] = torch.tensor([0.05, 0.25], dtype=torch.float64)  # member 1: 0.3·0.25 = 1.5·0.05
    times = np.linspace(0, 20, 11)
    run = flow(ens, data, times, observers=(Conserved(full=True),), rtol=1e-12, atol=1e-13)
    for e in range(2):
        q = series(run.records(), "Q", e)
        rho = decay_rate(float(ens.lr["W1"][e]), float(ens.lr["W2"][e]), float(ens.weight_decay["W1"][e]),
                         float(ens.weight_decay["W2"][e]))
        want = conserved_under_decay(times, q[0], rho)
        assert np.abs(q - want).max() / np.abs(q[0]).max() < 1e-10
    with pytest.raises(LazyrichError, match="η_Aκ_A = η_Wκ_W"):
        decay_rate(1.5, 0.3, 0.05, 0.05)


def _q(w1: torch.Tensor, w2: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
    return w2.transpose(-1, -2) @ w2 / e2.reshape(-1, 1, 1) - w1 @ w1.transpose(-1, -2) / e1.reshape(-1, 1, 1)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_exact_one_step_drift_with_decay_and_warmup(activation):
    """Q_{k+1} from `conserved_step` equals the GD update to round-off at every step of a warmup
    schedule with coupled weight decay (ReLU: the diagonal, i.e. every δ_k)."""
    data = whitened_regression(5, 3, n=15, seed=1, noise=0.2)
    rng = np.random.default_rng(1)
    ens = ensemble((5, 7, 3), {"W1": 0.5 * rng.normal(size=(2, 7, 5)), "W2": 0.5 * rng.normal(size=(2, 3, 7))},
                   {"W1": [0.05, 0.02], "W2": [0.02, 0.08]}, activation=activation)
    ens.weight_decay = {"W1": torch.tensor([0.1, 0.0], dtype=torch.float64),
                        "W2": torch.tensor([0.3, 0.0], dtype=torch.float64)}
    schedule, steps = Schedule(warmup=20, decay="cosine"), 60
    params, spec = dict(ens.params), OptimizerSpec(kind="gd")
    active = torch.ones(2, dtype=torch.bool)
    worst = 0.0
    for k in range(steps):
        f = schedule.factor(k, steps)
        _, g = loss_and_grads(ens, params, data.x, data.y, active)
        pred = conserved_step(params["W1"], params["W2"], g["W1"], g["W2"], ens.lr["W1"], ens.lr["W2"],
                              ens.weight_decay["W1"], ens.weight_decay["W2"], factor=f)
        params, _ = step(spec, params, g, {}, {n: v * f for n, v in ens.lr.items()}, ens.weight_decay)
        got = _q(params["W1"], params["W2"], ens.lr["W1"], ens.lr["W2"])
        if activation == "relu":
            got, pred = got.diagonal(dim1=-2, dim2=-1), pred.diagonal(dim1=-2, dim2=-1)
        scale = torch.maximum(got.abs().amax((-2, -1) if got.dim() == 3 else -1), torch.ones(2))
        worst = max(worst, float(((got - pred).abs().amax((-2, -1) if got.dim() == 3 else -1) / scale).max()))
    assert worst < 1e-13


def test_one_d_warmup_factor_and_regimes():
    """C_{k+1} = (1 − f²η_uη_wγ²m₂²r_k²) C_k exactly; s = 1 balances in one step, s ∈ (1, √2) flips the
    sign while shrinking, s > √2 grows."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=8)
    m2 = float(np.mean(z * z))
    data = Data(torch.tensor(z[:, None]), torch.tensor(0.9 * z[:, None]))
    h, gamma, lu, lw = 10, 0.8, 0.05, 0.12
    u, w = 0.4 * rng.normal(size=h), 0.4 * rng.normal(size=h)
    ens = ensemble((1, h, 1), {"W1": w[None, :, None], "W2": u[None, None, :]}, {"W2": [lu], "W1": [lw]})
    ens.multipliers["W2"] = torch.tensor([gamma], dtype=torch.float64)
    params, active = dict(ens.params), torch.ones(1, dtype=torch.bool)
    y_star = float(np.mean(z * 0.9 * z)) / m2
    for k in range(40):
        f = 1.0 + 0.05 * k  # a ramp
        uu, ww = params["W2"][0, 0].numpy(), params["W1"][0, :, 0].numpy()
        C = uu @ uu / lu - ww @ ww / lw
        r = gamma * float(uu @ ww) - y_star
        _, g = loss_and_grads(ens, params, data.x, data.y, active)
        params, _ = step(OptimizerSpec(kind="gd"), params, g, {}, {n: v * f for n, v in ens.lr.items()}, ens.weight_decay)
        uu, ww = params["W2"][0, 0].numpy(), params["W1"][0, :, 0].numpy()
        C1 = uu @ uu / lu - ww @ ww / lw
        assert abs(C1 - one_d_step_factor(f, lu, lw, gamma, m2, r) * C) < 1e-13 * max(uu @ uu / lu, ww @ ww / lw)
    for s, want in ((0.5, "contract"), (1.0, "balance"), (1.2, "bounce"), (1.6, "grow")):
        assert warmup_regime(s) == want
        factor = one_d_step_factor(s, 1.0, 1.0, 1.0, 1.0, 1.0)  # s = f·√(η_uη_w)·γ·m₂·|r|
        assert {"contract": 0 < factor < 1, "balance": factor == 0, "bounce": -1 < factor < 0,
                "grow": factor < -1}[want]

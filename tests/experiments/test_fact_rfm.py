"""The RFM pieces of the `fact` reproduction against slow obvious references (float64, tiny sizes)."""
from __future__ import annotations

import math

import pytest
import torch

from lazyrich.experiments import _rfm


def problem(n: int = 9, d: int = 3, c: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    m = a @ a.T + 0.3 * torch.eye(d, dtype=torch.float64)
    y = torch.randn(n, c, generator=g, dtype=torch.float64)
    return x, y, m


def test_laplace_matches_double_loop():
    x, _, m = problem()
    z = x[:4] + 0.1
    k = _rfm.laplace(x, z, m, 1.7)
    for i in range(x.shape[0]):
        for j in range(z.shape[0]):
            v = x[i] - z[j]
            assert float(k[i, j]) == pytest.approx(math.exp(-math.sqrt(float(v @ m @ v)) / 1.7), rel=1e-13)


def test_agop_matches_autograd_of_predictor():
    x, y, m = problem()
    bw, ridge = 1.3, 0.1
    alpha = _rfm.krr(_rfm.laplace(x, x, m, bw), y, ridge)
    rows = []
    for i in range(x.shape[0]):
        for c in range(y.shape[1]):
            xi = x[i:i + 1].clone().requires_grad_(True)
            # differentiate at the training point but keep the centres fixed; exclude the j = i term
            # (constant K_ii = 1; its subgradient at D = 0 is taken as 0, as in _rfm)
            keep = torch.arange(x.shape[0]) != i
            f = (_rfm.laplace(xi, x[keep], m, bw) @ alpha[keep, c]).sum()
            rows.append(torch.autograd.grad(f, xi)[0][0])
    j = torch.stack(rows)
    want = j.T @ j / x.shape[0]
    assert torch.allclose(_rfm.agop(x, alpha, m, bw), want, rtol=1e-11, atol=1e-13)


def objective(x: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor, m: torch.Tensor, bw: float, ridge: float):
    """J(α, M) = ½‖Kα − Y‖² + (ρ/2) tr(αᵀKα), K from explicit differences (off-diagonal only varies)."""
    n = x.shape[0]
    diff = x.unsqueeze(1) - x.unsqueeze(0)
    q = torch.einsum("ijd,de,ije->ij", diff, m, diff)
    eye = torch.eye(n, dtype=torch.bool)
    k = torch.where(eye, torch.ones_like(q), torch.exp(-torch.where(eye, torch.ones_like(q), q).sqrt() / bw))
    return 0.5 * (k @ alpha - y).pow(2).sum() + 0.5 * ridge * (alpha * (k @ alpha)).sum()


def test_fact_gradient_is_dJ_dM_and_fact_is_the_point_gradient_formula():
    """G = ∂J/∂M at fixed α (autograd), and FACT_λ = −(2/λ)MG equals the FACT definition of observe/fact.py,
    −(1/λ) Σ_k (∇_{x_k} J) x_kᵀ over every place the map acts (each point as evaluation point and centre)."""
    x, y, m = problem()
    bw, ridge, lam = 1.3, 0.2, 0.7
    alpha = _rfm.krr(_rfm.laplace(x, x, m, bw), y, ridge)
    mm = m.clone().requires_grad_(True)
    g_auto = torch.autograd.grad(objective(x, y, alpha, mm, bw, ridge), mm)[0]
    g_auto = (g_auto + g_auto.T) / 2
    assert torch.allclose(_rfm.fact_gradient(x, alpha, m, bw, ridge), g_auto, rtol=1e-11, atol=1e-13)
    xx = x.clone().requires_grad_(True)
    gx = torch.autograd.grad(objective(xx, y, alpha, m, bw, ridge), xx)[0]
    want = -(gx.T @ x) / lam
    assert torch.allclose(_rfm.fact(x, alpha, m, bw, ridge, lam=lam), want, rtol=1e-11, atol=1e-13)


def test_fact_equals_gram_at_a_weight_decayed_critical_point():
    """The derivation: at a critical point of min_α J(α, WᵀW) + (λ/2)‖W‖² (α profiled by kernel ridge),
    WᵀW = FACT_λ. Found by L-BFGS in float64; the residual tracks the gradient norm."""
    x, y, _ = problem(n=8, d=3, c=1, seed=1)
    bw, ridge, lam = 2.0, 0.3, 0.05
    w = (torch.eye(3, dtype=torch.float64) + 0.1 * torch.randn(3, 3, generator=torch.Generator().manual_seed(2),
                                                                 dtype=torch.float64)).requires_grad_(True)
    diff = x.unsqueeze(1) - x.unsqueeze(0)
    off = ~torch.eye(x.shape[0], dtype=torch.bool)

    def total():  # K from ‖W(x_i − x_j)‖, differentiable in W (no eigendecomposition)
        z = diff[off] @ w.T
        k = torch.ones(x.shape[0], x.shape[0], dtype=torch.float64).masked_scatter(off, torch.exp(-z.norm(dim=1) / bw))
        alpha = _rfm.krr(k, y, ridge)
        j = 0.5 * (k @ alpha - y).pow(2).sum() + 0.5 * ridge * (alpha * (k @ alpha)).sum()
        return j + 0.5 * lam * w.pow(2).sum()

    opt = torch.optim.LBFGS([w], lr=1, max_iter=2000, tolerance_grad=1e-13, tolerance_change=0,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        v = total()
        v.backward()
        return v
    opt.step(closure)
    gnorm = float(w.grad.norm())
    assert gnorm < 1e-9
    m = (w.T @ w).detach()
    alpha = _rfm.krr(_rfm.laplace(x, x, m, bw), y, ridge)
    res, asym = _rfm.fixed_point_residual(m, _rfm.fact(x, alpha, m, bw, ridge, lam=lam))
    assert res < 1e-7 and asym < 1e-7
    # and the trace multiplier recovers λ at that point
    g = _rfm.fact_gradient(x, alpha, m, bw, ridge)
    assert float(-2 * torch.trace(m @ g) / torch.trace(m)) == pytest.approx(lam, rel=1e-6)


def test_updates_are_normalised_and_laplace_keeps_identity():
    x, y, m = problem(n=12, d=4, c=3)
    m = torch.eye(4, dtype=torch.float64)
    alpha = _rfm.krr(_rfm.laplace(x, x, m, 2.0), y, 0.1)
    for method in ("nfa", "fact"):
        new = _rfm.update(method, x, alpha, m, 2.0, 0.1)
        assert float(torch.trace(new)) == pytest.approx(4.0)
        assert torch.allclose(new, new.T) and float(torch.linalg.eigvalsh(new).min()) > -1e-12
    assert torch.equal(_rfm.update("laplace", x, alpha, m, 2.0, 0.1), m)


def test_tabular_split_is_stratified_standardised_and_fixed():
    a, b = _rfm.tabular("iris", 0), _rfm.tabular("iris", 0)
    assert [len(a[f"y_{p}"]) for p in ("train", "val", "test")] == [90, 30, 30]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.allclose(a["x_train"].mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert torch.equal(a["y_test"].sum(0), torch.full((3,), 10.0, dtype=torch.float64))
    assert len(_rfm.tabular("digits", 0, cap=300)["y_train"]) == 180


def test_compare_laplace_is_iteration_zero_and_rfm_picks_t_at_least_one():
    split = _rfm.tabular("iris", 1)
    r = _rfm.compare(split, [1.0], [0.1], 2)
    assert r["laplace"]["t"] == 0 and r["nfa"]["t"] >= 1 and r["fact"]["t"] >= 1
    p = _rfm.run("nfa", split, 2.0, 0.1, 0)
    assert r["laplace"]["test_acc"] == p.test_acc[0]

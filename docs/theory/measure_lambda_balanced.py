"""Measurements behind docs/theory/wide_linear.md: agreement of `lambda_balanced` with the independent
references of tests/theory/reference.py, its cost, and where float64 is ill-conditioned.

Run: OPENBLAS_NUM_THREADS=1 python docs/theory/measure_lambda_balanced.py [agreement|cost|conditioning]
(about a minute on one core)
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lazyrich.theory import lambda_balanced  # noqa: E402
from lazyrich.theory.checks import EPS  # noqa: E402
from lazyrich.theory.wide_linear import _factor_flow  # noqa: E402
from tests.theory.reference import (lambda_balanced_init, linear_net_flow, observables, rel_err,  # noqa: E402
                                    riccati_mp)
from tests.theory.test_lambda_balanced_reference import FAMILIES, _case  # noqa: E402


def agreement() -> None:
    print("| family | (d, h, c), λ, rates, init scale | horizon | vs DOP853 rtol 1e-12 | vs 40+-digit closed form (t_end) |")
    print("|---|---|---|---|---|")
    for name, (d, h, c, lam, rates, scale) in FAMILIES.items():
        ode, mpe, T = 0.0, 0.0, 0.0
        for seed in (11, 12):
            X, Y, W1, W2, S, lr1, lr2, h_, t = _case(name, seed)
            p = lambda_balanced(t, W1, W2, S, lr1, lr2)
            A, B = linear_net_flow(t, W1, W2, X, Y, lr1, lr2, rtol=1e-12)
            ode = max([ode] + [rel_err(p[k], v) for k, v in observables(A, B).items()])
            T = max(T, t[-1])
            if lr1 == lr2 == 1.0:
                R = riccati_mp(float(t[-1]), W1, W2, S, lam)
                mpe = max(mpe, np.abs(p["beta"][-1].reshape(c, d) - R[d:, :d]).max() / np.abs(R).max())
        print(f"| {name} | ({d}, {h}, {c}), {lam:g}, {rates}, {scale:g} | {T:.0f} | {ode:.1e} | "
              f"{f'{mpe:.1e}' if mpe else '—'} |")


def cost() -> None:
    print("\n| d = c | h | steps | factor (ms) | QQᵀ per step would be |")
    print("|---|---|---|---|---|")
    for n, h in [(10, 2), (100, 10), (100, 100), (400, 20)]:
        rng = np.random.default_rng(0)
        W1, W2 = lambda_balanced_init(n, h, n, 0.5, rng, 1.0)
        S = rng.normal(size=(n, n)) / np.sqrt(n)
        F = np.block([[-0.25 * np.eye(n), S.T], [S, 0.25 * np.eye(n)]])
        steps = int(np.ceil(20.0 / (0.5 / np.abs(np.linalg.eigvalsh(F)).max())))
        lambda_balanced([0.0, 1.0], W1, W2, S)  # warm-up
        t0 = time.perf_counter()
        lambda_balanced([0.0, 20.0], W1, W2, S)
        dt = time.perf_counter() - t0
        print(f"| {n} | {h} | {steps} | {1e3 * dt:.0f} | O((d+c)³) = {(2 * n) ** 3:.1e} flops vs O((d+c)h²) = "
              f"{2 * n * h * h:.1e} |")


def conditioning() -> None:
    print("\n| case | κ | steps | estimate κ·u·steps | actual error vs mpmath | warns |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    d = c = 3
    U, _ = np.linalg.qr(rng.normal(size=(c, c)))
    V, _ = np.linalg.qr(rng.normal(size=(d, d)))
    S = U @ np.diag([2.0, 1.0, 0.5]) @ V.T
    t = np.linspace(0, 40, 5)
    cases, lams = {}, {}
    for alpha in (1e-2, 1e-6, 1e-12):
        cases[f"λ = 0, random init at scale {alpha:g}"] = lambda_balanced_init(d, 3, c, 0.0, np.random.default_rng(1), alpha)
    for eps in (1e-4, 1e-12, 1e-24, 0.0):  # init whose top-mode strength is eps relative to the others
        R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        a = np.array([eps, 1.0, 1.0]) * 1e-2
        cases[f"λ = 0, top-mode strength {eps:g} × the others'"] = (R @ np.diag(np.sqrt(a)) @ V.T, U @ np.diag(np.sqrt(a)) @ R.T)
    for lam in (1e-6, 0.1):
        R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        a = np.array([0.0, 1.0, 1.0]) * 1e-2
        a1, a2 = np.sqrt((np.sqrt(lam**2 + 4 * a**2) - lam) / 2), np.sqrt((np.sqrt(lam**2 + 4 * a**2) + lam) / 2)
        cases[f"λ = {lam:g}, top-mode strength 0"] = (R @ np.diag(a1) @ V.T, U @ np.diag(a2) @ R.T)
        lams[f"λ = {lam:g}, top-mode strength 0"] = lam
    cases["d = h = c = 1, λ = 0, W2 = −W1 (on the saddle's stable manifold)"] = (np.array([[1e-3]]), np.array([[-1e-3]]))
    for name, (W1, W2) in cases.items():
        Sx = S if W1.shape[1] == 3 else np.array([[2.0]])
        dd = W1.shape[1]
        Q = np.vstack([W1.T, W2])
        F = np.block([[np.zeros((dd, dd)), Sx.T], [Sx, np.zeros((dd, dd))]])
        _, kappa, steps = _factor_flow(Q, F, t, probe=1e-12)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            p = lambda_balanced(t, W1, W2, Sx, tol=1e-6)
        c = W2.shape[0]
        actual = 0.0
        for i, ti in enumerate(t):
            R = riccati_mp(float(ti), W1, W2, Sx, lams.get(name, 0.0))
            actual = max(actual, np.abs(p["beta"][i].reshape(c, dd) - R[dd:, :dd]).max() / np.abs(R).max())
        print(f"| {name} | {kappa:.1e} | {steps} | {kappa * EPS * steps:.1e} | {actual:.1e} | {'yes' if w else 'no'} |")


if __name__ == "__main__":
    parts = sys.argv[1:] or ["agreement", "cost", "conditioning"]
    for part in parts:
        globals()[part]()

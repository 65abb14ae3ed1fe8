"""Quadratic word embedding theory (lazyrich.theory.word_embeddings) against independent references written
here: scipy's solve_ivp on the gradient-flow ODE dW/dt = −∇L of the QWEM loss written as the sum over word
pairs (float64, tight tolerances), scipy's eigh / subspace_angles for the final subspace, and the word2vec
loss's Taylor expansion for the target. Tolerances: solve_ivp at rtol 1e-12 is trusted to ~1e-10 relative
over these horizons, so closed form vs ODE is checked at 1e-8 relative to the solution's scale."""
from __future__ import annotations

import mpmath
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from lazyrich.errors import LazyrichError
from lazyrich.theory import word_embeddings as we

V, D = 12, 3


def random_corpus(seed: int, V: int = V) -> np.ndarray:
    """A symmetric joint distribution from Poisson counts (no zero marginals)."""
    rng = np.random.default_rng(seed)
    C = rng.poisson(3.0, (V, V)).astype(float)
    C = C + C.T + 1.0
    return C / C.sum()


def pair_loss_gradient(W: np.ndarray, P: np.ndarray, pp: np.ndarray, mp: np.ndarray) -> np.ndarray:
    """∇ of Σ_ij ψ⁺P_ij(β²/8 − β/2) + ψ⁻P_iP_j(β²/8 + β/2) by the chain rule through β = WWᵀ, pair by pair."""
    p = P.sum(1)
    beta = W @ W.T
    F = np.zeros_like(beta)
    for i in range(len(P)):
        for j in range(len(P)):
            F[i, j] = pp[i, j] * P[i, j] * (beta[i, j] / 4 - 0.5) + mp[i, j] * p[i] * p[j] * (beta[i, j] / 4 + 0.5)
    return (F + F.T) @ W


def ode_solution(P: np.ndarray, W0: np.ndarray, times: list[float], g: float) -> np.ndarray:
    pp, mp = we.constant_weights(P, g)
    n, d = W0.shape
    sol = solve_ivp(lambda t, y: -pair_loss_gradient(y.reshape(n, d), P, pp, mp).ravel(), (0, max(times)), W0.ravel(),
                    t_eval=times, method="DOP853", rtol=1e-12, atol=1e-14)
    assert sol.success
    return sol.y.T.reshape(len(times), n, d)


@pytest.fixture(scope="module")
def problem():
    P = random_corpus(0)
    W0 = 0.3 * np.random.default_rng(1).normal(size=(V, D))
    return P, we.qwem_target(P), W0


def test_target_is_the_taylor_target_and_2tanh_pmi(problem):
    P, M, _ = problem
    p = P.sum(1)
    pmi = np.log(P / np.outer(p, p))
    np.testing.assert_allclose(M, 2 * np.tanh(pmi / 2), rtol=1e-12, atol=1e-14)
    # independently: the quadratic Taylor coefficients of −log σ(x) = log(1 + e^{−x}) from mpmath, and the
    # minimiser of each pair's a(c₁β + c₂β²) + b(−c₁β + c₂β²) (a = ψ⁺P_ij, b = ψ⁻P_iP_j), ψ± = 1/(P + P_iP_j)
    c0, c1, c2 = (float(c) for c in mpmath.taylor(lambda x: mpmath.log(1 + mpmath.exp(-x)), 0, 2))
    assert c0 == pytest.approx(np.log(2)) and (c1, c2) == (pytest.approx(-0.5), pytest.approx(0.125))
    pp, mp = we.constant_weights(P)
    a, b = pp * P, mp * np.outer(p, p)
    np.testing.assert_allclose(M, -c1 * (a - b) / (2 * c2 * (a + b)), rtol=1e-12)  # d/dβ = 0
    rng = np.random.default_rng(2)
    pp, mp = rng.uniform(0.5, 2, P.shape), rng.uniform(0.5, 2, P.shape)
    with pytest.raises(LazyrichError, match="constant weighting"):
        we.qwem_target(P, pp, mp)  # not constant: a weighted factorization, outside the closed form
    pp, mp = we.constant_weights(P, 2.5)
    assert we.weighting_constant(P, pp, mp) == pytest.approx(2.5, rel=1e-12)


def test_closed_form_equals_solve_ivp_on_the_pair_loss(problem):
    P, M, W0 = problem
    g = 1.7
    times = [0.0, 0.3, 1.0, 2.5, 6.0, 15.0]
    W = ode_solution(P, W0, times, g)
    for t, Wt in zip(times, W):
        Q = Wt @ Wt.T
        assert np.abs(we.qwem_gram(t, M, W0, g) - Q).max() <= 1e-8 * max(1.0, np.abs(Q).max()), t
    flow = we.qwem_flow(times, M, W0, g)
    eig = np.array([np.sort(np.linalg.eigvalsh(Wt.T @ Wt))[::-1] for Wt in W])
    np.testing.assert_allclose(flow["gram_eigenvalues"], eig, rtol=1e-8, atol=1e-10)
    loss = [g / 8 * (np.sum((Wt @ Wt.T - M) ** 2) - np.sum(M**2)) for Wt in W]
    np.testing.assert_allclose(flow["loss"], loss, rtol=1e-8, atol=1e-10)
    ang = [np.max(scipy.linalg.subspace_angles(Wt, np.linalg.eigh(M)[1][:, ::-1][:, :D])) for Wt in W]
    np.testing.assert_allclose(flow["subspace_angle"], ang, atol=1e-7)


def test_long_times_reach_the_eckart_young_embedding_without_overflow(problem):
    _, M, W0 = problem
    lam, U = scipy.linalg.eigh(M)
    top = U[:, ::-1][:, :D] * np.sqrt(lam[::-1][:D])
    Q = we.qwem_gram(2000.0, 10 * M, W0)  # |λ|t ≈ 5e4: e^{λt} would overflow
    np.testing.assert_allclose(Q, 10 * top @ top.T, atol=1e-9)
    W_inf = we.final_embeddings(M, D)
    np.testing.assert_allclose(W_inf @ W_inf.T, top @ top.T, atol=1e-12)
    grad = (W_inf @ W_inf.T - M) @ W_inf  # a stationary point of the flow
    assert np.abs(grad).max() < 1e-12


def test_aligned_init_follows_the_sigmoid_exactly(problem):
    _, M, _ = problem
    lam, U = we.target_spectrum(M)
    u0 = np.array([1e-5, 3e-6, 1e-6])  # ordered like λ: the sorted eigenvalues of WᵀW stay mode by mode
    R = np.linalg.qr(np.random.default_rng(3).normal(size=(D, D)))[0]
    W0 = U[:, :D] * np.sqrt(u0) @ R
    times = np.linspace(0, 30, 31)
    g = 0.8
    np.testing.assert_allclose(we.qwem_flow(times, M, W0, g)["gram_eigenvalues"], we.sigmoid_modes(times, lam[:D], u0, g),
                               rtol=1e-9, atol=1e-12)
    # the step times solve u_k(t) = λ_k/2 on the ODE itself
    tk = we.sigmoid_step_times(lam[:D], u0, g)
    order = np.argsort(tk)
    W = ode_solution(random_corpus(0), W0, list(tk[order]), g)
    for k, Wt in zip(order, W):
        assert np.sort(np.linalg.eigvalsh(Wt.T @ Wt))[::-1][k] == pytest.approx(lam[k] / 2, rel=1e-8)
    np.testing.assert_allclose(we.exact_step_times(M, W0, 30.0, g), tk, rtol=1e-9)


def test_small_random_init_learns_modes_one_at_a_time(problem):
    P, M, _ = problem
    lam, _ = we.target_spectrum(M)
    W0 = 1e-8 * np.random.default_rng(4).normal(size=(V, D))
    t = we.exact_step_times(M, W0, 60.0)
    assert np.all(np.diff(t) > 0)  # strongest first
    # the sigmoid from the effective strengths (Gram–Schmidt residuals of v_kᵀW₀) is the small-init limit of
    # the exact step times (≤ 1e-3 here); the raw projections v_kᵀW₀W₀ᵀv_k miss the last mode by 13 %
    np.testing.assert_allclose(t, we.sigmoid_step_times(lam[:D], we.effective_init(M, W0)), rtol=1e-3)
    raw = we.sigmoid_step_times(lam[:D], we.init_projections(M, W0))
    assert abs(t[-1] / raw[-1] - 1) > 0.1
    r = we.learned_rank(we.qwem_flow(np.linspace(0, 60, 241), M, W0)["gram_eigenvalues"], lam)
    assert r[0] == 0 and r[-1] == D and set(np.diff(r)) <= {0, 1}
    plateaus = we.plateau_losses(M, D)
    mid = 0.5 * (t[0] + t[1])
    assert we.qwem_flow([mid], M, W0)["loss"][0] == pytest.approx(plateaus[1], rel=0.02)


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 4))
def test_principal_angles_equal_scipy(seed, d):
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(9, d)), rng.normal(size=(9, d + 1))
    np.testing.assert_allclose(we.principal_angles(A, B), np.sort(scipy.linalg.subspace_angles(A, B)), atol=1e-10)


@pytest.mark.parametrize("make, message", [
    (lambda P: P + np.triu(np.full_like(P, 1e-4), 1) / 1.0, "sums to|symmetric"),
    (lambda P: np.pad(P, ((0, 1), (0, 1))), "never co-occurs"),
    (lambda P: -P, "negative entries"),
    (lambda P: P[:, :3], "square"),
])
def test_bad_corpus_statistics_give_one_clear_line(make, message):
    with pytest.raises(LazyrichError, match=message) as err:
        we.qwem_target(make(random_corpus(0)))
    assert "\n" not in str(err.value)


def test_preconditions_of_the_predictions(problem):
    _, M, W0 = problem
    lam, _ = we.target_spectrum(M)
    with pytest.raises(LazyrichError, match="small init"):
        we.sigmoid_step_times(lam[:D], lam[:D])  # u_k(0) = λ_k: already learned
    with pytest.raises(LazyrichError, match="embedding dimension"):
        we.final_embeddings(M, V)
    with pytest.raises(LazyrichError, match="only .* modes are learned"):
        we.final_embeddings(M, int((lam > 0).sum()) + 1)
    with pytest.raises(LazyrichError, match="eigengap"):
        we.final_embeddings(np.diag([3.0, 2.0, 2.0, 1.0]), 2)
    with pytest.raises(LazyrichError, match="rows"):
        we.qwem_gram(1.0, M, W0[:-1])


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000), V=st.integers(3, 8), scale=st.sampled_from([1e-6, 1e-2, 1.0]), t=st.floats(0.05, 20.0))
def test_closed_form_solves_the_riccati_equation(seed, V, scale, t):
    """dQ/dt = c(M*Q + QM* − 2Q²) by a central difference, for any corpus size, init scale, time, and either sign
    of the eigenvalues (the error of the 4th-order difference quotient is ~h⁴|Q⁽⁵⁾|, far below the bound)."""
    rng = np.random.default_rng(seed)
    M = we.qwem_target(random_corpus(seed, V))
    d = int(rng.integers(1, V))
    W0 = scale * rng.normal(size=(V, d))
    g, h = 0.9, 1e-3
    Q = lambda s: we.qwem_gram(s, M, W0, g)  # noqa: E731
    dQ = (8 * (Q(t + h) - Q(t - h)) - (Q(t + 2 * h) - Q(t - 2 * h))) / (12 * h)
    Qt = Q(t)
    rhs = g / 2 * (M @ Qt + Qt @ M - 2 * Qt @ Qt)
    assert np.abs(dQ - rhs).max() <= 1e-6 * max(1.0, np.abs(rhs).max())

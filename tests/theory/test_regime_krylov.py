"""The Krylov (Lanczos) lazy fit of the relinearized flow against independent references: g(K)r₀ =
∫₀^a e^{−uK} r₀ du from the kernel's construction K = U diag(λ) Uᵀ (λ and U known, no eigensolver) and from
one augmented matrix exponential (scipy, float64); and the predicted kernel distance with either solver."""
import numpy as np
import pytest
import torch
from scipy.linalg import expm

from lazyrich.errors import LazyrichError
from lazyrich.tasks import teacher_student
from lazyrich.theory.regime import predict_regime_on_data
from lazyrich.theory.relinearized import _krylov_coefficients, _lazy_fit_coefficients, relinearized_kernel_distance


def _reference(K: np.ndarray, r0: np.ndarray, a: float) -> np.ndarray:
    """expm([[−aK, a r₀], [0, 0]]) has ∫₀¹ e^{−saK} a r₀ ds = ∫₀^a e^{−uK} r₀ du in its last column."""
    N = len(r0)
    M = np.zeros((N + 1, N + 1))
    M[:N, :N], M[:N, N] = -a * K, a * r0
    return expm(M)[:N, N]


@pytest.mark.parametrize("a", [1e-3, 1.0, 30.0, 1e4])
@pytest.mark.parametrize("decay", [0.3, 3.0])
def test_krylov_lazy_fit_matches_the_matrix_exponential(a, decay):
    """A PSD kernel with spectrum λ_k = k^{−decay} (slow and fast decay; one zero eigenvalue) and lazy-fit
    lengths a from a fraction of the fastest time scale to 10⁴: against g(λ) applied in the known
    eigenbasis, the Krylov form errs ≤ 1e-5 relative (its stopping tolerance is 1e-6 on the coefficients'
    change; measured ≤ 1.2e-10) and the eigendecomposition form ≤ 1e-12 (rounding; measured ≤ 2e-13).
    expm's own error grows with ‖aK‖ (measured 2.3e-10 at a = 10⁴), so it is held to 1e-8 there."""
    gen = torch.Generator().manual_seed(11)
    N = 60
    U, _ = torch.linalg.qr(torch.randn(N, N, generator=gen, dtype=torch.float64))
    lam = torch.arange(1, N + 1, dtype=torch.float64) ** -decay
    lam[-1] = 0.0
    K = (U * lam) @ U.T
    r0 = torch.randn(N, generator=gen, dtype=torch.float64)
    g = torch.where(lam > 0, -torch.expm1(-a * lam) / torch.where(lam > 0, lam, 1.0), torch.tensor(a, dtype=torch.float64))
    exact = (U @ (g * (U.T @ r0))).numpy()
    got = _krylov_coefficients(K, r0, a).numpy()
    eig = _lazy_fit_coefficients(K, r0, a, 1.0).numpy()
    scale = np.linalg.norm(exact)
    assert np.linalg.norm(_reference(K.numpy(), r0.numpy(), a) - exact) <= (1e-12 if a <= 30 else 1e-8) * scale
    assert np.linalg.norm(got - exact) <= 1e-5 * scale
    assert np.linalg.norm(eig - exact) <= 1e-12 * scale
    assert np.all(_krylov_coefficients(K, torch.zeros(N, dtype=torch.float64), a).numpy() == 0)


def test_krylov_predictor_equals_eigh_predictor():
    """Ŝ and the regime with `solver="krylov"` equal the eigendecomposition's on three Kunin cells (a lazy
    one, Ŝ = 0.002; balanced small init, 0.27; downstream, 0.07) to 1e-6 (measured ≤ 8e-16 here, ≤ 3e-12 on
    the n = 200 cells of bench/regime_cost.py), and a bad solver name is a clear error."""
    data = teacher_student(d=5, k=3, n=40, n_test=4, seed=0)
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(10, 5, generator=gen, dtype=torch.float64)
    w = torch.cat([w, w]) / w.norm(dim=1).repeat(2)[:, None]
    a = torch.sign(torch.randn(10, generator=gen, dtype=torch.float64))
    a = torch.cat([a, -a])[None]
    for w_norm, a_norm, lr in ((2.0, 2.0, 0.002), (0.1, 0.1, 0.05), (1.0, 0.01, 0.01)):
        W, A = w * w_norm, a * a_norm
        p_eig = predict_regime_on_data(data.x, data.y, W, A, 4000, lr, lr, "relu", 0.5, 8, solver="eigh")
        p_kry = predict_regime_on_data(data.x, data.y, W, A, 4000, lr, lr, "relu", 0.5, 8, solver="krylov")
        assert abs(p_eig.kernel_distance - p_kry.kernel_distance) <= 1e-6 and p_eig.regime == p_kry.regime
    with pytest.raises(LazyrichError, match="solver='lanczos': pick one of auto, eigh, krylov"):
        relinearized_kernel_distance(data.x, data.y, W, A, 10, lr, lr, solver="lanczos")


def test_auto_solver_picks_krylov_above_the_crossover(monkeypatch):
    """`solver="auto"` (the default) runs the eigendecomposition up to n·c = 128 and Lanczos above it (the
    measured crossover of their wall times, bench/regime_cost.py), with the same Ŝ either way."""
    import lazyrich.theory.relinearized as rel

    calls = []
    real = rel._krylov_coefficients
    monkeypatch.setattr(rel, "_krylov_coefficients", lambda *a, **k: calls.append(1) or real(*a, **k))
    gen = torch.Generator().manual_seed(2)
    W = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    A = torch.randn(1, 8, generator=gen, dtype=torch.float64) * 0.1
    for n, used in ((128, False), (129, True)):
        x = torch.randn(n, 3, generator=gen, dtype=torch.float64)
        y = torch.randn(n, 1, generator=gen, dtype=torch.float64)
        calls.clear()
        auto = relinearized_kernel_distance(x, y, W, A, 100, 0.05, 0.05, per_decade=2)
        assert bool(calls) == used
        eigh = relinearized_kernel_distance(x, y, W, A, 100, 0.05, 0.05, per_decade=2, solver="eigh")
        assert abs(auto - eigh) <= 1e-6


def test_krylov_basis_grows_past_its_first_block():
    """A flat spectrum (λ uniform in [0.01, 1], N = 300) with a long fit (a = 10⁴) needs a Lanczos basis
    larger than the first 64-column block (measured: 68): still within 1e-5 of g(λ) in the known eigenbasis
    (measured 1.6e-7)."""
    gen = torch.Generator().manual_seed(0)
    N = 300
    U, _ = torch.linalg.qr(torch.randn(N, N, generator=gen, dtype=torch.float64))
    lam = torch.linspace(0.01, 1, N, dtype=torch.float64)
    r0 = torch.randn(N, generator=gen, dtype=torch.float64)
    info = {}
    got = _krylov_coefficients((U * lam) @ U.T, r0, 1e4, info=info)
    exact = U @ (-torch.expm1(-1e4 * lam) / lam * (U.T @ r0))
    assert info["dim"] > 64 and float((got - exact).norm() / exact.norm()) <= 1e-5, info

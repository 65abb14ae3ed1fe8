"""Two-layer linear network on one-dimensional data (the setting of Xu & Ziyin, ICLR 2025), exactly.

Model: f(x) = m uᵀW x with readout u ∈ R^h (W2 = uᵀ), first layer W (W1), m the product of the layer
multipliers. Data x_i = z_i n along one unit direction n (Xu & Ziyin Prop. 1: an effective point
x = √mean(z²) n with target y_* = mean(z y)/√mean(z²)); only w := W n moves. With γ := m √mean(z²),
r = γ uᵀw − y_*, rates η_u, η_w: u̇ = −η_u γ r w, ẇ = −η_w γ r u. Invariants C = ||u||²/η_u − ||w||²/η_w
and D = ||u||²||w||² − (uᵀw)².

Closed form (independent derivation): u' = u/√η_u, w' = w/√η_w, g = γ√(η_uη_w), P± = ||u'₀ ± w'₀||².
Then u' ± w' = (u'₀ ± w'₀) e^{∓S} with S = g∫r, and z = e^{2S} solves the Riccati equation
ż = A + Bz − Cz², A = g²P₊/2, B = −2g y_*, C = g²P₋/2, z(0) = 1, whose solution with λ = √(B² + 4AC)
= g√(4y_*² + g²P₊P₋) and T = tanh(λt/2)/λ is z = (1 + (B + 2A)T)/(1 − (B − 2C)T) (no overflow,
P₋ = 0 allowed). p = uᵀw = √(η_uη_w)(P₊/z − P₋z)/4, ζ = cos∠(u, w) = p/√(p² + D),
NTK Θ = γ²(η_u||w||² + η_w||u||²) (per unit input, lr-weighted).

Laziness number χ = γh(η_wσ_u² + η_uσ_w²)/(2√(η_uη_w)|y_*|) for Gaussian inits: χ ≫ 1 kernel,
χ ≲ 1 feature learning; the NTK ratio Θ(∞)/Θ(0) ≈ √(1 + χ⁻²). Phase boundary under width scalings
γ ∝ h^{−a}, σ_u² ∝ h^{−b_u}, σ_w² ∝ h^{−b_w}, η_u/η_w ∝ h^c: χ ∝ h^e with
e = 1 − a + max(−b_u − c/2, −b_w + c/2) (e > 0 kernel, e < 0 rich, e = 0 both Θ(1)).

Verified (tests/theory/test_one_d.py) against `lazyrich.flow`: output, ζ, Θ/Θ₀ and ||u||, ||w||
within 1e-8 for the alignment, disalignment and rescaling cases; the kernel distance is 0 at all
times here (K ∝ zzᵀ has rank one), so the NTK ratio is this model's laziness measure.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..errors import LazyrichError, require
from .checks import as_array, positive
from .trajectory import Trajectory, trajectory

PAIR = "W1-W2"
MECHANISMS = ("alignment", "disalignment", "rescaling", "kernel")


def solve(times: ArrayLike, u0: ArrayLike, w0: ArrayLike, gamma: float, y_star: float, lr_u: float = 1.0,
          lr_w: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(u(t), w(t)), each [T, h], by the closed form of the module docstring."""
    t = as_array(times, "times").reshape(-1, 1)
    require(bool((t >= 0).all()), "times must be non-negative")
    u, w = as_array(u0, "u0", 1), as_array(w0, "w0", 1)
    require(u.shape == w.shape, f"u0 and w0 must have the same width; got {u.shape} and {w.shape}")
    lr_u, lr_w = positive(lr_u, "lr_u"), positive(lr_w, "lr_w")
    su, sw = np.sqrt(lr_u), np.sqrt(lr_w)
    plus, minus = u / su + w / sw, u / su - w / sw
    Pp, Pm = float(plus @ plus), float(minus @ minus)
    g = gamma * su * sw
    A, B, C = g * g * Pp / 2, -2 * g * y_star, g * g * Pm / 2
    lam = np.sqrt(B * B + 4 * A * C)
    T = np.tanh(lam * t / 2) / lam if lam > 0 else t / 2
    z = (1 + (B + 2 * A) * T) / (1 - (B - 2 * C) * T)
    ez = np.sqrt(z)  # e^{S}
    up, um = plus[None, :] / ez, minus[None, :] * ez
    return su * (up + um) / 2, sw * (up - um) / 2


def invariants(u0: ArrayLike, w0: ArrayLike, lr_u: float = 1.0, lr_w: float = 1.0) -> tuple[float, float]:
    """(C, D): C = ||u||²/η_u − ||w||²/η_w (the records' Q of the pair W1-W2) and D = ||u||²||w||² − (uᵀw)²."""
    u, w = as_array(u0, "u0", 1), as_array(w0, "w0", 1)
    return float(u @ u / lr_u - w @ w / lr_w), float((u @ u) * (w @ w) - (u @ w) ** 2)


def one_d(times: ArrayLike, u0: ArrayLike, w0: ArrayLike, gamma: float, y_star: float, lr_u: float = 1.0,
          lr_w: float = 1.0, loss_floor: float = 0.0) -> Trajectory:
    """Exact trajectory. Observables: ``loss``, ``output`` (f at the effective point, γ uᵀw),
    ``zeta`` (layer W1-W2, cos∠(u, w), as the `balance` observer), ``ntk_ratio`` (Θ(t)/Θ(0)),
    ``kernel_distance`` (0), ``u_norm``/``w_norm`` (layers W2/W1), ``delta_k`` (layer W1-W2: the per-neuron
    u_k²/η_u − w_k²/η_w, constant; the records' δ_k add the frozen −||W_k(I − nnᵀ)||²/η_w when d > 1)."""
    u, w = solve(times, u0, w0, gamma, y_star, lr_u, lr_w)
    p = (u * w).sum(1)
    uu, ww = (u * u).sum(1), (w * w).sum(1)
    theta = gamma**2 * (lr_u * ww + lr_w * uu)
    u_0, w_0 = as_array(u0, "u0", 1), as_array(w0, "w0", 1)
    out = gamma * p
    return trajectory(times, layers={"zeta": PAIR, "u_norm": "W2", "w_norm": "W1", "delta_k": PAIR},
                      loss=0.5 * (out - y_star) ** 2 + loss_floor, output=out, zeta=p / np.sqrt(uu * ww),
                      ntk_ratio=theta / theta[0] if theta[0] > 0 else np.full_like(theta, np.nan),
                      kernel_distance=np.zeros(len(p)), u_norm=np.sqrt(uu), w_norm=np.sqrt(ww),
                      delta_k=np.broadcast_to(u_0**2 / lr_u - w_0**2 / lr_w, (len(p), len(u_0))))


def rate(u0: ArrayLike, w0: ArrayLike, gamma: float, y_star: float, lr_u: float = 1.0, lr_w: float = 1.0) -> float:
    """Late-time rate λ of |f − y_*| ∝ e^{−λt}: λ² = 4η_uη_wγ²y_*² + γ⁴K, K = η_u²η_w²C² + 4η_uη_wD."""
    C, D = invariants(u0, w0, lr_u, lr_w)
    K = lr_u**2 * lr_w**2 * C * C + 4 * lr_u * lr_w * D
    return float(np.sqrt(4 * lr_u * lr_w * gamma**2 * y_star**2 + gamma**4 * K))


def final_zeta(u0: ArrayLike, w0: ArrayLike, gamma: float, y_star: float) -> float:
    """ζ(∞) = p_*/√(p_*² + D), p_* = y_*/γ (the flow interpolates)."""
    _, D = invariants(u0, w0)
    ps = y_star / gamma
    return float(ps / np.sqrt(ps * ps + D))


def laziness(h: int, gamma: float, y_star: float, sigma_u: float, sigma_w: float, lr_u: float = 1.0,
             lr_w: float = 1.0) -> float:
    """χ = γh(η_wσ_u² + η_uσ_w²)/(2√(η_uη_w)|y_*|): the ratio √K/(2√(η_uη_w)|p_*|) at a Gaussian init
    (||u||² ≈ hσ_u², ||w||² ≈ hσ_w², p₀ ≈ 0). χ ≫ 1 kernel, χ ≲ 1 feature learning."""
    require(y_star != 0, "χ needs a nonzero target y_*")
    return float(gamma * h * (lr_w * sigma_u**2 + lr_u * sigma_w**2) / (2 * np.sqrt(lr_u * lr_w) * abs(y_star)))


def ntk_ratio_estimate(chi: float) -> float:
    """Θ(∞)/Θ(0) ≈ √(1 + χ⁻²) at a random init with p₀ ≈ 0 (exact when p₀ = 0 and ||u||²||w||² = D)."""
    return float(np.sqrt(1 + chi**-2))


def phase_exponent(a: float, b_u: float, b_w: float, c: float = 0.0) -> float:
    """Exponent e of χ ∝ h^e for γ ∝ h^{−a}, σ_u² ∝ h^{−b_u}, σ_w² ∝ h^{−b_w}, η_u/η_w ∝ h^c.
    NTP (a = ½, b = 0): e = ½ (kernel); mean field (a = 1, b = 0): e = 0; small init (b > 1): rich."""
    return 1 - a + max(-b_u - c / 2, -b_w + c / 2)


def phase(a: float, b_u: float, b_w: float, c: float = 0.0) -> str:
    """``kernel`` (e > 0), ``feature`` (e < 0) or ``boundary`` (e = 0: χ = Θ(1), finite feature learning)."""
    e = phase_exponent(a, b_u, b_w, c)
    return "kernel" if e > 1e-12 else ("feature" if e < -1e-12 else "boundary")


def final_ntk_ratio(u0: ArrayLike, w0: ArrayLike, gamma: float, y_star: float, lr_u: float = 1.0,
                    lr_w: float = 1.0) -> float:
    """Θ(∞)/Θ(0) = √((K + 4η_uη_w p_*²)/(K + 4η_uη_w p₀²)) with p_* = y_*/γ (the flow interpolates)."""
    u, w = as_array(u0, "u0", 1), as_array(w0, "w0", 1)
    C, D = invariants(u, w, lr_u, lr_w)
    K = lr_u**2 * lr_w**2 * C * C + 4 * lr_u * lr_w * D
    e, p0, ps = 4 * lr_u * lr_w, float(u @ w), y_star / gamma
    return float(np.sqrt((K + e * ps * ps) / (K + e * p0 * p0)))


def mechanism(u0: ArrayLike, w0: ArrayLike, gamma: float, y_star: float, lr_u: float = 1.0, lr_w: float = 1.0,
              kernel_tol: float = 0.05, aligned: float = 0.01) -> str:
    """Which of Xu & Ziyin's mechanisms drives the fit, from the init alone (stated boundaries):

    * ``kernel``: the NTK barely moves, |Θ(∞)/Θ(0) − 1| ≤ kernel_tol (`final_ntk_ratio`);
    * ``rescaling``: the layers are already aligned, D ≤ aligned·min(p₀², p_*²): |ζ| stays ≈ 1 while the
      norms change (their split set by C);
    * ``alignment``: |p_*| > |p₀|, so |ζ| grows from |ζ₀| to |ζ(∞)| = |p_*|/√(p_*² + D) (through 0 first
      when sgn p₀ ≠ sgn y_*);
    * ``disalignment``: |p_*| < |p₀|: the output must shrink and |ζ| falls (ζ is monotone in p at fixed D).
    """
    if abs(final_ntk_ratio(u0, w0, gamma, y_star, lr_u, lr_w) - 1) <= kernel_tol:
        return "kernel"
    u, w = as_array(u0, "u0", 1), as_array(w0, "w0", 1)
    _, D = invariants(u, w, lr_u, lr_w)
    p0, ps = float(u @ w), y_star / gamma
    if D <= aligned * min(p0 * p0, ps * ps):
        return "rescaling"
    return "alignment" if abs(ps) > abs(p0) else "disalignment"


def mechanism_case(name: str, h: int = 64, seed: int = 0) -> dict:
    """A named example init (u0, w0, gamma, y_star) for each mechanism at width h."""
    require(name in MECHANISMS, f"unknown mechanism {name!r}: choose one of {', '.join(MECHANISMS)}")
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(2, h)) / np.sqrt(h)
    if name == "alignment":  # small random init, target far away: ζ rises from O(h^{-1/2})
        return {"u0": 0.05 * g[0], "w0": 0.05 * g[1], "gamma": 1.0, "y_star": 1.0}
    if name == "disalignment":  # aligned-ish init whose output has the wrong sign: ζ crosses 0
        u = g[0]
        return {"u0": u, "w0": 0.8 * u + 0.3 * g[1], "gamma": 1.0, "y_star": -0.2}
    if name == "rescaling":  # identical layers (D = 0): ζ = 1 throughout, only norms change
        u = g[0] * 0.5
        return {"u0": u, "w0": u.copy(), "gamma": 1.0, "y_star": 2.0}
    return {"u0": g[0] * 3, "w0": g[1] * 3, "gamma": 1.0, "y_star": 0.1}  # kernel: large init, tiny target


def one_d_inputs(ens, data, member: int = 0, tol: float = 1e-10) -> dict:  # noqa: ANN001 - Ensemble, Data
    """Keyword arguments of `one_d` for one member of a (d, h, 1) linear ensemble on 1-D data
    x_i = z_i n: u0 = W2ᵀ, w0 = W1 n, γ = m1 m2 √mean(z²), y_* = mean(z y)/√mean(z²), rates, floor."""
    net = ens.net
    require(net.depth == 2 and net.widths[2] == 1 and net.activation == "linear" and not net.bias,
            f"the 1-D solution needs widths (d, h, 1), linear, no biases; got {net.widths}, {net.activation}")
    X = as_array(data.x, "x", 2)
    Y = as_array(data.y, "y").reshape(-1)
    _, sv, vt = np.linalg.svd(X, full_matrices=False)
    if sv.size > 1 and sv[1] > tol * sv[0]:
        raise LazyrichError(f"precondition '1-D data' violated: X has rank > 1 (σ₂/σ₁ = {sv[1] / sv[0]:.2e}); "
                            "use data x_i = z_i·n")
    n = vt[0]
    z = X @ n
    m2 = float(np.mean(z * z))
    m = float(ens.multipliers["W1"][member]) * float(ens.multipliers["W2"][member])
    rates = ens.rates()
    y_star = float(np.mean(z * Y)) / np.sqrt(m2)
    return {"u0": as_array(ens.params["W2"][member, 0], "u0"), "w0": as_array(ens.params["W1"][member], "W1") @ n,
            "gamma": m * np.sqrt(m2), "y_star": y_star, "lr_u": float(rates["W2"][member]),
            "lr_w": float(rates["W1"][member]), "loss_floor": 0.5 * float(np.mean(Y * Y)) - 0.5 * y_star**2}

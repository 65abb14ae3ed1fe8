"""A-priori regime predictor for two-layer networks f = Σ_k a_k σ(w_kᵀx): lazy, mixed, rich or ultra-rich
from the configuration alone (widths, activation, per-neuron scale τ and imbalance δ, or a
parametrization table with γ, init scale and learning rates) plus the data's scales.

Numbers (rates absorbed: a' = m₂a, η_a' = η_a m₂², likewise for w), per neuron μ = |a|·||w|| (= τ²),
δ = η_w a² − η_a||w||² and κ = η_w a² + η_a||w||² = √(δ² + 4η_aη_w μ²); Y = rms||y||/rms||x||:
* fit-to-scale ratio B = Y/(mμ): how far the function must move relative to what the init expresses;
* laziness number χ = mκ/(2√(η_aη_w)Y) (the 1-D solution's χ, `one_d.laziness`, with κ from δ):
  the NTK magnitude changes by √(1 + χ⁻²) − 1 (`one_d.ntk_ratio_estimate`);
* first-layer share f_w = η_w a²/κ = (1 + δ/κ)/2 of the NTK, which is also the share of the function
  change made by the first layer in a lazy fit: the relative rotation of w is ρ_w ≈ f_w·B;
* richness R: for piecewise-linear σ the rotation of w flips activation gates, R = 2f_w·B (= B when
  balanced, → 2B upstream, → 0 downstream: Kunin et al.'s "get rich quick" vs delayed rich); for
  linear σ only the kernel's shape and size move, R = max(4f_w(1 − f_w)·B, √(1 + χ⁻²) − 1).
Boundary (stated, used by the test): lazy if R < 0.1, rich if R > 1, mixed in between, ultra-rich if
rich and B > 10 (the init is a tenth of the needed scale: a plateau at the saddle, then drops).
Checked in tests/theory/test_regime.py against the measured kernel distance on a 5×5 τ×δ grid of
two-layer ReLU students (lazy ↔ S(0,T) < 0.05, rich/ultra-rich ↔ S > 0.3, mixed ↔ in between).
Smooth activations (tanh, gelu) use the gate formula as an approximation. Horizon: the configuration
alone is horizon-blind both ways: downstream nets (f_w → 0) are predicted lazy but turn rich after a
delay (Kunin et al.'s delayed rich regime), and tiny inits (B ≫ 1) are predicted ultra-rich but may
still sit on the saddle's plateau at the horizon. `predict_regime_on_data` fixes both: given the data,
the initial weights and the horizon, it predicts the kernel distance Ŝ reached by then
(`relinearized_kernel_distance`: lazy fits in log-spaced phases, relinearizing between them) and labels
by Ŝ's band: rich if Ŝ > 0.3 (ultra-rich if also B > 10), lazy if Ŝ < 0.05, mixed otherwise (Ŝ is itself
a kernel distance, so its bands are the measured ones: no new constant). R and B stay in the result.
Measured on a class-balanced set of trained nets (eight conditions, seven not tuned on: Gaussian f₀ ≠ 0
init, tanh, iris and digits data, an 8× horizon, delayed-rich horizons, three layers; bench/regime_accuracy.py):
per-class recall lazy / mixed / rich 0.97 / 0.95 / 0.93 (balanced accuracy 0.95) for `predict_regime_on_data`,
0.89 / 0.06 / 0.40 (0.45; chance 0.33) for the configuration alone: its R jumps across the mixed band, and
it is horizon-blind (30 of 32 delayed-rich nets called lazy at every horizon). Cost of the default: 0.7×
training the same nets at n = 80, 2.3× at n = 200, 0.85× at n = 1,000 (Lanczos above n·c = 128; the
eigendecomposition alone: 4× and 5-9×); 0.26× at n = 1,000 with `per_decade=4` (`predict_regime_on_data`'s
docstring; docs/theory/regime.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import require
from ..models.activations import check
from ..param.schemes import layer_table
from .checks import positive
from .one_d import ntk_ratio_estimate
from .relinearized import PER_DECADE, relinearized_kernel_distance

LAZY_BELOW, RICH_ABOVE, ULTRA_ABOVE = 0.1, 1.0, 10.0
LAZY_S, RICH_S = 0.05, 0.3  # the measured kernel-distance bands (lazy S < 0.05, rich S > 0.3)
REGIMES = ("lazy", "mixed", "rich", "ultra-rich")


@dataclass(frozen=True)
class RegimePrediction:
    """The predicted regime and the numbers behind it (module docstring)."""

    regime: str
    richness: float          # R
    fit_ratio: float         # B
    chi: float               # χ
    first_layer_share: float  # f_w
    ntk_ratio: float         # predicted Θ(∞)/Θ(0) magnitude ratio √(1 + χ⁻²)
    delta_over_tau2: float   # δ/τ² (Kunin's imbalance at unit scale, rates absorbed)
    boundary: str = (f"lazy R<{LAZY_BELOW}, mixed {LAZY_BELOW}≤R≤{RICH_ABOVE}, rich R>{RICH_ABOVE}, "
                     f"ultra-rich R>{RICH_ABOVE} and B>{ULTRA_ABOVE}")
    kernel_distance: float = float("nan")  # Ŝ at the horizon (predict_regime_on_data only)

    def as_dict(self) -> dict:
        return asdict(self)


def predict_regime(widths: tuple[int, int, int], tau: float, delta: float, y_scale: float = 1.0,
                   x_scale: float = 1.0, lr_a: float = 1.0, lr_w: float = 1.0,
                   activation: str = "relu") -> RegimePrediction:
    """Regime of a two-layer net (d, m, c) whose neurons have scale |a|·||w|| = τ² and imbalance
    δ = η_w a² − η_a||w||² (Kunin's δ; at unit rates a² − ||w||²), for targets of rms norm `y_scale`
    on inputs of rms norm `x_scale`. Rates are the layer learning rates (only their ratio and product
    enter). Cost < 1 ms. Accuracy on a class-balanced set of trained nets (bench/regime_accuracy.py, seven
    two-layer conditions): per-class recall lazy / mixed / rich 0.89 / 0.06 / 0.40, balanced accuracy 0.45
    (chance 0.33) — a first guess; `predict_regime_on_data` (0.95) when the data and horizon are known."""
    require(len(widths) == 3, f"the predictor covers two-layer nets (d, m, c); got widths {tuple(widths)}")
    check(activation)
    d, m, c = (int(w) for w in widths)
    tau, y_scale, x_scale = positive(tau, "tau"), positive(y_scale, "y_scale"), positive(x_scale, "x_scale")
    lr_a, lr_w = positive(lr_a, "lr_a"), positive(lr_w, "lr_w")
    e = np.sqrt(lr_a * lr_w)
    mu = tau**2
    kappa = float(np.sqrt(delta**2 + 4 * e * e * mu * mu))
    Y = y_scale / x_scale
    B = Y / (m * mu)
    chi = m * kappa / (2 * e * Y)
    # f_w = (κ + δ)/(2κ); for δ < 0 write it as 2e²μ²/(κ(κ − δ)) to avoid cancellation
    f_w = (kappa + delta) / (2 * kappa) if delta >= 0 else 2 * e * e * mu * mu / (kappa * (kappa - delta))
    if activation == "linear":
        R = max(4 * f_w * (1 - f_w) * B, ntk_ratio_estimate(chi) - 1)
    else:
        R = 2 * f_w * B
    if R < LAZY_BELOW:
        label = "lazy"
    elif R <= RICH_ABOVE:
        label = "mixed"
    else:
        label = "ultra-rich" if B > ULTRA_ABOVE else "rich"
    return RegimePrediction(label, float(R), float(B), float(chi), float(f_w), ntk_ratio_estimate(chi),
                            float(delta / (e * mu)))


def predict_regime_from_table(widths: tuple[int, int, int], scheme: str = "mup", optimizer: str = "sgd",
                              gamma: float = 1.0, lr: float = 1.0, std_scale: float = 1.0, y_scale: float = 1.0,
                              x_scale: float = 1.0, activation: str = "relu",
                              overrides: dict[str, dict[str, float]] | None = None) -> RegimePrediction:
    """Regime of a Gaussian-initialised two-layer net under a parametrization (`lazyrich.param`):
    typical neuron |a| = m₂σ_a√c, ||w|| = m₁σ_w√d, rates η·m² (multipliers absorbed), so
    τ² = |a|·||w|| and δ = η_w'a'² − η_a'||w'||², then `predict_regime` (its cost and accuracy)."""
    require(len(widths) == 3, f"the predictor covers two-layer nets (d, m, c); got widths {tuple(widths)}")
    rows = {r.name: r for r in layer_table(widths, scheme, optimizer, gamma, None, False, overrides)}
    w_row, a_row = rows["W1"], rows["W2"]
    d, _, c = widths
    a = a_row.multiplier * a_row.init_std * std_scale * np.sqrt(c)
    w = w_row.multiplier * w_row.init_std * std_scale * np.sqrt(d)
    require(a > 0 and w > 0, "the predictor needs nonzero initial weights in both layers")
    lr_a = lr * a_row.lr_scale * a_row.multiplier**2
    lr_w = lr * w_row.lr_scale * w_row.multiplier**2
    delta = lr_w * a * a - lr_a * w * w
    return predict_regime(widths, float(np.sqrt(a * w)), float(delta), y_scale, x_scale, lr_a, lr_w, activation)


def predict_regime_on_data(x, y, W, A, steps: int, lr_w: float, lr_a: float, activation: str = "relu",
                           loss_scale: float = 0.5, per_decade: float = PER_DECADE,
                           max_samples: int | None = None, seed: int = 0, solver: str = "auto") -> RegimePrediction:
    """Regime of one two-layer net f = A σ(W x) (W [m, d], A [c, m], multipliers folded in) trained for
    `steps` steps at layer rates (lr_w, lr_a) on (x [n, d], y [n, c]), labelled by the predicted kernel
    distance Ŝ at the horizon (module docstring); R, B, χ, f_w are the configuration's (mean per-neuron
    scale |a_k|·||w_k|| and mean δ_k = η_W|a_k|² − η_A||w_k||²).

    Cost (bench/regime_cost.py; 9 nets vs training the same 9 as one fused ensemble, one thread, 2-core
    CPU under load 10-12, wall / FLOPs), N = ⌈q·log₁₀T⌉ + 1 phases at q = `per_decade` (default 16):
    `solver="eigh"` costs O(N·(nc)³): 0.7× / 0.4× training at n = 80 / 6,000 steps, 4× / 4× at n = 200 /
    3,000 and 5-9× / 13× at n = 1,000 / 2,000 (Kunin Fig. 1 size). `solver="krylov"` gives the same Ŝ
    (≤ 1.1e-10 apart on 524 trained cells) from a Lanczos basis (median dimension 8): 2.3× / 0.36× at
    n = 200, 0.80-0.85× / 0.61× at n = 1,000, but 1.0× / 0.09× at n = 80 (loop overhead dominates there); the
    default "auto" takes eigh up to n·c = 128 and Krylov above. `per_decade=4` cuts any option by 3.5×
    (Krylov q = 4: 0.26× / 0.18× at n = 1,000); `max_samples=n_s` runs the phases on a fixed
    subset of n_s samples (`seed`), 0.04× at n = 1,000 with n_s = 128, but a subset's lazy fit needs less
    feature motion: it underestimates S (mixed cells' 0.19 / 0.27 → Ŝ = 0.07 / 0.08) — a band check only.
    Accuracy (bench/regime_accuracy.py; class-balanced lazy/mixed/rich cells of trained nets over eight
    conditions: Kunin's setup, Gaussian f₀ ≠ 0 init, tanh, iris and digits data, 8× horizon, delayed-rich
    horizons, three layers via `relinearized_kernel_distance_layers`): per-class recall 0.97 / 0.95 / 0.93
    (balanced accuracy 0.95) at q = 16 (either solver), 0.96 / 0.83 / 0.85 (0.88) at q = 4, 0.90 / 0.87 /
    0.74 (0.84) at q = 1, 0.90 / 0.82 / 0.73 (0.82) at q = 4 on half the samples; 17 of the 18 misses at
    q = 16 over 524 trained cells lie within 0.03 of a band edge. The configuration-only `predict_regime`:
    0.89 / 0.06 / 0.40 (0.45)."""
    check(activation)
    m = W.shape[0]
    a_norm, w_norm = A.norm(dim=0), W.norm(dim=1)
    tau = float((a_norm * w_norm).mean().sqrt())
    delta = float((lr_w * a_norm**2 - lr_a * w_norm**2).mean())
    y_scale = float(y.pow(2).sum(1).mean().sqrt())
    x_scale = float(x.pow(2).sum(1).mean().sqrt())
    base = predict_regime((W.shape[1], m, A.shape[0]), tau, delta, y_scale, x_scale, lr_a, lr_w, activation)
    s_hat = relinearized_kernel_distance(x, y, W, A, steps, lr_w, lr_a, activation, loss_scale, per_decade,
                                         max_samples, seed, solver)
    if s_hat > RICH_S:
        label = "ultra-rich" if base.fit_ratio > ULTRA_ABOVE else "rich"
    elif s_hat < LAZY_S:
        label = "lazy"
    else:
        label = "mixed"
    return replace(base, regime=label, kernel_distance=s_hat,
                   boundary=f"by the predicted kernel distance Ŝ: lazy Ŝ<{LAZY_S}, mixed {LAZY_S}≤Ŝ≤{RICH_S}, "
                            f"rich Ŝ>{RICH_S}, ultra-rich Ŝ>{RICH_S} and B>{ULTRA_ABOVE}")

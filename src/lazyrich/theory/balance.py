"""Balancedness predictions (the blog "Feature learning networks are/become balanced", reconstructed in
../shared/theory/balancedness.md §6) and the quantities its argument glosses over.

For a consecutive pair l (lower W_l: n_l × n_{l−1}, upper W_{l+1}: n_{l+1} × n_l) with i.i.d. Gaussian
entries of variance σ² and effective learning rates η, Q_l = W_{l+1}ᵀW_{l+1}/η_{l+1} − W_lW_lᵀ/η_l:

* the blog's scalar λ = tr E[Q]/n_l = n_{l+1}σ_{l+1}²/η_{l+1} − n_{l−1}σ_l²/η_l, for any scheme, widths,
  γ and base learning rate (from `lazyrich.param.layer_table`), with its sampling standard deviation;
* ||Q||_op, which does not follow λ: Q = P − N is a difference of two free Wishart matrices of
  scales p = n_l σ_{l+1}²/η_{l+1}, q = n_l σ_l²/η_l and ranks n_{l+1}, n_{l−1}; the edges of the
  spectrum come from the R-transform R(z) = p c₁/(1 − pz) − q c₂/(1 + qz) (c₁ = n_{l+1}/n_l,
  c₂ = n_{l−1}/n_l) as the critical values of K(z) = R(z) + 1/z; at finite size the largest eigenvalue
  sits below the edge by the Tracy–Widom mean. Wide limit: ||Q||_op → max(p, q).
  Under μP p, q = Θ(1) while λ = O(1/width): the layers are balanced on average, not in norm;
* the learning-rate-invariant per-neuron imbalance r_k = δ_k/(√(η_aη_w)||a_k|| ||w_k||) = v − 1/v,
  v = √(η_w/η_a)||a_k||/||w_k|| (Kunin's δ/τ² with rates absorbed); its median is exact:
  v_med = √(η_w c σ_a²/(η_a d σ_w²) · F_med(c, d)) with F_med the median of the F(c, d) law;
* Q(t) under weight decay: Q(0)e^{−2ρt} when r_Aκ_A = r_Wκ_W = ρ (rates r = lr/base lr), else no
  closed law; the exact one-step change under GD with decay and a schedule factor f (`conserved_step`);
  the exact 1-D warmup factor C_{k+1} = (1 − f²η_uη_wγ²m₂²r_k²) C_k and its regimes.
Verified in tests/theory/test_balance.py by sampling real inits (`lazyrich.build`) and training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from ..errors import require
from ..param.schemes import layer_table
from .checks import positive


@dataclass(frozen=True)
class PairBalance:
    """Predicted balance of the pair ``layer`` ("W{l}-W{l+1}") at a Gaussian init."""

    layer: str
    lam: float        # tr E[Q]/n_l (the blog's λ)
    lam_std: float    # standard deviation of the sampled tr Q/n_l
    upper: float      # p = n_l σ_{l+1}²/η_{l+1}: scale of W_{l+1}ᵀW_{l+1}/η_{l+1}
    lower: float      # q = n_l σ_l²/η_l: scale of W_lW_lᵀ/η_l
    q_op: float       # predicted mean of ||Q||_op (free-probability edge + Tracy–Widom mean shift)
    q_op_std: float   # predicted standard deviation of ||Q||_op over inits (Tracy–Widom)
    q_op_edge: float  # the free-probability spectral edge (proportional-limit value)
    q_op_limit: float  # max(p, q): the wide limit of ||Q||_op
    imbalance_median: float  # median per-neuron r_k (two-layer, vector neurons)


def _edges(n: int, k1: int, k2: int, p: float, q: float) -> tuple[float, float]:
    """(right, left) spectral edges of P − N (free Wisharts, scales p, q, ranks k1, k2, dimension n)."""
    c1, c2 = k1 / n, k2 / n

    def K(z: float) -> float:
        return p * c1 / (1 - p * z) - q * c2 / (1 + q * z) + 1 / z

    right = left = 0.0
    if p > 0 and k1 > 0:
        right = minimize_scalar(K, bounds=(1e-14 / p, (1 - 1e-12) / p), method="bounded",
                                options={"xatol": 1e-15 / p}).fun
    if q > 0 and k2 > 0:
        left = -minimize_scalar(lambda z: -K(z), bounds=(-(1 - 1e-12) / q, -1e-14 / q), method="bounded",
                                options={"xatol": 1e-15 / q}).fun
    return float(right), float(left)


TW_MEAN, TW_STD = -1.2065335745820, 1.2680340580  # Tracy–Widom (β = 1) mean and standard deviation


def operator_norm_prediction(n: int, k_upper: int, k_lower: int, upper: float, lower: float) -> tuple[float, float, float]:
    """(mean, std, edge) of ||Q||_op for Q = P − N in dimension n: the free-probability edge of the
    dominant side, shifted by the Tracy–Widom mean of that side's largest Wishart eigenvalue
    (Johnstone's scale σ = (√(n−1) + √k)(1/√(n−1) + 1/√k)^{1/3}, in units of scale/n)."""
    r, l = _edges(n, k_upper, k_lower, upper, lower)
    edge, k, scale = (r, k_upper, upper) if r >= -l else (-l, k_lower, lower)
    if k == 0 or n < 2:
        return edge, 0.0, edge
    sigma = (np.sqrt(n - 1) + np.sqrt(k)) * (1 / np.sqrt(n - 1) + 1 / np.sqrt(k)) ** (1 / 3) * scale / n
    return float(edge + TW_MEAN * sigma), float(TW_STD * sigma), float(edge)


def imbalance_median(c: int, d: int, std_a: float, std_w: float, lr_a: float, lr_w: float) -> float:
    """Exact median of r_k = δ_k/(√(η_aη_w)||a_k|| ||w_k||) for a_k ∈ R^c, w_k ∈ R^d Gaussian."""
    from scipy.stats import f as f_dist  # slow to import: only here

    v2 = lr_w * c * std_a**2 / (lr_a * d * std_w**2) * float(f_dist.median(c, d))
    v = np.sqrt(v2)
    return float(v - 1 / v)


def predict_balance(widths: tuple[int, ...] | list[int], scheme: str = "mup", optimizer: str = "sgd",
                    gamma: float = 1.0, gamma_lr: bool | None = None, lr: float = 1.0, std_scale: float = 1.0,
                    overrides: dict[str, dict[str, float]] | None = None) -> list[PairBalance]:
    """Balance predictions for every consecutive pair of an MLP at its Gaussian init (no biases),
    using the same table `lazyrich.build` uses (effective lr = lr × lr_scale, std × std_scale)."""
    lr, std_scale = positive(lr, "lr"), positive(std_scale, "std_scale")
    rows = [r for r in layer_table(widths, scheme, optimizer, gamma, gamma_lr, False, overrides) if r.role != "bias"]
    out = []
    for lo, up in zip(rows[:-1], rows[1:]):
        n = lo.fan_out
        s_lo, s_up = lo.init_std * std_scale, up.init_std * std_scale
        e_lo, e_up = lr * lo.lr_scale, lr * up.lr_scale
        require(e_lo > 0 and e_up > 0, f"pair {lo.name}-{up.name} has a zero learning rate: Q is undefined")
        p, q = n * s_up**2 / e_up, n * s_lo**2 / e_lo
        lam = up.fan_out * s_up**2 / e_up - lo.fan_in * s_lo**2 / e_lo
        std = np.sqrt(2 * (up.fan_out * s_up**4 / e_up**2 + lo.fan_in * s_lo**4 / e_lo**2) / n)
        med = imbalance_median(up.fan_out, lo.fan_in, s_up, s_lo, e_up, e_lo) if s_up > 0 and s_lo > 0 else float("nan")
        op, op_std, edge = operator_norm_prediction(n, up.fan_out, lo.fan_in, p, q)
        out.append(PairBalance(f"{lo.name}-{up.name}", float(lam), float(std), float(p), float(q), op, op_std, edge,
                               float(max(p, q)), med))
    return out


def neuron_imbalance(lower: Tensor, upper: Tensor, lr_lower: Tensor | float, lr_upper: Tensor | float) -> Tensor:
    """Measured r_k = δ_k/(√(η_lη_u)||a_k|| ||w_k||) per hidden unit, δ_k = η_l||a_k||² − η_u||w_k||²
    (a_k: column k of `upper`, w_k: row k of `lower`); batched [E, n_l]. Scale- and lr-invariant."""
    el = torch.as_tensor(lr_lower, dtype=lower.dtype, device=lower.device).reshape(-1, 1)
    eu = torch.as_tensor(lr_upper, dtype=lower.dtype, device=lower.device).reshape(-1, 1)
    a2, w2 = upper.pow(2).sum(-2), lower.pow(2).sum(-1)
    return (el * a2 - eu * w2) / torch.sqrt(el * eu * a2 * w2)


# ---------------------------------------------------------------- dynamics of Q

def decay_rate(lr_lower: float, lr_upper: float, wd_lower: float, wd_upper: float, base_lr: float = 1.0) -> float:
    """ρ with Q(t) = Q(0)e^{−2ρt} under gradient flow with L2 decay, t = base-lr time.
    Precondition: r_lκ_l = r_uκ_u (r = lr/base_lr); otherwise Q obeys no closed law."""
    rl, ru = lr_lower / base_lr, lr_upper / base_lr
    a, b = rl * wd_lower, ru * wd_upper
    require(abs(a - b) <= 1e-12 * max(abs(a), abs(b), 1e-300),
            f"precondition 'η_Aκ_A = η_Wκ_W' violated ({b:.4g} vs {a:.4g}): with unequal lr·decay products Q has "
            "no closed law (Q̇ = −2κ_A r_A Q − 2(κ_A r_A − κ_W r_W)WWᵀ/η_W)")
    return float(a)


def conserved_under_decay(times: np.ndarray, q0: np.ndarray, rho: float) -> np.ndarray:
    """Q(t) = Q(0) e^{−2ρt}: [T, ...] (balancedness.md §4, exact for GF)."""
    t = np.asarray(times, dtype=float)
    return np.exp(-2 * rho * t).reshape(-1, *[1] * np.ndim(q0)) * np.asarray(q0)[None]


def conserved_step(lower: Tensor, upper: Tensor, g_lower: Tensor, g_upper: Tensor, lr_lower: Tensor | float,
                   lr_upper: Tensor | float, wd_lower: Tensor | float = 0.0, wd_upper: Tensor | float = 0.0,
                   factor: float = 1.0) -> Tensor:
    """Exact Q after one GD step W ← W − f·η(g + κW) (coupled L2), Q measured with the unscheduled η:

    Q' = p_u²WᵤᵀWᵤ/η_u − p_l²W_lW_lᵀ/η_l − f(p_u − p_l)S + f²(η_u g_uᵀg_u − η_l g_l g_lᵀ),
    p = 1 − fηκ, S = W_uᵀg_u + g_uᵀW_u. The first-order terms cancel whenever the loss depends on the
    pair only through W_uW_l (any data, loss, minibatch); a schedule enters only through f."""
    def col(v: Tensor | float) -> Tensor:
        return torch.as_tensor(v, dtype=lower.dtype, device=lower.device).reshape(-1, 1, 1)

    el, eu, kl, ku = col(lr_lower), col(lr_upper), col(wd_lower), col(wd_upper)
    pl, pu = 1 - factor * el * kl, 1 - factor * eu * ku
    tu = upper.transpose(-1, -2)
    S = tu @ g_upper + g_upper.transpose(-1, -2) @ upper
    return (pu**2 * tu @ upper / eu - pl**2 * lower @ lower.transpose(-1, -2) / el - factor * (pu - pl) * S
            + factor**2 * (eu * g_upper.transpose(-1, -2) @ g_upper - el * g_lower @ g_lower.transpose(-1, -2)))


def one_d_step_factor(factor: float, lr_u: float, lr_w: float, gamma: float, m2: float, residual: float,
                      rho: float = 0.0) -> float:
    """C_{k+1}/C_k for the 1-D model (f = γuᵀWx, data x = z n, m₂ = mean z²) under GD with schedule
    factor f: (1 − fρ)² − f²η_uη_wγ²m₂²r_k² (ρ = η_uκ_u = η_wκ_w, 0 without decay). Exact."""
    return float((1 - factor * rho) ** 2 - factor**2 * lr_u * lr_w * gamma**2 * m2**2 * residual**2)


def warmup_regime(step_size: float) -> str:
    """Regime of the 1-D balance law for s = f√(η_uη_w)γm₂|r| (no decay): ``contract`` (s < 1),
    ``balance`` (s = 1: C = 0 in one step), ``bounce`` (1 < s < √2: sign flips while shrinking),
    ``grow`` (s > √2: |C| grows with alternating sign). Large early steps balance fast (warmup);
    a large late lr keeps C bouncing; decaying it restores monotone contraction."""
    s = abs(step_size)
    if np.isclose(s, 1.0, rtol=1e-12, atol=0):
        return "balance"
    if s < 1:
        return "contract"
    return "bounce" if s < np.sqrt(2) else "grow"

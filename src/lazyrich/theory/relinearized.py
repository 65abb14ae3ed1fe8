"""Kernel distance a run will reach by a horizon, predicted without training: lazy fits in log-spaced
phases, relinearizing between them.

For a two-layer net f(x) = A σ(W x) (multipliers folded into W and A), gradient flow on the
linearization f₀ + J(θ − θ₀) is solvable in closed form: with loss s·mean_i ||r_i||², layer rates η
(per step), K = J diag(η) Jᵀ = U Λ Uᵀ and time counted in steps k (GD with small rates),

    Δθ = η ⊙ Jᵀ U diag((1 − e^{−cλk})/λ) Uᵀ r₀,        c = 2s/n.

One linearization misses the delayed rich regime (Kunin et al.): from a downstream init the first
layer's Jacobian is ∝ A, tiny until the readout has grown during the lazy fit. The dynamics run on
time scales that span decades (the lazy fit at 1/(cλ_max), feature learning much later), so the
estimate relinearizes at log-spaced times: phase ends 1, T^{1/N}, …, T (in steps; the first step is the
finest time GD resolves), N = ⌈q·log₁₀T⌉ phases at q per decade. (Starting at the lazy time scale
1/(cλ_max) instead is wrong for tiny inits: the first lazy fit alone then moves the weights far beyond
their own scale, and Ŝ converges to the wrong limit.) Each phase is a closed-form lazy fit (an
exponential integrator in log time), so the cost, O(N·(nc)³), grows with log T, not with T or 1/η.
It converges to gradient flow as q → ∞ at first order in 1/q; at the default q = 16 Ŝ has settled:
from q = 16 to 32 it moves by a median 0.0004 over the 600 cells of the test grids, 0.024 at the 99th
percentile, 0.084 at most (a tiny-init upstream cell, where saddle escapes need finer phases).
S = 1 − ⟨K₀, K_T⟩/(‖K₀‖‖K_T‖) between the rate-weighted NTKs at init and at T.
Measured (tests/theory/test_regime.py, docs/theory/regime.md): on a tanh student the error against GD
falls at first order in 1/q (max relative error 0.23, 0.068, 0.017 at q = 4, 16, 64); on Kunin's Fig. 1
ReLU students at small size Ŝ/S = 0.89-1.08 outside the tiny-init upstream corner and 0.71-1.31 inside
it (abrupt saddle escapes), and Ŝ's bands agree with GD's measured S(0, T) on 92-100% of each 5×5 grid.

Any depth: `relinearized_kernel_distance_layers` runs the same phases on f = W_L σ(… σ(W_1 x)) with one
rate per layer, the kernel from `observe.kernel.mlp_ntk` (analytic, O(n²c²Σn_l)) and Jᵀv from the
backpropagated output gradients, so a phase costs one (nc)×(nc) eigendecomposition, 9(nc)³ flops, plus
O(n²c²Σn_l): never the n·c × P Jacobian. Cheaper approximation (`max_samples`, `per_decade`): run the
phases on a fixed random subset of n_s samples (the gradient flow of the subset's loss; Ŝ on the subset's
kernel, an estimate of the full kernel alignment) and/or with fewer phases per decade: cost
N·(9(n_s c)³ + 2(n_s c)²Σn_l), N = ⌈q log₁₀T⌉. `solver="krylov"` (the default above n·c = 128) keeps every
sample and every phase but replaces the eigendecomposition by a Lanczos basis of span{r₀, Kr₀, …}:
g(λ) = (1 − e^{−aλ})/λ is smooth and flat on the kernel's small eigenvalues, so a basis of dimension
j ≪ nc (median 8, at most 60 on bench/regime_cost.py's cells) gives the same Ŝ (≤ 1.1e-10 apart on the 524
cells of bench/regime_accuracy.py) for ≈ 2(nc)²j instead of 9(nc)³ flops.
bench/regime_cost.py and docs/theory/regime.md measure what each costs against training and what it
loses in accuracy.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import require
from ..models.activations import activation as act_fn
from ..models.activations import derivative
from ..models.mlp import MLP, forward
from ..observe.kernel import mlp_ntk, output_gradients

PER_DECADE = 16  # phases per decade of time (module docstring: how settled Ŝ is at 16)
KRYLOV_TOL = 1e-6  # relative change of the Lanczos coefficients at which `solver="krylov"` stops
KRYLOV_ABOVE = 128  # solver="auto": Lanczos above this n·c (measured: eigh faster at 80-100, Krylov at 150-200)
SOLVERS = ("auto", "eigh", "krylov")


def jacobian(x: Tensor, W: Tensor, A: Tensor, act: str = "relu") -> tuple[Tensor, Tensor]:
    """∂f/∂A and ∂f/∂W of f = A σ(W x) over the samples: [n·c, c·m] and [n·c, m·d] (sample-major)."""
    n, d = x.shape
    c, m = A.shape
    z = x @ W.T                                    # [n, m]
    phi, dphi = act_fn(act)(z), derivative(act)(z)
    eye = torch.eye(c, dtype=x.dtype, device=x.device)
    j_a = (eye[None, :, :, None] * phi[:, None, None, :]).reshape(n * c, c * m)
    j_w = ((A[None] * dphi[:, None, :])[..., None] * x[:, None, None, :]).reshape(n * c, m * d)
    return j_a, j_w


def ntk(x: Tensor, W: Tensor, A: Tensor, lr_w: float, lr_a: float, act: str = "relu") -> Tensor:
    """Rate-weighted NTK [n·c, n·c] = η_A J_A J_Aᵀ + η_W J_W J_Wᵀ."""
    j_a, j_w = jacobian(x, W, A, act)
    return lr_a * j_a @ j_a.T + lr_w * j_w @ j_w.T


def linearized_step(x: Tensor, y: Tensor, W: Tensor, A: Tensor, steps: float, lr_w: float, lr_a: float,
                    act: str = "relu", loss_scale: float = 0.5) -> tuple[Tensor, Tensor]:
    """(W, A) after `steps` steps of rates (lr_w, lr_a) of gradient flow on the linearization at (W, A)
    (closed form above; equals GD on it to O(η))."""
    n, c = y.shape
    j_a, j_w = jacobian(x, W, A, act)
    r0 = (y - (act_fn(act)(x @ W.T) @ A.T)).reshape(-1)  # targets minus outputs, sample-major
    v = _lazy_fit_coefficients(lr_a * j_a @ j_a.T + lr_w * j_w @ j_w.T, r0, steps, 2 * loss_scale / n)
    dA = lr_a * (j_a.T @ v)
    dW = lr_w * (j_w.T @ v)
    return W + dW.reshape(W.shape), A + dA.reshape(c, -1)


def _phase_ends(steps: float, per_decade: float) -> list[float]:
    """Phase ends log-spaced from one step to the horizon, `per_decade` per decade: [1, …, steps]."""
    if per_decade <= 0 or steps <= 1:
        return [float(steps)]
    n = math.ceil(per_decade * math.log10(steps))
    return [1.0] + [steps ** (j / n) for j in range(1, n + 1)]


def _kernel_distance(K0: Tensor, K1: Tensor) -> float:
    return float(1 - (K0 * K1).sum() / (torch.linalg.matrix_norm(K0) * torch.linalg.matrix_norm(K1)))


def _g(lam: Tensor, a: float) -> Tensor:
    """(1 − e^{−aλ})/λ on eigenvalues λ ≥ 0 (→ a where aλ underflows the relative rounding)."""
    lam = lam.clamp_min(0.0)
    tiny = lam <= lam.max() * 1e-13
    return torch.where(tiny, torch.full_like(lam, a), -torch.expm1(-a * lam) / torch.where(tiny, 1.0, lam))


def _lazy_fit_coefficients(K: Tensor, r0: Tensor, steps: float, rate: float, solver: str = "eigh") -> Tensor:
    """v = U diag((1 − e^{−rate·λ·steps})/λ) Uᵀ r₀ for K = UΛUᵀ (so Δθ = η ⊙ Jᵀv); `solver="krylov"`:
    the same v from a Lanczos basis of span{r₀, Kr₀, …} (`_krylov_coefficients`); "auto": Krylov when
    n·c > KRYLOV_ABOVE."""
    if solver == "krylov" or (solver == "auto" and r0.shape[0] > KRYLOV_ABOVE):
        return _krylov_coefficients(K, r0, steps * rate)
    lam, U = torch.linalg.eigh(K)
    return U @ (_g(lam, steps * rate) * (U.T @ r0))


def _krylov_coefficients(K: Tensor, r0: Tensor, a: float, tol: float = KRYLOV_TOL, info: dict | None = None) -> Tensor:
    """v = g(K) r₀, g(λ) = (1 − e^{−aλ})/λ, by Lanczos with full reorthogonalization: v ≈ ‖r₀‖ Q_j g(T_j) e₁
    on the j-dimensional Krylov space (Q_j orthonormal, T_j = Q_jᵀKQ_j tridiagonal). Stops when the
    coefficients move by ≤ tol (relative) between checks, or the space is invariant. Cost per iteration one
    matrix-vector product, 2(nc)² flops, plus the reorthogonalization 4(nc)j: g is smooth on the spectrum
    and flat (≈ a) on its small end, so j stays far below nc where the kernel's spectrum decays. `info`
    receives the dimension j reached (bench/regime_cost.py counts FLOPs with it)."""
    N = r0.shape[0]
    beta0 = float(r0.norm())
    if beta0 == 0.0:
        return torch.zeros_like(r0)
    Q = torch.empty(N, min(N, 64), dtype=r0.dtype, device=r0.device)  # grown by doubling: j ≪ N is the rule
    alpha, beta = [], []
    q, prev, scale = r0 / beta0, None, float(torch.linalg.matrix_norm(K))
    for j in range(N):
        if j == Q.shape[1]:
            Q = torch.cat([Q, torch.empty(N, min(N, 2 * j) - j, dtype=Q.dtype, device=Q.device)], 1)
        Q[:, j] = q
        w = K @ q
        alpha.append(float(q @ w))
        w = w - Q[:, : j + 1] @ (Q[:, : j + 1].T @ w)  # full reorthogonalization, twice (Kahan's "twice is enough")
        w = w - Q[:, : j + 1] @ (Q[:, : j + 1].T @ w)
        b = float(w.norm())
        done = b <= 1e-14 * scale or j == N - 1
        if done or j % 4 == 3:
            T = torch.diag(torch.tensor(alpha, dtype=r0.dtype))
            if j:
                off = torch.tensor(beta, dtype=r0.dtype)
                T = T + torch.diag(off, 1) + torch.diag(off, -1)
            lam, S = torch.linalg.eigh(T)
            coef = beta0 * (S @ (_g(lam, a) * S[0]))
            if done or (prev is not None and
                        float((coef[: len(prev)] - prev).norm().hypot(coef[len(prev):].norm())) <= tol * float(coef.norm())):
                if info is not None:
                    info["dim"] = j + 1
                return Q[:, : j + 1] @ coef
            prev = coef
        beta.append(b)
        q = w / b
    raise AssertionError("unreachable: the loop returns at j = N − 1")


def _as_net(weights: list[Tensor], act: str) -> tuple[MLP, dict[str, Tensor]]:
    widths = (weights[0].shape[1],) + tuple(w.shape[0] for w in weights)
    return MLP(widths, act), {f"W{l + 1}": w[None] for l, w in enumerate(weights)}


def layers_ntk(x: Tensor, weights: list[Tensor], lrs: list[float], act: str = "relu") -> Tensor:
    """Rate-weighted NTK [n·c, n·c] = Σ_l η_l J_l J_lᵀ of f = W_L σ(… σ(W_1 x)) (weights [n_l, n_{l−1}])."""
    net, params = _as_net(weights, act)
    return mlp_ntk(net, params, x, None, {k: float(r) for k, r in zip(params, lrs)})[0]


def layers_step(x: Tensor, y: Tensor, weights: list[Tensor], lrs: list[float], steps: float, act: str = "relu",
                loss_scale: float = 0.5, solver: str = "auto") -> list[Tensor]:
    """Weights after `steps` steps of gradient flow on the linearization at `weights`, any depth (the
    closed form of `linearized_step`): ΔW_l = η_l ∂⟨f, v⟩/∂W_l = η_l Σ_i (g_{l,i}ᵀ v_i) h_{l−1,i}ᵀ."""
    n, c = y.shape
    net, params = _as_net(weights, act)
    lr = {k: float(r) for k, r in zip(params, lrs)}
    r0 = y - forward(net, params, x)[0]
    v = _lazy_fit_coefficients(mlp_ntk(net, params, x, None, lr)[0], r0.reshape(-1), steps, 2 * loss_scale / n,
                               solver).reshape(n, c)
    grads, inputs = output_gradients(net, params, x)
    h = [t[0] if t.dim() == 3 else t for t in inputs]
    out = [w + lrs[l] * (torch.einsum("ncj,nc->nj", grads[l][0], v).T @ h[l]) for l, w in enumerate(weights[:-1])]
    return out + [weights[-1] + lrs[-1] * (v.T @ h[-1])]


def _subsample(x: Tensor, y: Tensor, max_samples: int | None, seed: int) -> tuple[Tensor, Tensor]:
    if max_samples is None or max_samples >= x.shape[0]:
        return x, y
    require(max_samples >= 1, f"max_samples={max_samples}: give at least one sample (or None for all)")
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(int(seed)))[:max_samples].to(x.device)
    return x[idx], y[idx]


def relinearized_kernel_distance_layers(x: Tensor, y: Tensor, weights: list[Tensor], lrs: list[float], steps: float,
                                        act: str = "relu", loss_scale: float = 0.5, per_decade: float = PER_DECADE,
                                        max_samples: int | None = None, seed: int = 0, solver: str = "auto") -> float:
    """Predicted S(0, steps) of one MLP f = W_L σ(… σ(W_1 x)) of any depth (weights [n_l, n_{l−1}], one
    rate per layer, no biases, float64). `max_samples`: run on a fixed random subset of that many samples
    (`seed`), the cheap approximation of the module docstring; `per_decade`: phases per decade; `solver`:
    "eigh" (each phase's lazy fit from the kernel's eigendecomposition), "krylov" (from a Lanczos basis, the
    same fit), "auto" (Krylov when n·c > 128, where it is the faster one)."""
    require(x.dim() == 2 and y.dim() == 2 and len(weights) >= 2 and all(w.dim() == 2 for w in weights),
            "give one net: x [n, d], y [n, c], weights [W1 [n_1, d], …, W_L [c, n_{L−1}]] (at least two layers)")
    require(len(lrs) == len(weights), f"give one rate per layer: {len(weights)} layers, {len(lrs)} rates")
    fan_in = [x.shape[1]] + [w.shape[0] for w in weights[:-1]]  # each layer takes the previous one's output
    require(all(w.shape[1] == a for w, a in zip(weights, fan_in)) and weights[-1].shape[0] == y.shape[1],
            f"shapes do not chain: x {tuple(x.shape)}, weights {[tuple(w.shape) for w in weights]}, y {tuple(y.shape)}")
    require(steps >= 0 and per_decade >= 0, f"need steps ≥ 0 and per_decade ≥ 0 (got {steps}, {per_decade})")
    require(solver in SOLVERS, f"solver={solver!r}: pick one of {', '.join(SOLVERS)}")
    x, y = _subsample(x, y, max_samples, seed)
    now, t = list(weights), 0.0
    for end in _phase_ends(steps, per_decade):
        now, t = layers_step(x, y, now, lrs, end - t, act, loss_scale, solver), end
    return _kernel_distance(layers_ntk(x, weights, lrs, act), layers_ntk(x, now, lrs, act))


def relinearized_kernel_distance(x: Tensor, y: Tensor, W: Tensor, A: Tensor, steps: float, lr_w: float, lr_a: float,
                                 act: str = "relu", loss_scale: float = 0.5, per_decade: float = PER_DECADE,
                                 max_samples: int | None = None, seed: int = 0, solver: str = "auto") -> float:
    """Predicted S(0, steps) of one two-layer net (W [m, d], A [c, m], x [n, d], y [n, c], float64):
    lazy fits in log-spaced phases, `per_decade` of them per decade of time (module docstring);
    `per_decade=0` is one linearization over the whole horizon (the NTK's own prediction);
    `max_samples` runs it on a fixed random subset of the samples (the cheap approximation); `solver`: "eigh",
    "krylov" (a Lanczos basis instead of each phase's eigendecomposition: the same Ŝ, cheaper at large n·c)
    or "auto" (Krylov when n·c > 128)."""
    require(x.dim() == 2 and y.dim() == 2 and W.dim() == 2 and A.dim() == 2,
            "give one net: x [n, d], y [n, c], W [m, d], A [c, m]")
    require(W.shape[1] == x.shape[1] and A.shape[1] == W.shape[0] and A.shape[0] == y.shape[1],
            f"shapes do not chain: x {tuple(x.shape)}, W {tuple(W.shape)}, A {tuple(A.shape)}, y {tuple(y.shape)}")
    return relinearized_kernel_distance_layers(x, y, [W, A], [lr_w, lr_a], steps, act, loss_scale, per_decade,
                                               max_samples, seed, solver)

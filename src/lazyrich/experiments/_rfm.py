"""Recursive Feature Machines with a Mahalanobis Laplace kernel: NFA-RFM (AGOP update) and FACT-RFM.

Kernel K_M(x, z) = exp(−‖x − z‖_M / L), ‖v‖_M = √(vᵀMv). One RFM step: kernel ridge regression
(K + ρI)α = Y (Y one-hot, [n, c]), then a new M from the fitted predictor f(x) = Σ_j α_j K_M(x, x_j):
NFA-RFM uses the AGOP (1/n) Σ_i Σ_c ∇f_c(x_i)∇f_c(x_i)ᵀ (Radhakrishnan et al. 2024); FACT-RFM uses
(FACT FACTᵀ)^{1/2} (the plain update of Boix-Adserà et al., shared/theory/exact_solutions.md §7).
M is rescaled to trace d after every update, so M = I is the plain Laplace kernel of bandwidth L.

FACT of a kernel machine (derived here; no public FACT-RFM code was found). Write M = WᵀW: the
predictor sees x only through Wx, at the evaluation points and at the centres alike. Kernel ridge
minimises, over α, J(α, M) = ½‖Kα − Y‖² + (ρ/2) tr(αᵀKα) (n × the mean loss with μ = ρ/n); at the
minimiser the residual is Kα − Y = −ρα. Add weight decay (λ/2)‖W‖² and profile α out: by the envelope
theorem the W-gradient is 2W∇_M J at fixed α, so a critical point has W(2∇_M J + λI) = 0 and, left-
multiplying by Wᵀ,

    WᵀW = FACT := −(2/λ) M G,   G = ∇_M J = (ρ/4L) Σ_{i≠j} (ααᵀ)_ij (K_ij/D_ij) Δ_ij Δ_ijᵀ,

with Δ_ij = x_i − x_j, D_ij = ‖Δ_ij‖_M (dK_ij/dM = −K_ij Δ_ijΔ_ijᵀ/(2L D_ij) and ∂J/∂K_ij = −(ρ/2)(ααᵀ)_ij).
This is the FACT of observe/fact.py, −(1/λ) Σ_k (∇_{x_k} J) x_kᵀ, summed over every place W acts (each
training point as evaluation point and as centre); tests/experiments/test_fact_rfm.py checks the
closed form against that definition by autograd and checks WᵀW = FACT at a critical point found by
L-BFGS. λ is not identified once M is normalised (the scale of M is the bandwidth): the trace
constraint tr M = d has Lagrange multiplier λ = −2 tr(MG)/d, which is the λ used for the fixed-point
residual ‖M − sym FACT_λ‖/‖M‖ (T6.4 adapted to M).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


def _sqrtm(m: Tensor) -> Tensor:
    ev, vec = torch.linalg.eigh(m)
    return (vec * ev.clamp(min=0).sqrt()) @ vec.T


def distances(x: Tensor, z: Tensor, m: Tensor) -> Tensor:
    """‖x_i − z_j‖_M, [n, p], computed from differences (no ‖a‖² + ‖b‖² − 2aᵀb cancellation)."""
    s = _sqrtm(m)
    return torch.cdist(x @ s, z @ s, compute_mode="donot_use_mm_for_euclid_dist")


def laplace(x: Tensor, z: Tensor, m: Tensor, bandwidth: float) -> Tensor:
    """K_M(x_i, z_j) = exp(−‖x_i − z_j‖_M / L), [n, p]."""
    return torch.exp(-distances(x, z, m) / bandwidth)


def krr(k: Tensor, y: Tensor, ridge: float) -> Tensor:
    """α = (K + ρI)⁻¹ Y (Cholesky)."""
    chol = torch.linalg.cholesky(k + ridge * torch.eye(k.shape[0], dtype=k.dtype, device=k.device))
    return torch.cholesky_solve(y, chol)


def _weights(x: Tensor, m: Tensor, bandwidth: float) -> tuple[Tensor, Tensor]:
    """K and K/D on the training points; K/D is zeroed on the diagonal and at coincident points (D = 0,
    where K is not differentiable and the subgradient by symmetry is 0)."""
    d = distances(x, x, m)
    k = torch.exp(-d / bandwidth)
    kd = torch.where(d > 1e-12 * d.max(), k / d.clamp(min=1e-300), torch.zeros_like(d))
    return k, kd


def agop(x: Tensor, alpha: Tensor, m: Tensor, bandwidth: float, kd: Tensor | None = None) -> Tensor:
    """AGOP of f(x) = Σ_j α_j K_M(x, x_j) on the training points: (1/n) Σ_i Σ_c ∇f_c(x_i)∇f_c(x_i)ᵀ with
    ∇f_c(x_i) = −(1/L) M Σ_j α_jc (K_ij/D_ij)(x_i − x_j) (`kd`: K/D from `_weights`, recomputed if None)."""
    kd = _weights(x, m, bandwidth)[1] if kd is None else kd
    a = kd.unsqueeze(0) * alpha.T.unsqueeze(1)                                   # a[c, i, j] = α_jc K_ij/D_ij
    g = x.unsqueeze(0) * a.sum(2, keepdim=True) - a @ x                          # [c, n, d]: Σ_j a_cij (x_i − x_j)
    grad = -(g @ m) / bandwidth
    return torch.einsum("cid,cie->de", grad, grad) / x.shape[0]


def fact_gradient(x: Tensor, alpha: Tensor, m: Tensor, bandwidth: float, ridge: float, kd: Tensor | None = None) -> Tensor:
    """G = ∇_M J at the kernel-ridge α (module docstring), via Σ w_ij Δ_ijΔ_ijᵀ = 2Xᵀ(diag(w1) − w)X."""
    kd = _weights(x, m, bandwidth)[1] if kd is None else kd
    w = (alpha @ alpha.T) * kd
    s = 2 * (x.T * w.sum(1)) @ x - 2 * x.T @ w @ x
    return ridge / (4 * bandwidth) * s


def fact(x: Tensor, alpha: Tensor, m: Tensor, bandwidth: float, ridge: float, lam: float | None = None,
         kd: Tensor | None = None) -> Tensor:
    """FACT_λ = −(2/λ) M G; `lam=None` takes the trace multiplier λ = −2 tr(MG)/tr(M) (so tr FACT = tr M)."""
    mg = m @ fact_gradient(x, alpha, m, bandwidth, ridge, kd)
    lam = -2 * torch.trace(mg) / torch.trace(m) if lam is None else lam
    return -2 * mg / lam


def fixed_point_residual(m: Tensor, f: Tensor) -> tuple[float, float]:
    """(‖M − sym F‖/‖M‖, ‖F − Fᵀ‖/‖F‖)."""
    sym = (f + f.T) / 2
    return float(torch.linalg.matrix_norm(m - sym) / torch.linalg.matrix_norm(m)), \
        float(torch.linalg.matrix_norm(f - f.T) / torch.linalg.matrix_norm(f))


def _normalise(p: Tensor) -> Tensor:
    p = (p + p.T) / 2
    return p * p.shape[0] / torch.trace(p)


def update(method: str, x: Tensor, alpha: Tensor, m: Tensor, bandwidth: float, ridge: float,
           kd: Tensor | None = None) -> Tensor:
    """The next M (trace d): `nfa` AGOP, `fact` (FACT FACTᵀ)^{1/2}, `laplace` M unchanged."""
    if method == "laplace":
        return m
    if method == "nfa":
        return _normalise(agop(x, alpha, m, bandwidth, kd))
    if method == "fact":
        f = fact(x, alpha, m, bandwidth, ridge, lam=1.0, kd=kd)  # λ only scales; the normalisation removes it
        return _normalise(_sqrtm(f @ f.T))
    raise ValueError(f"unknown RFM method {method!r}")


@dataclass
class Trajectory:
    """One RFM run at fixed (L, ρ): validation/test accuracy and MSE at iterations t = 0..T (t = 0 is the
    plain Laplace kernel), and per t the FACT fixed-point residual, asymmetry and spectrum sign of M_t."""

    val_acc: list[float] = field(default_factory=list)
    val_mse: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    residual: list[float] = field(default_factory=list)
    asymmetry: list[float] = field(default_factory=list)
    step: list[float] = field(default_factory=list)  # ‖M_{t+1} − M_t‖/‖M_t‖
    eig_ratio: list[float] = field(default_factory=list)  # λ_min/λ_max of sym FACT_t (< 0: indefinite)
    m: Tensor | None = None


def run(method: str, split: dict[str, Tensor], bandwidth: float, ridge: float, iters: int) -> Trajectory:
    """Iterate KRR and the M update `iters` times; `split` holds x/y for train, val, test (y one-hot)."""
    xtr, ytr = split["x_train"], split["y_train"]
    m = torch.eye(xtr.shape[1], dtype=xtr.dtype, device=xtr.device)
    out = Trajectory()
    for t in range(iters + 1):
        k, kd = _weights(xtr, m, bandwidth)
        alpha = krr(k, ytr, ridge)
        f = fact(xtr, alpha, m, bandwidth, ridge, kd=kd)
        res, asym = fixed_point_residual(m, f)
        ev = torch.linalg.eigvalsh((f + f.T) / 2)
        out.eig_ratio.append(float(ev[0] / ev[-1]))
        out.residual.append(res)
        out.asymmetry.append(asym)
        for part in ("val", "test"):
            pred = laplace(split[f"x_{part}"], xtr, m, bandwidth) @ alpha
            acc = float((pred.argmax(1) == split[f"y_{part}"].argmax(1)).double().mean())
            if part == "val":
                out.val_acc.append(acc)
                out.val_mse.append(float((pred - split["y_val"]).pow(2).sum(1).mean()))
            else:
                out.test_acc.append(acc)
        if t < iters:
            new = update(method, xtr, alpha, m, bandwidth, ridge, kd)
            out.step.append(float(torch.linalg.matrix_norm(new - m) / torch.linalg.matrix_norm(m)))
            m = new
    out.m = m
    return out


def tabular(name: str, seed: int, cap: int | None = None, device: str = "cpu") -> dict[str, Tensor]:
    """scikit-learn's bundled `load_<name>` (ships offline): at most `cap` samples (stratified, fixed), a
    stratified 60/20/20 train/val/test split drawn with `seed`, inputs standardised with the training
    statistics, one-hot targets (float64)."""
    import numpy as np
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    if cap is not None and len(y) > cap:
        x, _, y, _ = train_test_split(x, y, train_size=cap, stratify=y, random_state=0)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    xtr, xva, ytr, yva = train_test_split(xtr, ytr, test_size=0.25, stratify=ytr, random_state=seed)
    mu, sd = xtr.mean(0), xtr.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    eye = np.eye(int(y.max()) + 1)
    out = {}
    for part, (a, b) in {"train": (xtr, ytr), "val": (xva, yva), "test": (xte, yte)}.items():
        out[f"x_{part}"] = torch.tensor((a - mu) / sd, dtype=torch.float64, device=device)
        out[f"y_{part}"] = torch.tensor(eye[b], dtype=torch.float64, device=device)
    return out


def compare(split: dict[str, Tensor], scales: list[float], ridges: list[float], iters: int) -> dict[str, dict]:
    """Laplace, NFA-RFM and FACT-RFM tuned the same way: bandwidth L = s·√d for s in `scales`, ridge ρ in
    `ridges`; RFM methods also pick the iteration t ∈ 1..`iters` (Laplace is t = 0, shared by both paths).
    Selection by validation accuracy, ties by validation MSE. Per method: the test accuracy and choice,
    and for FACT-RFM the fixed-point residual/asymmetry at t = `iters` and the last relative step of M."""
    d = split["x_train"].shape[1]
    cands: dict[str, list] = {"laplace": [], "nfa": [], "fact": []}
    for s in scales:
        for ridge in ridges:
            for method in ("nfa", "fact"):
                p = run(method, split, s * d ** 0.5, ridge, iters)
                info = dict(scale=s, ridge=ridge, residual=p.residual[-1], asymmetry=p.asymmetry[-1],
                            step=p.step[-1] if p.step else 0.0, path=p)
                ts = range(1, iters + 1)
                cands[method] += [((p.val_acc[t], -p.val_mse[t]), dict(info, t=t, test_acc=p.test_acc[t])) for t in ts]
                if method == "fact":
                    cands["laplace"].append(((p.val_acc[0], -p.val_mse[0]), dict(info, t=0, test_acc=p.test_acc[0])))
    return {k: max(v, key=lambda c: c[0])[1] for k, v in cands.items()}

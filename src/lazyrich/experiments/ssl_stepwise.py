"""ssl-stepwise: self-supervised learning learns its embedding one dimension at a time (arXiv 2303.15438).

Data: scikit-learn's 8×8 digits (ships offline), two augmented views of each image (a random shift by
≤ 1 pixel, wrap-around, plus Gaussian pixel noise), centred. Three models, seeds as one batched computation:
1. the linear model f = Wx under Barlow Twins ‖WΓWᵀ − I‖² (theory/ssl.py): GD with a small step against the
   exact logistic solution (aligned init) and against the Gram–Schmidt prediction (random small init);
2. a two-layer ReLU net f = W₂ relu(W₁x), W₁ at the standard init and the readout W₂ small (the paper's
   small-init regime; at init the net is the random-feature kernel machine φ(x) = relu(W₁x)), both layers
   trained by GD under Barlow Twins (C of the centred embeddings, λ = 1) — prediction: the linear theory
   with Γ_φ of the init features;
3. the same net under VICReg (invariance + variance hinge + covariance).
The staircase is read from the eigenvalues of C (Barlow Twins) or of the embedding covariance (VICReg):
a *plateau with j modes* is a recorded time where exactly j eigenvalues exceed ½ and the others are below
0.2; the staircase has d steps when plateaus with 1, 2, …, d modes all occur. Control: a large readout init.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..theory import ssl
from .base import Context, over_seeds, reproduction

SOURCE = "Simon et al. 2023, 'On the stepwise nature of self-supervised learning', arXiv 2303.15438 (§3–5); theory/ssl.py"
QUICK = dict(n=200, d=4, shift=1, noise=0.1, data_seed=0, seeds=[0, 1, 2, 3],
             linear=dict(scale=1e-6, lr=0.005, T=40.0, every=20),
             net=dict(h=256, scale=1e-6, lr=0.05, T=14.0, every=2),
             vicreg=dict(lr=0.01, T=8.0, every=5, inv=5.0, var=25.0, cov=1.0),
             control_scale=0.2)
# full: more seeds on the same pairs. (n = 400 pairs give γ₃/γ₄ = 1.03: steps 3 and 4 merge and the separated-mode
# prediction fails — measured, docs/theory/ssl.md.)
FULL = dict(QUICK, seeds=list(range(16)), net=dict(QUICK["net"], T=20.0))  # T = 14 ends before step 4 in 2 of 16 seeds
HIGH, LOW = 0.5, 0.2  # a mode is learned above ½ and unlearned below 0.2 (plateau definition)


def digit_pairs(n: int, shift: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two augmented views [n, 64] of n digits (pixels ÷ 16), centred by the mean over both views."""
    from sklearn.datasets import load_digits

    x = load_digits().data / 16.0
    rng = np.random.default_rng(seed)
    base = x[rng.choice(len(x), n, replace=False)].reshape(n, 8, 8)

    def view() -> np.ndarray:
        out = np.empty_like(base)
        for i, (dx, dy) in enumerate(rng.integers(-shift, shift + 1, (n, 2))):
            out[i] = np.roll(base[i], (dx, dy), (0, 1))
        return out.reshape(n, 64) + noise * rng.normal(size=(n, 64))

    a, b = view(), view()
    mu = np.concatenate([a, b]).mean(0)
    return a - mu, b - mu


def plateaus(ev: np.ndarray) -> int:
    """Number of j ∈ 1..d with a recorded time where exactly j eigenvalues (of [T, d]) exceed ½, the rest < 0.2."""
    hi, lo = (ev > HIGH).sum(1), (ev < LOW).sum(1)
    d = ev.shape[1]
    return sum(bool(np.any((hi == j) & (lo == d - j))) for j in range(1, d + 1))


def crossings(t: np.ndarray, ev: np.ndarray) -> np.ndarray:
    """First time each eigenvalue (descending, [T, d]) exceeds ½ (NaN if never)."""
    return np.array([t[np.argmax(ev[:, j] > HIGH)] if (ev[:, j] > HIGH).any() else np.nan for j in range(ev.shape[1])])


def linear_runs(G: np.ndarray, cfg: dict, d: int, seeds: list[int], aligned: bool = False) -> dict:
    """GD on ‖WΓWᵀ − I‖² for all seeds at once ([S, d, m]); eigenvalues of C every `every` steps."""
    c = cfg
    g, V = ssl.modes(G)
    m = G.shape[0]
    W0 = np.stack([c["scale"] * np.random.default_rng(1000 + s).normal(size=(d, m)) for s in seeds])
    if aligned:  # W(0) = U diag(s₀) V_dᵀ: c_j(0) = γ_j s₀² = scale² d m γ_j (same order as a random init)
        U, _ = np.linalg.qr(np.random.default_rng(7).normal(size=(d, d)))
        W0 = np.stack([U @ np.diag(np.full(d, c["scale"] * np.sqrt(d * m))) @ V[:, :d].T for _ in seeds])
    W, Gt, eye = torch.tensor(W0), torch.tensor(G), torch.eye(d, dtype=torch.float64)
    steps = int(round(c["T"] / c["lr"]))
    t, ev = [], []
    for k in range(steps + 1):
        C = W @ Gt @ W.transpose(1, 2)
        if k % c["every"] == 0 or k == steps:
            t.append(k * c["lr"])
            ev.append(torch.linalg.eigvalsh(C).flip(-1).numpy())
        if k == steps:
            break
        W = W - c["lr"] * 4 * (C - eye) @ W @ Gt
    return dict(t=np.array(t), ev=np.array(ev), W0=W0, W=W.numpy(), g=g, V=V)


def net_runs(a: np.ndarray, b: np.ndarray, cfg: dict, d: int, seeds: list[int], loss: str, scale: float,
             vic: dict | None = None) -> dict:
    """Two-layer ReLU nets (one per seed, batched) trained by full-batch GD on Barlow Twins or VICReg."""
    c = cfg if vic is None else dict(cfg, **vic)
    h, n = cfg["h"], len(a)
    W1 = np.stack([np.random.default_rng(2000 + s).normal(size=(h, 64)) * np.sqrt(2 / 64) for s in seeds])
    W2 = np.stack([scale * np.random.default_rng(3000 + s).normal(size=(d, h)) for s in seeds])
    A, B = torch.tensor(a), torch.tensor(b)
    p1, p2 = torch.tensor(W1).requires_grad_(True), torch.tensor(W2).requires_grad_(True)
    eye = torch.eye(d, dtype=torch.float64)
    steps = int(round(c["T"] / c["lr"]))
    t, ev = [], []
    for k in range(steps + 1):
        za = torch.relu(A @ p1.transpose(1, 2)) @ p2.transpose(1, 2)
        zb = torch.relu(B @ p1.transpose(1, 2)) @ p2.transpose(1, 2)
        mu = (za.sum(1) + zb.sum(1)) / (2 * n)
        za, zb = za - mu[:, None], zb - mu[:, None]
        if loss == "barlow":
            M = (za.transpose(1, 2) @ zb + zb.transpose(1, 2) @ za) / (2 * n)
            L = ((M - eye) ** 2).sum((1, 2))
        else:  # VICReg (Bardes et al.): invariance + hinge on each coordinate's std + off-diagonal covariance
            z = torch.cat([za, zb], 1)
            M = z.transpose(1, 2) @ z / (2 * n)
            var = torch.diagonal(M, dim1=1, dim2=2)
            L = (c["inv"] * (za - zb).pow(2).sum(2).mean(1) + c["var"] * torch.relu(1 - torch.sqrt(var + 1e-4)).sum(1)
                 + c["cov"] * (M.pow(2).sum((1, 2)) - var.pow(2).sum(1)))
        if k % c["every"] == 0 or k == steps:
            t.append(k * c["lr"])
            Md = M.detach()
            ok = torch.isfinite(Md).all((1, 2))  # a diverged member reads NaN, the others go on
            e = torch.linalg.eigvalsh(torch.where(ok[:, None, None], Md, eye)).flip(-1)
            ev.append(torch.where(ok[:, None], e, torch.full_like(e, float("nan"))).numpy())
        if k == steps:
            break
        g1, g2 = torch.autograd.grad(L.sum(), [p1, p2])
        with torch.no_grad():
            p1 -= c["lr"] * g1
            p2 -= c["lr"] * g2
    return dict(t=np.array(t), ev=np.array(ev), W1=W1, W2=W2)


def net_prediction(a: np.ndarray, b: np.ndarray, run: dict, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Random-feature prediction per seed: eigenvalue curves [S, T, d] and half-times [S, d] from Γ_φ at init."""
    curves, times = [], []
    for W1, W2 in zip(run["W1"], run["W2"]):
        pa, pb = np.maximum(a @ W1.T, 0), np.maximum(b @ W1.T, 0)
        mu = np.concatenate([pa, pb]).mean(0)
        p = ssl.ssl_prediction(run["t"], W2, ssl.contrastive_matrix(pa - mu, pb - mu), d)
        curves.append(p["eigenvalues"])
        times.append(p["step_times"])
    return np.array(curves), np.array(times)


def net_claims(bt: dict, pred_times: np.ndarray, d: int, prefix: str = "") -> list:
    S = bt["ev"].shape[1]
    counts = [plateaus(bt["ev"][:, s]) for s in range(S)]
    err = [float(np.nanmax(np.abs(crossings(bt["t"], bt["ev"][:, s]) / pred_times[s] - 1)))
           if not np.isnan(crossings(bt["t"], bt["ev"][:, s])).any() else np.inf for s in range(S)]
    return [over_seeds(f"{prefix}net-barlow-steps", f"ReLU net, Barlow Twins from a small readout init: plateaus with 1, 2, "
                       f"…, d = {d} learned modes all occur (mean count over seeds = d, tolerance ½)", SOURCE, "paper",
                       counts, d, 0.5),
            over_seeds(f"{prefix}net-barlow-step-times", "ReLU net, Barlow Twins: step times (eigenvalue of C crosses ½) vs "
                       "the linear theory on the init's random features relu(W₁x): per-seed max_j |t/t_pred − 1| ≤ 0.2 "
                       "(threshold inferred: the hidden layer also trains)", SOURCE, "inferred",
                       np.minimum(err, 10.0), 0.0, 0.2, "at_most")]


@reproduction("ssl-stepwise", "Stepwise SSL: linear Barlow Twins vs its exact solution; the eigenvalue staircase in ReLU nets "
              "under Barlow Twins and VICReg on augmented digits; large init removes the steps",
              quick=QUICK, full=FULL, runtime={"quick": "16 s CPU time, 1 thread (42–104 s wall at load 7–14 on a 2-core CPU)", "full": "149 s at load ≈ 10 on a 2-core CPU (1 thread)"},
              source=SOURCE, knobs={"net.scale": [1e-4, 1e-2], "seeds": [list(range(8))]},
              decisive=["linear-random-trajectory", "net-barlow-steps", "net-barlow-step-times", "net-vicreg-steps"])
def run(ctx: Context) -> None:
    cfg, d = ctx.cfg, ctx.cfg["d"]
    a, b = digit_pairs(cfg["n"], cfg["shift"], cfg["noise"], cfg["data_seed"])
    G = ssl.contrastive_matrix(a, b)
    lin_a = linear_runs(G, cfg["linear"], d, cfg["seeds"][:1], aligned=True)
    g = lin_a["g"]
    c0 = g[:d] * cfg["linear"]["scale"] ** 2 * d * G.shape[0]
    exact = ssl.eigenvalue_trajectory(lin_a["t"], g[:d], c0)
    tol_a = 0.03
    ctx.claim("linear-aligned", f"linear Barlow Twins, aligned init: GD (η = {cfg['linear']['lr']:g}) eigenvalues of C vs the "
              f"exact logistic c_j(t) (theory/ssl.py): max over t, j of |Δc| ≤ {tol_a} (first order in η)", SOURCE, "derived",
              float(np.abs(np.sort(exact, 1)[:, ::-1] - lin_a["ev"][:, 0]).max()), 0.0, tol_a)
    lin = linear_runs(G, cfg["linear"], d, cfg["seeds"])
    preds = [ssl.ssl_prediction(lin["t"], lin["W0"][s], G, d) for s in range(len(cfg["seeds"]))]
    traj_err = [float(np.abs(lin["ev"][:, s] - p["eigenvalues"]).max()) for s, p in enumerate(preds)]
    ctx.over_seeds("linear-random-trajectory", "linear Barlow Twins, random small init: GD eigenvalues of C vs the Gram–Schmidt "
                   "logistic prediction: per-seed max |Δc| ≤ 0.05", SOURCE, "derived", traj_err, 0.0, 0.05, "at_most")
    order = []
    for s, p in enumerate(preds):
        tc = crossings(lin["t"], lin["ev"][:, s])
        order.append(float(np.all(np.diff(tc) > 0) and np.all(np.abs(tc / p["step_times"] - 1) < 0.05)))
    ctx.over_seeds("linear-step-order", "linear model: the d modes are learned one at a time in decreasing γ_j, each at its "
                   "predicted half-time within 5 % (share of seeds = 1)", SOURCE, "paper", order, 1.0, 0.0, "at_least")
    final = ssl.final_representation(G, d)
    fin_err = [float(np.linalg.norm(W.T @ W - final) / np.linalg.norm(final)) for W in lin["W"]]
    ctx.over_seeds("linear-final-kpca", "linear model: final WᵀW = Σ_{j≤d} γ_j⁻¹ v_j v_jᵀ (the closed-form / kernel-PCA "
                   "representation): relative Frobenius error ≤ 0.05", SOURCE, "paper", fin_err, 0.0, 0.05, "at_most")
    net = cfg["net"]
    bt = net_runs(a, b, net, d, cfg["seeds"], "barlow", net["scale"])
    curves, pred_times = net_prediction(a, b, bt, d)
    for c in net_claims(bt, pred_times, d):
        ctx.add(c)
    vic = net_runs(a, b, net, d, cfg["seeds"], "vicreg", net["scale"], cfg["vicreg"])
    ctx.over_seeds("net-vicreg-steps", f"ReLU net, VICReg from a small readout init: plateaus with 1, …, d = {d} modes all occur "
                   "in the embedding covariance (mean count over seeds = d, tolerance ½)", SOURCE, "paper",
                   [plateaus(vic["ev"][:, s]) for s in range(len(cfg["seeds"]))], d, 0.5)
    big = net_runs(a, b, net, d, cfg["seeds"], "barlow", cfg["control_scale"])
    ctx.control("control-large-init", f"readout init {cfg['control_scale']:g} instead of {net['scale']:g} (same W₁, same "
                "prediction): the Barlow Twins staircase claims must fail", SOURCE, net_claims(big, pred_times, d, prefix="large-init-"))
    ctx.note(f"Γ of the digit pairs: top eigenvalues {', '.join(f'{v:.3g}' for v in g[:d + 1])}; measured BT step times "
             f"(seed 0) {', '.join(f'{v:.2f}' for v in crossings(bt['t'], bt['ev'][:, 0]))} vs random-feature prediction "
             f"{', '.join(f'{v:.2f}' for v in pred_times[0])}.")
    _figure(ctx, lin, preds, bt, curves, vic, big)


def _figure(ctx: Context, lin: dict, preds: list, bt: dict, curves: np.ndarray, vic: dict, big: dict) -> None:
    fig, ax = plt.subplots(1, 4, figsize=(17, 3.6))
    d = lin["ev"].shape[2]
    colors = plt.cm.viridis(np.linspace(0, 0.85, d))
    for j in range(d):
        ax[0].plot(lin["t"], lin["ev"][:, 0, j], color=colors[j], lw=1.5)
        ax[0].plot(lin["t"], preds[0]["eigenvalues"][:, j], "k--", lw=0.8)
        ax[1].plot(bt["t"], bt["ev"][:, 0, j], color=colors[j], lw=1.5)
        ax[1].plot(bt["t"], curves[0][:, j], "k--", lw=0.8)
        ax[2].plot(vic["t"], vic["ev"][:, 0, j], color=colors[j], lw=1.5)
        ax[3].plot(big["t"], big["ev"][:, 0, j], color=colors[j], lw=1.5)
    titles = ["linear model: GD (colour) vs theory (dashed)", "ReLU net, Barlow Twins vs random-feature theory",
              "ReLU net, VICReg (covariance eigenvalues)", f"control: large init {ctx.cfg['control_scale']:g}"]
    for a_, title in zip(ax, titles):
        a_.set_title(title, fontsize=8)
        a_.set_xlabel("t = kη")
        a_.axhline(HIGH, color="grey", lw=0.5, ls=":")
    ax[0].set_ylabel("eigenvalues of C")
    fig.tight_layout()
    ctx.figure(fig, "staircase", "Eigenvalues of the embedding cross-correlation C (seed 0) against time: the linear model "
               "under GD (colours) with the Gram–Schmidt logistic prediction (black dashed), a two-layer ReLU net under "
               "Barlow Twins with the linear theory on its init random features (dashed), the same net under VICReg, and "
               "the large-init control (no staircase).")

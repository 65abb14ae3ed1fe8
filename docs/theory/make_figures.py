"""Figures of prediction (lines) over simulation (markers) for every page in docs/theory/.

Run: python docs/theory/make_figures.py  (writes docs/theory/figures/*.png; about a minute on one core).
Every simulation is the core engine (`lazyrich.flow` / `lazyrich.train`) in float64.
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from lazyrich import MLP, build, flow, train  # noqa: E402
from lazyrich.observe import Data  # noqa: E402
from lazyrich.param.init import kunin_scales  # noqa: E402
from lazyrich.tasks import teacher_student, whitened_regression  # noqa: E402
from lazyrich.theory import (agf, decoupled_init, lambda_balanced, linear_agf, linear_inputs, mechanism_case,  # noqa: E402
                             one_d, one_d_inputs, predict_balance, predict_regime, predict_regime_on_data, saxe, saxe_inputs,
                             single_neuron, single_neuron_inputs, toy_sharpness)
from lazyrich.theory.checks import regression_moments  # noqa: E402

OUT = Path(__file__).parent / "figures"
torch.set_num_threads(1)


def _ens(widths, params, rates=None, activation="linear", base_lr=1.0):
    E = next(iter(params.values())).shape[0]
    ens = build(MLP(widths, activation), pd.DataFrame({"i": range(E)}), scheme="sp", lr=base_lr)
    ens = ens.with_params({k: torch.tensor(np.asarray(v), dtype=torch.float64) for k, v in params.items()})
    for k in ens.lr:
        ens.lr[k] = base_lr * torch.tensor((rates or {}).get(k, [1.0] * E), dtype=torch.float64)
        ens.multipliers[k] = torch.ones(E, dtype=torch.float64)
    return ens


def _series(recs, obs, member=0, layer=None):
    r = recs[(recs.observable == obs) & (recs.member == member)]
    if layer is not None:
        r = r[r.layer == layer]
    r = r.sort_values(["step", "index"])
    return r.value.to_numpy().reshape(r.step.nunique(), -1)


def single_neuron_fig() -> None:
    deltas = [-2.0, 0.0, 2.0]
    a0 = [np.sqrt((d + np.sqrt(d * d + 4)) / 2) for d in deltas]
    data = Data(torch.tensor(np.sqrt(2) * np.eye(2)), torch.tensor([[0.0], [np.sqrt(2)]]))
    ens = _ens((2, 1, 1), {"W1": np.array([[[-1 / a, 0.0]] for a in a0]), "W2": np.array([[[a]] for a in a0])})
    t_sim, t = np.linspace(0, 12, 25), np.linspace(0, 12, 241)
    run = flow(ens, data, t_sim, observers=("single_neuron", "kernel_distance"), rtol=1e-10, atol=1e-12)
    recs = run.records()
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    for e, d in enumerate(deltas):
        pred = single_neuron(t, **single_neuron_inputs(ens, data, e))
        for k, obs in enumerate(("mu", "phi", "kernel_distance")):
            line, = ax[k].plot(t, pred[obs], label=f"δ = {d:g}")
            ax[k].plot(t_sim, _series(recs, obs, e)[:, 0], "o", ms=3, color=line.get_color())
    for k, name in enumerate(("μ = a||w||", "φ = cos∠(w, β*)", "S(0, t)")):
        ax[k].set(xlabel="t", title=name)
    ax[0].legend()
    fig.suptitle("Single neuron (Kunin et al. Fig. 3 setup): closed form (lines) vs lazyrich.flow (dots)")
    fig.tight_layout()
    fig.savefig(OUT / "single_neuron.png", dpi=110)


def wide_linear_fig() -> None:
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    t_sim, t = np.linspace(0, 6, 13), np.linspace(0, 6, 121)
    for lam in (-2.0, 0.0, 2.0):
        data = whitened_regression(3, 3, n=9, seed=1)
        ens = build(MLP((3, 3, 3), "linear"), [{"seed": 3, "lam": lam}], scheme="sp", init="lambda_balanced", std_scale=0.05)
        run = flow(ens, data, t_sim, observers=("loss", "linear_map"), rtol=1e-10, atol=1e-12)
        pred = lambda_balanced(t, **linear_inputs(ens, data))
        line, = ax[0].plot(t, pred["loss"], label=f"λ = {lam:g}")
        ax[0].plot(t_sim, _series(run.records(), "loss")[:, 0], "o", ms=3, color=line.get_color())
        og = pred["output_gram"].reshape(-1, 3, 3)
        ax[1].plot(t, np.trace(og, axis1=1, axis2=2), color=line.get_color())
        sim = _series(run.records(), "output_gram", layer="W2").reshape(-1, 3, 3)
        ax[1].plot(t_sim, np.trace(sim, axis1=1, axis2=2), "o", ms=3, color=line.get_color())
    ax[0].set(xlabel="t", ylabel="loss", yscale="log", title="loss")
    ax[1].set(xlabel="t", title="tr W2W2ᵀ (output representation)")
    ax[0].legend()
    fig.suptitle("λ-balanced two-layer linear net (Dominé et al.): exact QQᵀ solution vs lazyrich.flow")
    fig.tight_layout()
    fig.savefig(OUT / "wide_linear.png", dpi=110)


def saxe_fig() -> None:
    rng = np.random.default_rng(0)
    s = np.array([3.0, 2.0, 1.0, 0.5])
    U, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    V, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    sigma = U @ np.diag(s) @ V[:, :4].T
    x = np.sqrt(12) * np.linalg.qr(rng.normal(size=(12, 6)))[0]
    data = Data(torch.tensor(x), torch.tensor(x @ sigma.T))
    W1, W2 = decoupled_init(sigma, 5, 1e-3)
    ens = _ens((6, 5, 4), {"W1": W1[None], "W2": W2[None]}, base_lr=0.02)
    run = train(ens, data, 500, record=list(range(0, 501, 10)), observers=("linear_map",))
    recs = run.records()
    t = np.linspace(0, 10, 201)
    pred = saxe(t, **saxe_inputs(ens, data))
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    sim = _series(recs, "mode_strength")
    for k in range(4):
        line, = ax.plot(t, pred["mode_strength"][:, k], label=f"s = {s[k]:g}")
        ax.plot(np.unique(recs.time), sim[:, k], "o", ms=3, color=line.get_color())
    ax.set(xlabel="t = kη", ylabel="mode strength u", title="Saxe et al. modes: closed form vs GD (η = 0.02)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "saxe.png", dpi=110)


def one_d_fig() -> None:
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    t_sim, t = np.linspace(0, 12, 25), np.linspace(0, 12, 241)
    for name in ("alignment", "disalignment", "rescaling", "kernel"):
        c = mechanism_case(name, h=16, seed=1)
        rng = np.random.default_rng(0)
        z = rng.normal(size=9)
        z /= np.sqrt(np.mean(z * z))
        data = Data(torch.tensor(z[:, None]), torch.tensor(c["y_star"] * z[:, None]))
        ens = _ens((1, 16, 1), {"W1": c["w0"][None, :, None], "W2": c["u0"][None, None, :]})
        run = flow(ens, data, t_sim, observers=("balance", "ntk_ratio"), rtol=1e-10, atol=1e-12)
        pred = one_d(t, **one_d_inputs(ens, data))
        line, = ax[0].plot(t, pred["zeta"], label=name)
        ax[0].plot(t_sim, _series(run.records(), "zeta")[:, 0], "o", ms=3, color=line.get_color())
        ax[1].plot(t, pred["ntk_ratio"], color=line.get_color())
        ax[1].plot(t_sim, _series(run.records(), "ntk_ratio")[:, 0], "o", ms=3, color=line.get_color())
    ax[0].set(xlabel="t", title="inter-layer alignment ζ = cos∠(u, w)")
    ax[1].set(xlabel="t", yscale="log", title="NTK ratio Θ(t)/Θ(0)")
    ax[0].legend()
    fig.suptitle("1-D-data two-layer linear net: the three mechanisms and the kernel case, exact vs flow")
    fig.tight_layout()
    fig.savefig(OUT / "one_d.png", dpi=110)


def agf_fig() -> None:
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    rng = np.random.default_rng(0)
    s = np.array([3.0, 1.5, 0.75, 0.375])
    U, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    V, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    X = np.sqrt(40) * np.linalg.qr(rng.normal(size=(40, 5)))[0]
    Y = X @ (U @ np.diag(s) @ V[:, :4].T).T
    alpha = 1e-12
    W1, W2 = alpha * rng.normal(size=(6, 5)) / np.sqrt(5), alpha * rng.normal(size=(4, 6)) / 2
    run = train(_ens((5, 6, 4), {"W1": W1[None], "W2": W2[None]}, base_lr=0.02), Data(torch.tensor(X), torch.tensor(Y)),
                4000, record=list(range(0, 4001, 8)), observers=("loss",))
    sig, half = regression_moments(X, Y)
    pred = linear_agf(sig, 2 * half, np.sqrt(2) * alpha)
    t = np.unique(run.records().time)
    ax[0].plot(t, _series(run.records(), "loss")[:, 0], label="GD")
    ax[0].plot(t, pred.trajectory(t)["loss"], "--", label="AGF (closed form)")
    ax[0].set(xlabel="t", yscale="log", title="linear net, s = (3, 1.5, 0.75, 0.375)")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    Y = (2 * np.maximum(X[:, 0], 0) - np.maximum(X[:, 1], 0))[:, None]
    W1, W2 = 1e-10 * rng.normal(size=(10, 3)) / np.sqrt(3), 1e-10 * rng.normal(size=(1, 10))
    pr = agf(X, Y, W1, W2, "relu", t_max=150)
    run = train(_ens((3, 10, 1), {"W1": W1[None], "W2": W2[None]}, activation="relu", base_lr=0.05),
                Data(torch.tensor(X), torch.tensor(Y)), 2000, record=list(range(0, 2001, 4)), observers=("loss",))
    t = np.unique(run.records().time)
    ax[1].plot(t, _series(run.records(), "loss")[:, 0], label="GD")
    ax[1].plot(t, pr.trajectory(t)["loss"], "--", label="AGF (generic)")
    ax[1].set(xlabel="t", yscale="log", title="ReLU net, teacher 2·relu(x₁) − relu(x₂)")
    for a in ax:
        a.set_ylim(1e-6, None)
        a.legend()
    fig.suptitle("Alternating Gradient Flows: predicted staircase vs GD from small init")
    fig.tight_layout()
    fig.savefig(OUT / "agf.png", dpi=110)


def balance_fig() -> None:
    d, c = 30, 10
    widths = [64, 256, 1024, 4096]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    for scheme in ("sp", "ntp", "mup"):
        lam_p, op_p, lam_m, op_m = [], [], [], []
        for w in widths:
            p = predict_balance((d, w, c), scheme)[0]
            ens = build(MLP((d, w, c), "linear"), [{"seed": s} for s in range(3)], scheme=scheme, lr=1.0)
            A, W, ea, ew = ens.params["W2"].numpy(), ens.params["W1"].numpy(), ens.lr["W2"].numpy(), ens.lr["W1"].numpy()
            lams, ops = [], []
            for e in range(3):
                G = np.vstack([A[e], W[e].T])  # nonzero spectrum of Q = spectrum of J·G Gᵀ
                J = np.r_[np.full(c, 1 / ea[e]), np.full(d, -1 / ew[e])]
                ops.append(np.abs(np.linalg.eigvals((J[:, None] * G) @ G.T)).max())
                lams.append(((A[e] ** 2).sum() / ea[e] - (W[e] ** 2).sum() / ew[e]) / w)
            lam_p.append(abs(p.lam))
            op_p.append(p.q_op)
            lam_m.append(abs(np.mean(lams)))
            op_m.append(np.mean(ops))
        line, = ax[0].plot(widths, lam_p, label=scheme)
        ax[0].plot(widths, lam_m, "o", color=line.get_color())
        ax[1].plot(widths, op_p, color=line.get_color(), label=scheme)
        ax[1].plot(widths, op_m, "o", color=line.get_color())
    ax[0].set(xscale="log", yscale="log", xlabel="width", title="|λ| = |tr Q|/width")
    ax[1].set(xscale="log", yscale="log", xlabel="width", title="||Q||_op")
    ax[0].legend()
    fig.suptitle("Balance at init (d = 30, c = 10): prediction (lines) vs sampled inits (dots)")
    fig.tight_layout()
    fig.savefig(OUT / "balance.png", dpi=110)


def atanasov_fig() -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    y = 1.5
    for depth in (2, 3):
        gammas = np.logspace(1, 3, 5)
        meas = []
        for g in gammas:
            ens = _ens((1,) * (depth + 1), {f"W{l}": np.full((1, 1, 1), 0.3 * (g * y) ** (1 / depth)) for l in range(1, depth + 1)},
                       {f"W{l}": [g ** (2 / depth)] for l in range(1, depth + 1)})
            ens.multipliers[f"W{depth}"] = torch.tensor([1 / g], dtype=torch.float64)
            run = flow(ens, Data(torch.ones(1, 1, dtype=torch.float64), torch.full((1, 1), y, dtype=torch.float64)),
                       [0.0, 15.0], observers=("loss",), rtol=1e-12, atol=1e-14)
            w = torch.tensor([float(run.ens.params[f"W{l}"]) for l in range(1, depth + 1)], dtype=torch.float64)
            H = torch.autograd.functional.hessian(lambda v: 0.5 * (torch.prod(v) / g - y) ** 2, w)
            meas.append(float(torch.linalg.eigvalsh(H)[-1]))
        grid = np.logspace(1, 3, 50)
        line, = ax.plot(grid, [toy_sharpness(g, depth, y) for g in grid], label=f"L = {depth}: L y^(2(L−1)/L) γ^(−2/L)")
        ax.plot(gammas, meas, "o", color=line.get_color())
    ax.set(xscale="log", yscale="log", xlabel="γ", ylabel="sharpness at convergence",
           title="Toy deep linear model: η* = 2/λ_max ∝ γ^{2/L}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "atanasov.png", dpi=110)


def _regime_grid(ax, d, m, n, k, taus, steps, lr, loss_scale, title) -> None:
    """Kunin's symmetric student on a τ×δ grid: measured S(0,T) (colour), predicted regimes (text)."""
    data = teacher_student(d=d, k=k, n=n, n_test=10, seed=0)
    deltas = np.linspace(-1, 1, 5)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(m // 2, d, generator=g, dtype=torch.float64)
    w = torch.cat([w, w]) / w.norm(dim=1).repeat(2)[:, None]
    a = torch.sign(torch.randn(m // 2, generator=g, dtype=torch.float64))
    a = torch.cat([a, -a])
    tau, delta = (torch.tensor(v, dtype=torch.float64).reshape(-1) for v in np.meshgrid(taus, deltas, indexing="ij"))
    a_norm, w_norm = kunin_scales(tau, delta)
    kappa = torch.sqrt(delta**2 + 4 * tau**4)
    rows = [{"tau": float(t), "delta": float(dl), "lr": lr(float(t), float(kap))} for t, dl, kap in zip(tau, delta, kappa)]
    W1, W2 = w * w_norm[:, None, None], (a * a_norm[:, None])[:, None, :]
    ens = build(MLP((d, m, 1), "relu"), rows, scheme="sp", loss_scale=loss_scale)
    ens = ens.with_params({"W1": W1, "W2": W2})
    for key in ens.lr:
        ens.lr[key] = ens.base_lr.clone()
        ens.multipliers[key] = torch.ones(len(rows), dtype=torch.float64)
    run = train(ens, data, steps, record=[0, steps], observers=("kernel_distance",), kernel="fused")
    S = run.final("kernel_distance")["kernel_distance"].sort_index().to_numpy().reshape(5, 5)
    ys, xs = float(data.y.pow(2).sum(1).mean().sqrt()), float(data.x.pow(2).sum(1).mean().sqrt())
    im = ax.imshow(S, origin="lower", cmap="viridis", vmin=0, vmax=0.5)
    for i, tau in enumerate(taus):
        for j, dl in enumerate(deltas):
            e = i * 5 + j
            cfg = predict_regime((d, m, 1), tau, dl, ys, xs).regime
            on = predict_regime_on_data(data.x, data.y, W1[e], W2[e], steps, rows[e]["lr"], rows[e]["lr"], "relu", loss_scale)
            ax.text(j, i, f"{cfg}\n{on.regime}\nS={S[i, j]:.2f} Ŝ={on.kernel_distance:.2f}", ha="center", va="center",
                    fontsize=6, color="white" if S[i, j] < 0.25 else "black")
    ax.set_xticks(range(5), [f"{x:g}" for x in deltas])
    ax.set_yticks(range(5), [f"{x:.3g}" for x in taus])
    ax.set(xlabel="δ", ylabel="τ", title=title)
    plt.colorbar(im, ax=ax, fraction=0.046)


def regime_fig() -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    _regime_grid(axes[0], 5, 20, 50, 1, np.logspace(-2, 0.5, 5), 8000, lambda t, k: 0.01 / max(k, 0.1), 0.5,
                 "one teacher neuron, d = 5")
    _regime_grid(axes[1], 20, 20, 200, 3, np.logspace(-1, 0.3, 5), 10_000, lambda t, k: 5e-3 / t**2, 1.0,
                 "Kunin's 3-neuron teacher, paper's τ range and lr, d = 20")
    fig.suptitle("measured S(0,T) (colour); text: configuration-only regime, regime with data and horizon, S, Ŝ",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(OUT / "regime.png", dpi=110)


FIGURES = {"single_neuron": single_neuron_fig, "wide_linear": wide_linear_fig, "saxe": saxe_fig, "one_d": one_d_fig,
           "agf": agf_fig, "balance": balance_fig, "atanasov": atanasov_fig, "regime": regime_fig}

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[1:] or FIGURES:
        FIGURES[name]()
        print(f"wrote {OUT / (name + '.png')}")

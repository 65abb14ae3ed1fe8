"""Lazy networks against kernel theory: the test error of a trained two-layer ReLU net predicted from its *initial*
NTK (eigenlearning, `lazyrich.theory.kernel`), against the measured one, over widths and sample sizes — and where
rich nets (μP, γ = 1) beat the kernel prediction.

Setup. Inputs uniform on the sphere S^{d−1}; target f*(x) = √(d(d+2)) x₀x₁ (unit variance, a degree-2 function of a
2-D subspace: kernels need n ~ d² samples for it, a net that learns the subspace needs fewer). Nets d → h → 1, no
bias, full-batch GD on ½·mean (f − y)² for `steps` steps; NTP members at learning rate n/λ_max(K₀(X, X)) (K₀ the
lr-weighted NTK: the fastest stable pace of the kernel dynamics), μP members at the width-free base rate `mup_lr`. Lazy: NTP; rich: μP (γ = 1). Each member is
one init seed with its own training set (x [E, n, d]); one ensemble per (scheme, width, n).
Prediction: the eigensystem of K₀ on a pool of `pool` fresh points (population proxy, `kernel_eigensystem`), target
f* − f₀ (the net learns the residual of its initial function f₀), ridge 0 — the ridgeless KRR risk of the network's
own initial kernel. Also shown: the exact KRR with K₀ on the member's training set (the linearized net at
convergence). Writes lazy_vs_kernel.{png,pdf} and lazy_vs_kernel.csv to --out.

  python examples/lazy_vs_kernel.py --size cpu --out /tmp/lvk     # measured in docs/theory/kernel.md
  python examples/lazy_vs_kernel.py --size tiny --out /tmp/lvk    # seconds: checks the script end to end
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from lazyrich.dynamics import train  # noqa: E402
from lazyrich.ensemble import build  # noqa: E402
from lazyrich.models import MLP  # noqa: E402
from lazyrich.models.mlp import forward  # noqa: E402
from lazyrich.observe.base import Data  # noqa: E402
from lazyrich.observe.kernel import ensemble_ntk  # noqa: E402
from lazyrich.theory.kernel import eigenlearning, kernel_eigensystem  # noqa: E402

SIZES = {
    "cpu": dict(d=8, widths=[64, 256, 1024, 4096], ns=[16, 32, 64, 128, 256], seeds=4, steps=3000, pool=800, mup_lr=1.0),
    "tiny": dict(d=5, widths=[32, 128], ns=[8, 16], seeds=3, steps=50, pool=100, mup_lr=1.0),
}
SCHEMES = {"lazy (NTP)": "ntp", "rich (μP, γ = 1)": "mup"}


def sphere(n: int, d: int, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


def target(x: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1]
    return (math.sqrt(d * (d + 2)) * x[..., 0] * x[..., 1]).unsqueeze(-1)


def run_cell(cfg: dict, scheme: str, h: int, n: int) -> pd.DataFrame:
    """One ensemble over seeds (each with its own training set): measured test MSE, eigenlearning prediction
    from K₀ on the pool, exact KRR with K₀, final train MSE."""
    d, S = cfg["d"], cfg["seeds"]
    gen = torch.Generator().manual_seed(10_000 + n)
    x_pool = sphere(cfg["pool"], d, gen)
    y_pool = target(x_pool)
    xs = torch.stack([sphere(n, d, torch.Generator().manual_seed(100 * s + n)) for s in range(S)])  # [S, n, d]
    net = MLP((d, h, 1), "relu")
    members = [{"seed": s} for s in range(S)]
    probe = build(net, members, scheme=scheme, lr=1.0)
    K_train = ensemble_ntk(probe, probe.params, xs, "lr")  # the lr-weighted NTK the GD follows
    # lazy: the stable pace of the kernel dynamics; rich: μP's width-free rate (its NTK grows as features move)
    lr = n / torch.linalg.eigvalsh(K_train)[:, -1] if scheme == "ntp" else torch.full((S,), cfg["mup_lr"])
    ens = build(net, [{"seed": s, "lr": float(lr[s])} for s in range(S)], scheme=scheme, lr=1.0)
    f0_pool = forward(net, ens.params, x_pool, ens.multipliers)[..., 0]  # [S, N]
    f0_train = forward(net, ens.params, xs, ens.multipliers)
    K_pool = ensemble_ntk(ens, ens.params, x_pool, "lr")
    K_cross = _cross_ntk(ens, xs, x_pool)
    K_tr = ensemble_ntk(ens, ens.params, xs, "lr")
    ys = target(xs)
    out = train(ens, Data(xs, ys), cfg["steps"], "gd", record=[cfg["steps"]], observers=["loss"])  # x [S, n, d]: per-member data
    f = forward(net, out.ens.params, x_pool, out.ens.multipliers)[..., 0]  # [S, N]
    f_tr = forward(net, out.ens.params, xs, out.ens.multipliers)
    rows = []
    for s in range(S):
        lam, v = kernel_eigensystem(K_pool[s].numpy(), (y_pool[:, 0] - f0_pool[s]).numpy())
        krr = f0_pool[s] + K_cross[s].T @ torch.linalg.solve(K_tr[s], ys[s, :, 0] - f0_train[s, :, 0])
        rows.append(dict(scheme=scheme, width=h, n=n, seed=s, test=float((f[s] - y_pool[:, 0]).pow(2).mean()),
                         train=float((f_tr[s] - ys[s]).pow(2).mean()), predicted=eigenlearning(lam, v, n, 0.0).test_mse,
                         krr=float((krr - y_pool[:, 0]).pow(2).mean())))
    return pd.DataFrame(rows)


def _cross_ntk(ens, xs: torch.Tensor, x_pool: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    """K₀(X_train, X_pool) per member, [S, n, N], from the NTK of the stacked inputs."""
    n = xs.shape[1]
    both = torch.cat([xs, x_pool.expand(xs.shape[0], *x_pool.shape)], 1)
    return ensemble_ntk(ens, ens.params, both, "lr")[:, :n, n:]


def figure(df: pd.DataFrame, out: Path, cfg: dict) -> None:
    """Left: test MSE vs n at the largest width — lazy and rich nets (mean over seeds, min–max bars) against the
    NTP kernel's predictions. Right, vs width, one line per n: NTP nets ÷ exact KRR with their own K₀ (→ 1 as the
    width grows: lazy), μP nets ÷ KRR with the widest NTP net's K₀ (< 1 where learning the x₀x₁ subspace pays)."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    h = max(cfg["widths"])
    for j, (label, scheme) in enumerate(SCHEMES.items()):
        g = df[(df.width == h) & (df.scheme == scheme)].groupby("n")
        m = g.test.mean()
        ax.errorbar(m.index * (1 + 0.05 * j), m, [m - g.test.min(), g.test.max() - m], fmt="o", color=f"C{j}", ms=4,
                    capsize=2, label=f"{label}, trained")
    g = df[(df.width == h) & (df.scheme == "ntp")].groupby("n")
    ax.plot(g.predicted.mean().index, g.predicted.mean(), "k-", label="eigenlearning from K₀ (ridgeless)")
    ax.plot(g.krr.mean().index, g.krr.mean(), "k:", label="KRR with K₀ on the training set")
    ax.set(xscale="log", yscale="log", xlabel="training samples n", ylabel="test MSE", title=f"width {h}")
    ax.legend(fontsize=7)
    ns = sorted(df.n.unique())
    # lazy: ÷ KRR with the net's own K₀; rich: ÷ KRR with the widest NTP net's K₀ (≈ the infinite-width NTK), both on
    # the member's own training set (the sets depend on (n, seed) only, so they are shared across widths and schemes)
    base = df[(df.scheme == "ntp") & (df.width == h)].set_index(["n", "seed"]).krr
    for i, n in enumerate(ns):
        for scheme, style in (("ntp", "-o"), ("mup", "--s")):
            d = df[(df.n == n) & (df.scheme == scheme)]
            ref = d.krr.to_numpy() if scheme == "ntp" else base.loc[list(zip(d.n, d.seed))].to_numpy()
            r = (d.test / ref).groupby(d.width).mean()
            bx.plot(r.index, r, style, color=plt.cm.viridis(i / max(len(ns) - 1, 1)), ms=3,
                    label=f"n = {n}" if scheme == "ntp" else None)
    bx.axhline(1, color="k", lw=0.6)
    bx.set(xscale="log", yscale="log", xlabel="width h", ylabel="test MSE ÷ ridgeless KRR with K₀",
           title=f"NTP ÷ its own K₀ (solid, → 1: lazy); μP ÷ width-{h} NTP K₀ (dashed)")
    bx.legend(fontsize=7)
    fig.suptitle(f"Two-layer ReLU nets, f* = √(d(d+2)) x₀x₁ on S^{cfg['d'] - 1}, {cfg['seeds']} seeds, GD to interpolation",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "lazy_vs_kernel.png", dpi=130, bbox_inches="tight")
    fig.savefig(out / "lazy_vs_kernel.pdf", bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--out", type=Path, default=Path("lazy_vs_kernel_out"))
    ap.add_argument("--plot-only", action="store_true", help="redraw the figure from --out/lazy_vs_kernel.csv")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = SIZES[a.size]
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if a.plot_only:
        df = pd.read_csv(a.out / "lazy_vs_kernel.csv")
    else:
        df = pd.concat([run_cell(cfg, s, h, n) for s in SCHEMES.values() for h in cfg["widths"] for n in cfg["ns"]])
        df.to_csv(a.out / "lazy_vs_kernel.csv", index=False)
    figure(df, a.out, cfg)
    summary = df.groupby(["scheme", "width", "n"])[["test", "predicted", "krr", "train"]].mean()
    summary["test/predicted"] = summary.test / summary.predicted
    print(summary.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"wall time {time.time() - t0:.0f} s")
    return df


if __name__ == "__main__":
    main()

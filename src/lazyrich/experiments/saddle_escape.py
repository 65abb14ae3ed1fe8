"""saddle-escape: how deep ReLU nets leave the saddle at the origin from a small init (arXiv 2505.21722).

Teacher–student data (Gaussian inputs, a two-layer ReLU teacher, scalar output normalised to unit mean
square). For each depth L (weight layers) the optimal escape direction θ* = argmax_{‖θ‖=1} G(θ),
G(θ) = (1/n)Σ y_i f_θ(x_i), is computed numerically (theory/saddle_escape.py). One ensemble per depth —
seeds × init scales, the engine's batched GD — records the loss and the `escape` observer; a member
*escapes* at the first record where its loss is ≤ (1 − q)·L(0). Claims:
- θ* is balanced (‖W_l‖² = 1/L) and low-rank in its deeper layers (σ₁ ≥ ℓ^{1/4}σ₂, the paper's bound);
- escape time ∝ ρ₀^{−(L−2)}: per-seed log–log slope over the init scales against −(L − 2);
- at the escape of the smallest init, GD's direction overlaps θ* (per layer, after matching hidden units)
  and its deeper layers carry the same low-rank bias.
Control: the same pipeline from large inits (the net starts far from the saddle) must fail them.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..dynamics import train
from ..ensemble import build
from ..models import MLP
from ..observe.base import Data
from ..observe.escape import Escape
from ..theory import saddle_escape as se
from .base import Claim, Context, over_seeds, reproduction

SOURCE = ("Bantzis, Simon & Jacot 2025, 'Saddle-to-saddle dynamics in deep ReLU networks: low-rank bias in the first "
          "saddle escape', arXiv 2505.21722; theory/saddle_escape.py")
QUICK = dict(d=6, n=40, teacher=3, h=12, data_seed=0, seeds=[0, 1, 2, 3], q=0.1, every=10,
             depths={"3": dict(scales=[0.01, 0.02, 0.04, 0.08], lr=0.2, T=600.0),
                     "4": dict(scales=[0.08, 0.12, 0.18, 0.27], lr=0.2, T=500.0)},
             control_scales=[1.0, 1.5, 2.2, 3.3], overlap_min=0.6, slope_tol=0.15, restarts=8, iters=1000)
FULL = dict(QUICK, seeds=list(range(12)), restarts=16, iters=3000,
            depths={"3": dict(scales=[0.005, 0.01, 0.02, 0.04, 0.08], lr=0.2, T=1200.0),
                    "4": dict(scales=[0.08, 0.12, 0.18, 0.27, 0.4], lr=0.2, T=900.0),  # ρ(0.06): a seed needs T > 900
                    "5": dict(scales=[0.2, 0.25, 0.32, 0.4], lr=0.2, T=900.0),
                    "6": dict(scales=[0.35, 0.42, 0.5, 0.6], lr=0.2, T=900.0)})


def teacher_data(cfg: dict) -> Data:
    """x ~ N(0, I_d), y = a two-layer ReLU teacher (width `teacher`), scaled to mean y² = 1; float64."""
    rng = np.random.default_rng(cfg["data_seed"])
    x = rng.normal(size=(cfg["n"], cfg["d"]))
    y = np.maximum(x @ rng.normal(size=(cfg["teacher"], cfg["d"])).T, 0) @ rng.normal(size=(1, cfg["teacher"])).T
    return Data(torch.tensor(x), torch.tensor(y / np.sqrt((y ** 2).mean())))


def widths(cfg: dict, depth: int) -> tuple[int, ...]:
    return (cfg["d"],) + (cfg["h"],) * (depth - 1) + (1,)


def escape_runs(cfg: dict, data: Data, depth: int, scales: list[float], lr: float, T: float, target: list,
                device: str) -> dict:
    """One ensemble (seeds × scales) trained by GD; per member: escape time, ρ₀, and the escape observables at escape."""
    rows = [{"seed": s, "std_scale": float(sc)} for s in cfg["seeds"] for sc in scales]
    ens = build(MLP(widths(cfg, depth), "relu"), rows, scheme="sp", lr=lr, device=device)
    steps = int(round(T / lr))
    rec = list(range(0, steps + 1, cfg["every"]))
    run = train(ens, Data(data.x.to(device), data.y.to(device)), steps, record=rec, observers=["loss", Escape(target)])
    r = run.records(config=False)
    table = lambda obs: r[r.observable == obs].pivot_table(index="member", columns=["step", "layer"], values="value")  # noqa: E731
    loss = r[r.observable == "loss"].pivot(index="member", columns="step", values="value").to_numpy()
    t = np.array(rec) * lr
    below = loss <= (1 - cfg["q"]) * loss[:, :1]
    idx = np.where(below.any(1), below.argmax(1), -1)
    rho = torch.sqrt(sum(v.pow(2).sum(tuple(range(1, v.dim()))) for v in run.params0.values())).cpu().numpy()
    at = {}
    for obs in ("escape_overlap", "singular_ratio", "effective_rank", "layer_norm_share"):
        tab = table(obs)
        at[obs] = np.array([[tab.loc[m, (rec[i], f"W{l}")] if i >= 0 else np.nan for l in range(1, depth + 1)]
                            for m, i in enumerate(idx)])
    S, K = len(cfg["seeds"]), len(scales)
    return dict(t_esc=np.where(idx >= 0, t[np.maximum(idx, 0)], np.nan).reshape(S, K), rho=rho.reshape(S, K),
                at={k: v.reshape(S, K, depth) for k, v in at.items()}, t=t, loss=loss.reshape(S, K, -1), depth=depth)


def slopes(run: dict) -> np.ndarray:
    """Per-seed least-squares slope of log t_esc against log ρ₀ (NaN if a member never escaped)."""
    return np.array([np.polyfit(np.log(r), np.log(t), 1)[0] if np.all(np.isfinite(t)) else np.nan
                     for r, t in zip(run["rho"], run["t_esc"])])


def run_claims(run: dict, cfg: dict, prefix: str = "") -> list[Claim]:
    L = run["depth"]
    expo = se.escape_time_exponent(L)
    sl = slopes(run)
    ov = run["at"]["escape_overlap"][:, 0]  # smallest init: [S, L]
    ratio = run["at"]["singular_ratio"][:, 0, 1:L - 1] / np.arange(2, L) ** 0.25  # hidden-to-hidden layers ℓ = 2..L−1
    return [over_seeds(f"{prefix}escape-exponent-L{L}", f"L = {L}: escape time (loss ≤ {1 - cfg['q']:g}·L(0)) ∝ ρ₀^{{−(L−2)}}: "
                       f"per-seed log–log slope over the init scales = {expo:g} ± {cfg['slope_tol']:g} (a seed that never escapes "
                       "counts as slope 0)", SOURCE, "derived",
                       np.nan_to_num(sl, nan=0.0), expo, cfg["slope_tol"]),
            over_seeds(f"{prefix}escape-overlap-L{L}", f"L = {L}, smallest init: at escape, the per-layer overlap of GD's "
                       f"weights with θ* (hidden units matched), minimum over layers ≥ {cfg['overlap_min']:g} (threshold "
                       "inferred: the direction converges only as a power of ρ₀; no escape counts as 0)", SOURCE, "inferred",
                       np.nan_to_num(ov.min(1), nan=0.0), cfg["overlap_min"], 0.0, "at_least"),
            over_seeds(f"{prefix}escape-low-rank-L{L}", f"L = {L}, smallest init: at escape the deeper layers show the "
                       "low-rank bias, min over ℓ = 2..L−1 of σ₁/(ℓ^{1/4}σ₂) ≥ 1 (the paper's bound at θ*)", SOURCE, "paper",
                       np.nan_to_num(ratio.min(1), nan=0.0), 1.0, 0.0, "at_least")]


@reproduction("saddle-escape", "Deep ReLU nets (L = 3–6) leave the origin saddle along the optimal escape direction: "
              "overlap, low-rank deeper layers, escape time ∝ ρ₀^−(L−2); large init as control",
              quick=QUICK, full=FULL, runtime={"quick": "5.2 s CPU time, 1 thread (15–23 s wall at load 7–14 on a 2-core CPU)", "full": "142–272 s at load ≈ 15 on a 2-core CPU (1 thread)"}, source=SOURCE,
              knobs={"seeds": [list(range(8))], "q": [0.05, 0.3]},
              decisive=["escape-exponent-L3", "escape-exponent-L4", "escape-overlap-L3", "escape-overlap-L4",
                        "escape-low-rank-L3", "escape-low-rank-L4"])
def run(ctx: Context) -> None:
    cfg = ctx.cfg
    data = teacher_data(cfg)
    x, y = data.x.numpy(), data.y.numpy()
    runs, controls, stars = {}, {}, {}
    for key, dc in cfg["depths"].items():
        L = int(key)
        star = se.optimal_escape_direction(widths(cfg, L), x, y, cfg["restarts"], cfg["iters"])
        stars[L] = star
        ctx.claim(f"theta-star-critical-L{L}", f"L = {L}: the computed θ* is a critical point of G on the sphere: "
                  "‖∇G − L·G·θ‖ / (L·s*) ≤ 1e-2", SOURCE, "derived", star.residual, 0.0, 1e-2)
        ctx.claim(f"theta-star-balanced-L{L}", f"L = {L}: θ* is balanced, max_l |‖W_l‖² − 1/L| ≤ 1e-3 (per-layer homogeneity)",
                  SOURCE, "derived", float(np.abs(star.layer_norms - 1 / L).max()), 0.0, 1e-3)
        ctx.claim(f"theta-star-low-rank-L{L}", f"L = {L}: at θ*, σ₁(W_ℓ) ≥ ℓ^{{1/4}} σ₂(W_ℓ) for ℓ = 2..L (min of "
                  "σ₁/(ℓ^{1/4}σ₂) ≥ 1; the paper's theorem)", SOURCE, "paper",
                  float(np.min(star.singular_ratios[1:] / np.arange(2, L + 1) ** 0.25)), 1.0, 0.0, "at_least")
        runs[L] = escape_runs(cfg, data, L, dc["scales"], dc["lr"], dc["T"], star.weights, ctx.device)
        for c in run_claims(runs[L], cfg):
            ctx.add(c)
        controls[L] = escape_runs(cfg, data, L, cfg["control_scales"], dc["lr"], min(dc["T"], 50.0), star.weights, ctx.device)
        ctx.note(f"L = {L}: s* = {star.speed:.4g}, θ* effective ranks {', '.join(f'{v:.2f}' for v in star.effective_ranks)}; "
                 f"restart speeds {np.min(star.restart_speeds):.4g}–{np.max(star.restart_speeds):.4g}; per-seed slopes "
                 f"{', '.join(f'{v:.2f}' for v in slopes(runs[L]))}; overlaps at escape (smallest init, seed 0) "
                 f"{', '.join(f'{v:.2f}' for v in runs[L]['at']['escape_overlap'][0, 0])}.")
    # the control switches the small init off; the paper's low-rank bound σ₁ ≥ ℓ^{1/4}σ₂ is too weak to separate a
    # random 12×12 layer (σ₁/σ₂ ≈ 1.1–1.2), so the control holds the exponent and overlap claims only (reported in a note)
    ctrl = [c for L in controls for c in run_claims(controls[L], cfg, prefix="large-init-") if "low-rank" not in c.id]
    ctx.control("control-large-init", f"init scales {cfg['control_scales']} (far from the saddle) instead of small ones: the "
                "escape-exponent and overlap claims must fail", SOURCE, ctrl)
    lr_ctrl = [c for L in controls for c in run_claims(controls[L], cfg, prefix="large-init-") if "low-rank" in c.id]
    ctx.note("Large init, low-rank claim (not part of the control): " + "; ".join(
        f"{c.id}: {c.verdict} (mean {c.measured:.3g})" for c in lr_ctrl) + ".")
    _figure(ctx, runs, controls, stars)


def _figure(ctx: Context, runs: dict, controls: dict, stars: dict) -> None:
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
    for L, r in runs.items():
        line = None
        for s in range(r["rho"].shape[0]):
            line, = ax[0].loglog(r["rho"][s], r["t_esc"][s], "o", ms=3, color=None if line is None else line.get_color())
        rr = np.geomspace(r["rho"].min(), r["rho"].max(), 20)
        pref = np.nanmedian(r["t_esc"] * r["rho"] ** (L - 2))
        ax[0].loglog(rr, pref * rr ** (2 - L), "--", color=line.get_color(), label=f"L = {L}: slope −(L−2) = {2 - L}")
        c = controls[L]
        ax[0].loglog(c["rho"].ravel(), c["t_esc"].ravel(), "x", color=line.get_color(), ms=4)
        ov = r["at"]["escape_overlap"]
        ax[1].plot(np.arange(1, L + 1), np.nanmean(ov[:, 0], 0), "o-", label=f"L = {L}, smallest init")
        ax[1].plot(np.arange(1, L + 1), np.nanmean(c["at"]["escape_overlap"][:, 0], 0), "x:", color=ax[1].lines[-1].get_color())
        sr = np.nanmean(r["at"]["singular_ratio"][:, 0], 0)
        ax[2].semilogy(np.arange(1, L), sr[:-1], "o-", label=f"L = {L}: GD at escape")
    ls = np.arange(1, 7)
    ax[2].semilogy(ls, ls ** 0.25, "k--", label="bound ℓ^{1/4}")
    ax[0].set_xlabel("init norm ρ₀")
    ax[0].set_ylabel("escape time")
    ax[0].set_title("escape time (dots), control (×), theory slope (dashed)", fontsize=8)
    ax[1].set_xlabel("layer ℓ")
    ax[1].set_ylabel("overlap with θ* at escape")
    ax[1].set_title("per-layer overlap (control dotted)", fontsize=8)
    ax[2].set_xlabel("layer ℓ")
    ax[2].set_ylabel("σ₁/σ₂ at escape")
    ax[2].set_title("low-rank bias vs the paper's bound", fontsize=8)
    for a in ax:
        a.legend(fontsize=7)
    fig.tight_layout()
    ctx.figure(fig, "escape", "Left: escape time against init norm per seed (dots) with the predicted slope −(L−2) (dashed, "
               "prefactor fitted) and the large-init control (×). Centre: per-layer overlap of GD's direction with the "
               "numerically optimal escape direction θ* at escape. Right: σ₁/σ₂ of the weight layers at escape against "
               "the paper's bound ℓ^{1/4} (θ* itself is rank one in every layer here).")

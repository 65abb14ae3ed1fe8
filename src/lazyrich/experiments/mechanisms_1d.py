"""mechanisms-1d: Xu & Ziyin's three mechanisms of feature learning in the 1-D data model.

A two-layer net f(x) = γ uᵀσ(w x) on one effective data point (x = 1, target y_*), so only the
alignment ζ = cos∠(u, w), the norms and the NTK move. (1) ζ(t) of gradient flow against the exact
linear solution (`lazyrich.theory.one_d`) for an alignment, a disalignment, a rescaling and a kernel
init. (2) The kernel / feature phase boundary in the laziness number χ ∝ h^e crossed by width through
γ, the init scale and the learning-rate ratio: the measured final NTK ratio gives χ_eff = (R² − 1)^{-1/2}
whose width exponent is compared with `phase_exponent`. (3) The same alignment / disalignment
behaviour for ReLU, tanh and leaky-ReLU nets. Setups: shared/theory/experiments.md §4 (T1.1–T1.4).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..dynamics import flow, train
from ..ensemble import Ensemble
from ..observe.base import Data
from ..theory import mechanism, mechanism_case, one_d, one_d_inputs, phase_exponent
from .base import Claim, Context, over_seeds, reproduction
from .common import loglog_slope, on_device
from .single_neuron import hand_set_ensemble, series

SOURCE = "Xu & Ziyin 2025 (arXiv 2401.07085) Prop. 1, Figs. 1 and 4; shared/theory/experiments.md §4"
CASES = ("alignment", "disalignment", "rescaling", "kernel")
# width scalings γ ∝ h^{-a}, σ_u² ∝ h^{-b_u}, σ_w² ∝ h^{-b_w}, η_u/η_w ∝ h^c (χ ∝ h^e, e = phase_exponent)
SCALINGS = {"NTP γ": (0.5, 0.0, 0.0, 0.0), "mean field": (1.0, 0.0, 0.0, 0.0),
            "small init": (1.0, 1.0, 1.0, 0.0), "lr ratio": (1.0, 0.0, 0.0, 1.0)}
# negative control: the same settings with their crossing ingredient not scaled with width (all mean field)
CONTROL = {"NTP γ": (1.0, 0.0, 0.0, 0.0), "small init": (1.0, 0.0, 0.0, 0.0), "lr ratio": (1.0, 0.0, 0.0, 0.0)}
ACTIVATIONS = ("relu", "tanh", "leaky_relu")

QUICK = dict(h=64, T=20.0, points=41, widths=[64, 256, 1024], phase_T=20.0, seeds=[0, 1, 2], slope_tol=0.1, gd_lr=0.01)
FULL = dict(h=64, T=20.0, points=161, widths=[64, 256, 1024, 4096], phase_T=20.0, seeds=[0, 1, 2], slope_tol=0.1, gd_lr=0.002)


def one_point(y_star: float) -> Data:
    """The effective data point of Prop. 1: x = 1 (d = 1), target y_*."""
    return Data(torch.ones(1, 1, dtype=torch.float64), torch.full((1, 1), float(y_star), dtype=torch.float64))


def pair_ensemble(u0: np.ndarray, w0: np.ndarray, gamma: float, lr_u: float, lr_w: float, device: str,
                  activation: str = "linear") -> Ensemble:
    """(1, h, 1) net with W1 = w₀ (column), W2 = u₀ᵀ, readout multiplier γ, rates (η_u, η_w) at base lr 1."""
    ens = hand_set_ensemble((1, len(u0), 1), {"W1": w0[None, :, None], "W2": u0[None, None, :]}, 1.0, device, activation)
    ens.multipliers["W2"] = torch.full_like(ens.multipliers["W2"], gamma)
    ens.lr["W2"] = torch.full_like(ens.lr["W2"], lr_u)
    ens.lr["W1"] = torch.full_like(ens.lr["W1"], lr_w)
    return ens


def _scale_lr(ens: Ensemble, lr: float) -> Ensemble:
    """The same ensemble stepped by GD at base lr `lr` (layer rates unchanged)."""
    for k in ens.lr:
        ens.lr[k] = ens.lr[k] * lr
    ens.base_lr = ens.base_lr * lr
    return ens


def zero_output_init(h: int, sigma_u: float, sigma_w: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian u₀, w₀ with w₀ made orthogonal to u₀ (p₀ = uᵀw = 0, f(θ₀) = 0): then Θ(∞)/Θ(0) = √(1 + χ⁻²) exactly."""
    rng = np.random.default_rng(seed)
    u, w = rng.normal(size=(2, h))
    w = w - (w @ u) / (u @ u) * u
    return sigma_u * u, sigma_w * w * np.sqrt(h / (w @ w))


def ntk_ratios_final(h: int, scalings: dict[str, tuple[float, float, float, float]], T: float, seed: int,
                     device: str) -> dict[str, float]:
    """Θ(T)/Θ(0) from gradient flow for each width scaling, one ensemble member per scaling (y_* = 1,
    √(η_uη_w) = 1/γ so every width converges on the same time scale; χ does not depend on the common lr)."""
    names = list(scalings)
    inits = [zero_output_init(h, float(h) ** (-scalings[n][1] / 2), float(h) ** (-scalings[n][2] / 2), seed) for n in names]
    ens = hand_set_ensemble((1, h, 1), {"W1": np.stack([w[:, None] for _, w in inits]),
                                        "W2": np.stack([u[None, :] for u, _ in inits])}, 1.0, device,
                            members=pd.DataFrame({"scaling": names}))
    gamma = torch.tensor([float(h) ** -scalings[n][0] for n in names], dtype=torch.float64, device=device)
    ratio = torch.tensor([float(h) ** scalings[n][3] for n in names], dtype=torch.float64, device=device)
    ens.multipliers["W2"] = gamma
    ens.lr["W2"], ens.lr["W1"] = ratio.sqrt() / gamma, 1 / (ratio.sqrt() * gamma)
    run = flow(ens, on_device(one_point(1.0), device), [0.0, T], observers=("loss", "ntk_ratio"), rtol=1e-8, atol=1e-10)
    return {n: float(series(run.records(), "ntk_ratio", e)[-1, 0]) for e, n in enumerate(names)}


def phase_claims(chi: dict[str, list[list[float]]], widths: list[int], scalings: dict, tol: float, prefix: str = "",
                 expected_from: dict | None = None) -> list[Claim]:
    """Fitted width exponent of χ_eff per scaling vs the predicted e (of `expected_from`, default `scalings`);
    chi[name][i][j] is χ_eff at width i for seed j: one fit per seed, mean over seeds with its interval."""
    out = []
    for name in scalings:
        e = phase_exponent(*(expected_from or scalings)[name])
        per_seed = np.asarray(chi[name], float).T
        out.append(over_seeds(f"{prefix}phase-slope-{name.replace(' ', '-').replace('γ', 'gamma')}",
                              f"{name}: exponent of χ_eff = (R² − 1)^(-1/2) over h ∈ {widths}, fitted per seed, mean over "
                              f"seeds, equals the predicted e = {e:+g} (± {tol:g}; R = Θ(∞)/Θ(0) from gradient flow; "
                              "tolerance inferred)", SOURCE, "derived", [loglog_slope(widths, c) for c in per_seed], e, tol))
    return out


@reproduction("mechanisms-1d", "Xu & Ziyin: alignment, disalignment, rescaling and the kernel/feature boundary in χ, 1-D data",
              quick=QUICK, full=FULL, runtime={"quick": "17-33 s (1 thread, loaded 2-core CPU)", "full": "2 min CPU (1 thread, loaded)"},
              source=SOURCE, knobs={"widths": [[32, 64, 128], [256, 512, 1024]], "phase_T": [5.0, 80.0]},
              decisive=["phase-slope-NTP-gamma", "phase-slope-mean-field", "phase-slope-small-init", "phase-slope-lr-ratio",
                        "alignment-final-zeta", "relu-alignment", "relu-disalignment"])
def run(ctx: Context) -> None:
    cfg = ctx.cfg
    times = np.linspace(0, cfg["T"], cfg["points"])
    sims, theory, err = {}, {}, 0.0
    for name in CASES:  # (1) linear net: exact solution vs gradient flow
        case = mechanism_case(name, cfg["h"], seed=0)
        ens = pair_ensemble(case["u0"], case["w0"], case["gamma"], 1.0, 1.0, ctx.device)
        data = one_point(case["y_star"])
        r = flow(ens, on_device(data, ctx.device), times, observers=("loss", "balance", "ntk_ratio", "one_d"),
                 rtol=1e-11, atol=1e-13).records()
        th = one_d(times, **one_d_inputs(ens, data))
        sims[name] = {k: series(r, k, 0)[:, 0] for k in ("zeta", "ntk_ratio", "u_norm", "w_norm", "loss")}
        theory[name] = th
        for k in ("zeta", "ntk_ratio", "u_norm", "w_norm"):  # relative where the quantity grows (Θ ratio up to ~400)
            err = max(err, float((np.abs(sims[name][k] - th[k]) / np.maximum(1.0, np.abs(th[k]))).max()))
        ctx.claim(f"mechanism-{name}", f"`mechanism` classifies the {name} init as {name} (1 = yes)", SOURCE, "derived",
                  float(mechanism(case["u0"], case["w0"], case["gamma"], case["y_star"]) == name), 1.0)
    ctx.claim("zeta-theory-vs-flow", "ζ(t), Θ(t)/Θ(0), ‖u‖, ‖w‖: max difference between the exact solution and "
              "gradient flow (relative to max(1, |value|)) over the four cases, t ≤ 20 (T1.1: 1e-6; flow at rtol 1e-11)",
              SOURCE, "derived", err, 0.0, 1e-6)
    s = sims
    ctx.claim("alignment-final-zeta", "alignment (χ ≪ 1, y_* > 0): ζ(T) > 0.99 (T1.4, threshold inferred)", SOURCE,
              "inferred", s["alignment"]["zeta"][-1], 0.99, 0.0, "at_least")
    ctx.claim("disalignment-sign-change", "disalignment (y_* < 0 < p₀): ζ(0)·ζ(T) < 0, ζ crosses 0 (measured: ζ(0)·ζ(T))",
              SOURCE, "inferred", s["disalignment"]["zeta"][0] * s["disalignment"]["zeta"][-1], 0.0, 0.0, "at_most")
    ctx.claim("rescaling-zeta-one", "rescaling (D = 0): max_t |1 − ζ| ≤ 1e-9 while the norms change", SOURCE, "derived",
              float(np.abs(1 - s["rescaling"]["zeta"]).max()), 0.0, 1e-9)
    ctx.claim("rescaling-norm-change", "rescaling: ‖u(T)‖/‖u(0)‖ ≥ 1.5 (γ‖u₀‖² = 0.25·‖g‖² ≪ y_* = 2)", SOURCE, "derived",
              s["rescaling"]["u_norm"][-1] / s["rescaling"]["u_norm"][0], 1.5, 0.0, "at_least")
    ctx.claim("kernel-ntk-fixed", "kernel (large init, small target): |Θ(T)/Θ(0) − 1| ≤ 0.05", SOURCE, "inferred",
              abs(s["kernel"]["ntk_ratio"][-1] - 1), 0.0, 0.05)
    # (2) phase boundary crossed by width
    widths = cfg["widths"]
    ratios = [[ntk_ratios_final(h, SCALINGS, cfg["phase_T"], seed, ctx.device) for seed in cfg["seeds"]] for h in widths]
    chi = {name: [[float((r[name] ** 2 - 1) ** -0.5) for r in per_seed] for per_seed in ratios] for name in SCALINGS}
    for c in phase_claims(chi, widths, SCALINGS, cfg["slope_tol"]):
        ctx.add(c)
    # every control setting is the mean-field scaling itself: the same computation, so reuse its numbers
    chi_ctrl = {name: chi["mean field"] for name in CONTROL}
    ctx.note("Negative control: with the crossing ingredient unscaled each setting *is* the mean-field scaling "
             "(same γ, σ, lrs, seeds), so its χ_eff values are the mean-field run's, not recomputed.")
    ctx.control("control-unscaled", "with the crossing ingredient (γ, init scale, lr ratio) not scaled with width the "
                "nets stay at the mean-field boundary and the predicted exponents must fail", SOURCE,
                phase_claims(chi_ctrl, widths, CONTROL, cfg["slope_tol"], prefix="unscaled-", expected_from=SCALINGS))
    # (3) nonlinear nets: same qualitative alignment / disalignment
    nonlin = {}
    for act in ACTIVATIONS:
        for name in ("alignment", "disalignment"):
            case = mechanism_case(name, cfg["h"], seed=0)
            ens = pair_ensemble(case["u0"], case["w0"], case["gamma"], 1.0, 1.0, ctx.device, act)
            ens = _scale_lr(ens, cfg["gd_lr"])
            steps = int(round(cfg["T"] / cfg["gd_lr"]))  # GD, not flow: ReLU kinks stall an adaptive solver
            r = train(ens, on_device(one_point(case["y_star"]), ctx.device), steps, "gd",
                      record=list(range(0, steps + 1, max(1, steps // (len(times) - 1)))), observers=("loss", "balance"))
            recs = r.records()
            nonlin[(act, name)] = (np.sort(recs.time.unique()), series(recs, "zeta", 0)[:, 0])
        z_al, z_dis = nonlin[(act, "alignment")][1], nonlin[(act, "disalignment")][1]
        ctx.claim(f"{act}-alignment", f"{act}: the alignment init raises ζ by ≥ 0.5 (ζ(T) − ζ(0); linear: "
                  f"{s['alignment']['zeta'][-1] - s['alignment']['zeta'][0]:.2f}; threshold inferred)", SOURCE, "inferred",
                  z_al[-1] - z_al[0], 0.5, 0.0, "at_least")
        ctx.claim(f"{act}-disalignment", f"{act}: the disalignment init lowers ζ (ζ(T) − ζ(0) < 0, as in the linear net)",
                  SOURCE, "inferred", z_dis[-1] - z_dis[0], 0.0, 0.0, "at_most")
    ctx.note("Phase boundary: inits have w₀ ⟂ u₀ (zero initial output), so Θ(∞)/Θ(0) = √(1 + χ⁻²) holds exactly and "
             "χ_eff is read off the measured NTK ratio; √(η_uη_w) = 1/γ at every width (χ is invariant to a common lr).")
    ctx.note(f"Nonlinear nets are trained by full-batch GD at base lr {cfg['gd_lr']:g} (t = kη), not by the adaptive "
             "solver: ReLU kinks make dopri8 crawl. Their claims are qualitative (ζ rises / falls), as in the paper's Fig. 1.")
    _figures(ctx, times, sims, theory, chi, chi_ctrl, widths, nonlin)


def _figures(ctx: Context, times: np.ndarray, sims: dict, theory: dict, chi: dict, chi_ctrl: dict, widths: list[int],
             nonlin: dict) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for name, c in zip(CASES, plt.cm.tab10(range(4))):
        axes[0].plot(times[::4], sims[name]["zeta"][::4], "o", ms=3, color=c, label=name)
        axes[0].plot(times, theory[name]["zeta"], "-", color=c, lw=1)
    axes[0].set_xlabel("t")
    axes[0].set_ylabel("ζ = cos∠(u, w)")
    axes[0].set_title("Fig. 1: linear net, simulation (dots) vs theory")
    axes[0].legend(fontsize=7)
    for (name, v), c in zip(chi.items(), plt.cm.tab10(range(4))):
        v = np.asarray(v).mean(1)  # seed mean per width
        e = phase_exponent(*SCALINGS[name])
        axes[1].loglog(widths, v, "o-", color=c, label=f"{name} (e = {e:+g})")
        axes[1].loglog(widths, v[0] * (np.asarray(widths) / widths[0]) ** e, ":", color=c)
        if name in chi_ctrl:
            axes[1].loglog(widths, np.asarray(chi_ctrl[name]).mean(1), "x--", color=c, alpha=0.5)
    axes[1].axhline(1, color="k", lw=0.5)
    axes[1].set_xlabel("width h")
    axes[1].set_ylabel("χ_eff = (R² − 1)^(-1/2)")
    axes[1].set_title("phase boundary: kernel above, feature below 1")
    axes[1].legend(fontsize=7)
    for (act, name), (t_gd, z) in nonlin.items():
        ls = "-" if name == "alignment" else "--"
        axes[2].plot(t_gd, z, ls, label=f"{act}, {name}")
    for name in ("alignment", "disalignment"):
        axes[2].plot(times, theory[name]["zeta"], "k" + ("-" if name == "alignment" else "--"), lw=0.8, alpha=0.6)
    axes[2].set_xlabel("t")
    axes[2].set_ylabel("ζ")
    axes[2].set_title("nonlinear nets (black: linear theory)")
    axes[2].legend(fontsize=6)
    fig.tight_layout()
    ctx.figure(fig, "mechanisms", "Left: ζ(t) for the four mechanisms, gradient flow (dots) on the exact 1-D solution. "
               "Middle: χ_eff from the measured final NTK ratio vs width for each scaling (dotted: predicted slope e; x: "
               "control with the ingredient unscaled). Right: ReLU, tanh and leaky-ReLU nets from the same inits.")

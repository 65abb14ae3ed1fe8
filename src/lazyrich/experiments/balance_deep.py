"""balance-deep: deep nets with weight decay, where no conserved quantity survives, become balanced
only when they learn richly.

Three-layer linear and ReLU MLPs (SP, no biases) from Gaussian (non-balanced) inits at a small scale
(rich) and at the standard scale (lazy), trained by GD with weight decay on whitened regression.
Balance of consecutive layers is read off the learning-rate-scaled singular values σ_i(W_l)/√η_l: a
balanced pair (Q_l = 0) has them equal (balancedness.md §5). Decay alone shrinks Q_l like e^{−2ρt}
(ρ = ηκ), too slowly over the horizon to balance the lazy nets; rich learning grows the top modes
from a small, hence nearly balanced, start.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..dynamics import train
from ..ensemble import build
from ..models import MLP
from ..observe.kernel import KernelDistance
from ..records import log_steps
from ..tasks import whitened_regression
from .base import Claim, Context, over_seeds, reproduction
from .common import on_device

SOURCE = "blog 'deeper networks' section; Dominé et al. 2025 (arXiv 2409.14623); shared/theory/balancedness.md §5"
QUICK = dict(d=10, c=5, n=100, width=64, lr=0.05, kappa=1e-3, steps=3000, scales={"rich": 0.1, "lazy": 1.0}, seeds=[0, 1, 2],
             top=5, activations=["linear", "relu"])
FULL = dict(QUICK, width=128, steps=10_000, seeds=list(range(4)))
# thresholds [inferred, unverified]: rich gap shrinks to ≤ these fractions of its init value, lazy keeps ≥ 0.75
RICH_FRACTION = {"linear": 0.25, "relu": 0.5}
LAZY_FRACTION = 0.75


def top_gap(sv: dict[str, np.ndarray], k: int) -> np.ndarray:
    """max over consecutive pairs and the top-k ranks of |s_i(W_l/√η_l) − s_i(W_{l+1}/√η_{l+1})| ÷ the larger top
    value; sv[name] is [..., ranks] (descending)."""
    names = sorted(sv)
    gaps = []
    for lo, up in zip(names[:-1], names[1:]):
        a, b = sv[lo][..., :k], sv[up][..., :k]
        gaps.append(np.abs(a - b).max(-1) / np.maximum(a[..., 0], b[..., 0]))
    return np.max(gaps, axis=0)


def deep_runs(cfg: dict, activation: str, device: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Train rich and lazy members together; returns per-(regime, seed, step) top-k gap and kernel distance,
    and the record steps."""
    data = on_device(whitened_regression(cfg["d"], cfg["c"], cfg["n"], seed=0), device)
    rows = [{"regime": reg, "std_scale": s, "seed": seed} for reg, s in cfg["scales"].items() for seed in cfg["seeds"]]
    ens = build(MLP((cfg["d"], cfg["width"], cfg["width"], cfg["c"]), activation), rows, scheme="sp", lr=cfg["lr"],
                weight_decay=cfg["kappa"], device=device)
    steps = log_steps(cfg["steps"], 16)
    run = train(ens, data, cfg["steps"], "gd", record=steps,
                observers=["loss", "balance", KernelDistance(weights="lr", alignment=False)])
    r = run.records()
    sv = r[r.observable == "scaled_singular_values"]
    kd = r[r.observable == "kernel_distance"].set_index(["member", "step"])["value"]
    out = []
    for (member, step), g in sv.groupby(["member", "step"]):
        per = {layer: gg.sort_values("index")["value"].to_numpy() for layer, gg in g.groupby("layer", observed=True)}
        out.append((rows[member]["regime"], rows[member]["seed"], step, float(top_gap(per, cfg["top"])),
                    float(kd[(member, step)]), *[per[f"W{l}"][: cfg["top"]] for l in (1, 2, 3)]))
    table = pd.DataFrame(out, columns=["regime", "seed", "step", "gap", "kernel_distance", "sv1", "sv2", "sv3"])
    table["diverged"] = int((run.members.status != "ok").sum())
    return table, np.array(steps)


def regime_claims(table: pd.DataFrame, cfg: dict, activation: str, regime: str, as_regime: str, prefix: str = "",
                  step: int | None = None) -> list[Claim]:
    """Claims for `as_regime` ("rich": gap shrinks; "lazy": gap stays) evaluated on the `regime` runs at
    `step` (default: the last); the measurement is the mean over seeds of each seed's gap ratio."""
    t = table[table.regime == regime].pivot(index="step", columns="seed", values="gap")
    at = t.index.max() if step is None else step
    frac = (t.loc[at] / t.iloc[0]).to_numpy()
    if as_regime == "rich":
        thr = RICH_FRACTION[activation]
        return [over_seeds(f"{prefix}{activation}-rich-balances", f"{activation}, small init (rich): the top-{cfg['top']} lr-scaled "
                           f"singular values of consecutive layers approach each other: final gap ÷ init gap ≤ {thr:g}, mean "
                           "over seeds (threshold inferred)", SOURCE, "inferred", frac, thr, 0.0, "at_most")]
    return [over_seeds(f"{prefix}{activation}-lazy-stays-apart", f"{activation}, standard init (lazy): the gap stays: final ÷ init ≥ "
                       f"{LAZY_FRACTION:g}, mean over seeds (decay alone shrinks Q by e^{{−2ηκT}} = "
                       f"{np.exp(-2 * cfg['lr'] * cfg['kappa'] * cfg['steps']):.2f}; threshold inferred)", SOURCE, "inferred",
                       frac, LAZY_FRACTION, 0.0, "at_least")]


def kd_claim(table: pd.DataFrame, activation: str, step: int) -> Claim:
    """S(0,t) rich ÷ lazy at `step`, paired by seed, mean over seeds."""
    t = table[table.step == step].pivot(index="seed", columns="regime", values="kernel_distance")
    return over_seeds(f"{activation}-regimes", f"{activation}: the small init is the rich one: kernel distance S(0,T) rich ÷ lazy "
                      "≥ 2, mean over seeds of the per-seed ratio (threshold inferred)", SOURCE, "inferred",
                      (t["rich"] / t["lazy"]).to_numpy(), 2.0, 0.0, "at_least")


@reproduction("balance-deep", "Deep linear/ReLU nets with weight decay: layers' lr-scaled singular values equalise when rich, stay apart when lazy",
              quick=QUICK, full=FULL, runtime={"quick": "9 s (1 thread; 15 s on a loaded 2-core CPU)", "full": "116 s CPU (1 thread, measured); no GPU run"},
              source=SOURCE, knobs={"width": [32, 128], "seeds": [[0, 1, 2, 3, 4, 5]]},
              decisive=["linear-rich-balances", "relu-rich-balances", "linear-lazy-stays-apart", "relu-lazy-stays-apart",
                        "linear-regimes", "relu-regimes"])
def run(ctx: Context) -> None:
    cfg = ctx.cfg
    tables, control = {}, []
    for act in cfg["activations"]:
        table, steps = deep_runs(cfg, act, ctx.device)
        tables[act] = table
        ctx.claim(f"{act}-no-divergence", f"{act}: no member diverged", SOURCE, "derived", float(table.diverged.iloc[0]), 0.0, 0.0)
        for c in regime_claims(table, cfg, act, "rich", "rich") + regime_claims(table, cfg, act, "lazy", "lazy"):
            ctx.add(c)
        ctx.add(kd_claim(table, act, cfg["steps"]))
        control += regime_claims(table, cfg, act, "lazy", "rich", prefix="lazy-init-")
        ctx.at_checkpoints([int(s) for s in steps[steps > 0][::3]] + [cfg["steps"]], lambda step, t=table, a=act: (
            regime_claims(t, cfg, a, "rich", "rich", step=step) + regime_claims(t, cfg, a, "lazy", "lazy", step=step)
            + [kd_claim(t, a, step)]))
    ctx.control("control-lazy-init", "standard (lazy) init where rich balancing is claimed: the 'rich balances' claims must "
                "fail for both activations", SOURCE, control)
    _figure(ctx, tables)


def _figure(ctx: Context, tables: dict[str, pd.DataFrame]) -> None:
    cfg = ctx.cfg
    acts = list(tables)
    fig, axes = plt.subplots(len(acts), 3, figsize=(14, 3.6 * len(acts)), squeeze=False)
    colors = {"sv1": "tab:blue", "sv2": "tab:orange", "sv3": "tab:green"}
    for i, act in enumerate(acts):
        t = tables[act]
        for j, regime in enumerate(("rich", "lazy")):
            ax = axes[i, j]
            first = t[(t.regime == regime) & (t.seed == cfg["seeds"][0])].sort_values("step")
            x = np.maximum(first.step.to_numpy(), 1)
            for col, layer in (("sv1", "W1"), ("sv2", "W2"), ("sv3", "W3")):
                ys = np.stack(first[col].to_numpy())
                ax.semilogx(x, ys[:, 0], color=colors[col], label=f"{layer}/√η")
                ax.semilogx(x, ys[:, 1:], color=colors[col], lw=0.6, alpha=0.6)
            ax.set_title(f"{act}, {regime} (init ×{cfg['scales'][regime]:g}): top-{cfg['top']} σ_i(W_l)/√η_l")
            ax.set_xlabel("step")
            ax.legend(fontsize=7)
        ax = axes[i, 2]
        for regime in ("rich", "lazy"):
            g = t[t.regime == regime].groupby("step")["gap"].mean()
            ax.loglog(np.maximum(g.index, 1), g.to_numpy(), "o-", ms=3, label=regime)
        ax.set_title(f"{act}: relative singular-value gap")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.figure(fig, "deep_balance", "Learning-rate-scaled top singular values of the three layers over training (first seed) "
               "and their largest relative gap between consecutive layers (seed mean). Rich (small init) nets bring them "
               "together; lazy (standard init) nets keep their random spread.")

"""tuned-lr-scaling: a cost-aware search finds the optimal learning rate's width law (CARBS-style tuning on
the ensemble engine; Yang & Hu's μP tables; issue 16).

A two-layer ReLU net (teacher-student, d = 8, full-batch GD, MSE) at several widths, under SP and μP: for
every (scheme, width, seed) one independent search (the sweep `search` mode: Optuna multi-objective TPE,
batches of proposals run as one ensemble per width) over the base learning rate and the init scale
(std_scale), minimising the training loss at the horizon. lr* is the best trial's lr. Per seed, the
log-log slope of lr* over width is one sample; the claims are on the mean slope over seeds with its
bootstrap (BCa) interval over the independent searches (seeds: the init and the sampler both change).

What the tables predict (derived here): under μP every layer's update is Θ(1) at a width-independent base lr
(that is what maximal update means), so μP's lr* has width exponent 0. Under another scheme S, layer l's
update at base lr η is n^{e_S(l) − e_μP(l)} times μP's, with e(l) the width exponent of layer l's
abc-invariant c_lr = m²·lr (SGD; `LayerTable` c_lr_exp); the largest stable (and, at a short horizon,
the best) base lr makes the fastest layer Θ(1): lr*_S ∝ n^{min_l (e_μP(l) − e_S(l))}. SP with SGD:
the readout gives −1 (μP's readout lr is 1/n, SP's 1), so lr*_SP ∝ 1/n. The optimum of GD on this task sits
at the edge of stability, so the law holds for the best lr, not only the largest stable one.

Cost: each study also runs a full grid (log-spaced lr × init scales, the same ranges) through an ordinary
sweep; reported is the search's cost (config-steps, counted in whole batches) to reach the grid's best
loss (within 1 %), against the grid's cost. Negative control: the μP claim checked on the SP searches and
the SP claim on the μP ones must both fail.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..param.schemes import layer_table
from ..sweep import Store, run_search, run_sweep, search_trials
from .base import Claim, Context, over_seeds, reproduction
from .common import loglog_slope

SOURCE = ("Yang & Hu 2021 (TP4) / Yang et al. 2022 (TP5, μTransfer); lazyrich.param.schemes tables; "
          "CARBS (arXiv 2306.08055) for cost-aware tuning")
NAMES = {"sp": "SP", "mup": "μP"}
QUICK = dict(widths=[32, 128, 512], seeds=8, d=8, k=2, n=32, steps=40, lr_range=[0.01, 100.0], init_range=[0.5, 2.0],
             batches=6, batch_size=8, top=3, grid_lr=17, grid_init=[0.5, 1.0, 2.0], grid_seeds=3, tolerance=0.25)
FULL = dict(QUICK, widths=[32, 64, 128, 256, 512, 1024], seeds=10, steps=100, batches=8, batch_size=16, grid_lr=25,
            grid_init=[0.5, 0.71, 1.0, 1.41, 2.0], grid_seeds=4, tolerance=0.15)


def table_exponent(scheme: str, optimizer: str = "sgd", depth: int = 2) -> float:
    """Width exponent of the best base lr of `scheme` from the parametrization tables:
    min over layers of (c_lr exponent under μP − c_lr exponent under `scheme`) (module docstring)."""
    widths = (8, *[64] * (depth - 1), 1)
    mu, s = layer_table(widths, "mup", optimizer).records(), layer_table(widths, scheme, optimizer).records()
    return float(min(m["c_lr_exp"] - r["c_lr_exp"] for m, r in zip(mu, s)))


def _base(cfg: dict, name: str) -> dict:
    return {"name": name, "task": {"name": "teacher_student", "d": cfg["d"], "k": cfg["k"], "n": cfg["n"], "seed": 0},
            "model": {"width": cfg["widths"][0], "depth": 2, "activation": "relu"}, "optimizer": {"kind": "gd"},
            "steps": cfg["steps"], "record": {"log": 4}, "observables": ["loss"]}


def search_spec(cfg: dict) -> dict:
    """One study per (scheme, width, seed): lr and init scale searched, loss and config-steps the objectives."""
    return {**_base(cfg, "tuned-lr-scaling"),
            "axes": [{"grid": {"scheme": ["sp", "mup"], "width": cfg["widths"], "seed": list(range(cfg["seeds"]))}}],
            "search": {"space": {"lr": {"loguniform": cfg["lr_range"]}, "std_scale": {"loguniform": cfg["init_range"]}},
                       "objectives": ["loss", "cost"], "cost": "config_steps",
                       "budget": {"batches": cfg["batches"], "batch_size": cfg["batch_size"]},
                       "sampler": {"kind": "tpe", "seed": 0}}}


def grid_spec(cfg: dict) -> dict:
    """The full grid over the same ranges, for every (scheme, width, seed)."""
    lo, hi = np.log10(cfg["lr_range"])
    return {**_base(cfg, "tuned-lr-grid"),
            "axes": [{"grid": {"scheme": ["sp", "mup"], "width": cfg["widths"], "seed": list(range(cfg["grid_seeds"])),
                               "lr": {"logspace": [float(lo), float(hi), cfg["grid_lr"]]}, "std_scale": cfg["grid_init"]}}]}


def losses_at(store: Path, run_id: str, step: int | None = None) -> pd.DataFrame:
    """Every member's loss at `step` (default: the horizon), diverged members at +inf, with its keys."""
    db = Store(store)
    rec = db.records(run_id)
    rec = rec[rec.observable == "loss"]
    rec = rec[rec.step == (rec.step.max() if step is None else step)].set_index("member")["value"]
    m = db.members(run_id).set_index("member")
    m["loss"] = rec.reindex(m.index).to_numpy()
    bad = (m.status == "diverged") & (m.diverged_step <= (step if step is not None else np.inf))
    m.loc[bad | ~np.isfinite(m.loss), "loss"] = np.inf
    return m


def best_lr(frame: pd.DataFrame, top: int = 1) -> pd.DataFrame:
    """lr* per (scheme, width, seed): the geometric mean lr of the `top` trials with the lowest loss (and their
    mean init scale, best loss)."""
    rows = []
    for (scheme, width, seed), g in frame.groupby(["scheme", "width", "seed"]):
        b = g.nsmallest(top, "loss")
        rows.append({"scheme": scheme, "width": width, "seed": seed, "lr": float(np.exp(np.log(b.lr).mean())),
                     "std_scale": float(b.std_scale.mean()), "loss": float(b.loss.min())})
    return pd.DataFrame(rows)


def seed_slopes(best: pd.DataFrame, scheme: str) -> np.ndarray:
    """Per seed, the log-log slope of lr* over width."""
    b = best[best.scheme == scheme]
    return np.array([loglog_slope(g.width, g.lr) for _, g in b.sort_values("width").groupby("seed")])


def slope_claims(best: pd.DataFrame, cfg: dict, run_scheme: str, claimed: str, prefix: str = "") -> list[Claim]:
    """The claimed scheme's table exponent, checked on the searches run under `run_scheme`."""
    expected = table_exponent(claimed)
    law = "drifts as n^{:.3g}".format(expected) if expected else "stays put (exponent 0)"
    return [over_seeds(f"{prefix}slope-{claimed}", f"the searched optimal lr {law} under {claimed.upper()}: mean over "
                       f"seeds of the per-seed log-log slope of lr* over widths {cfg['widths']} is the tables' "
                       f"{expected:+.3g} ± {cfg['tolerance']} (interval: bootstrap over the independent searches)",
                       SOURCE, "derived", seed_slopes(best, run_scheme), expected, cfg["tolerance"])]


def cost_to_match(trials: pd.DataFrame, grid: pd.DataFrame, cfg: dict, rel: float = 0.01) -> pd.DataFrame:
    """Per study: config-steps the search spends (in whole batches) until a trial is within `rel` of the grid's
    best loss (inf if never), and the grid's config-steps."""
    per_trial = cfg["steps"]
    grid_best = grid.groupby(["scheme", "width", "seed"])["loss"].min()
    grid_cost = cfg["grid_lr"] * len(cfg["grid_init"]) * per_trial
    rows = []
    for (scheme, width, seed), t in trials.groupby(["scheme", "width", "seed"]):
        if (scheme, width, seed) not in grid_best.index:  # the grid runs on the first grid_seeds seeds
            continue
        target = grid_best.loc[(scheme, width, seed)] * (1 + rel)
        hit = t[t.loss <= target]
        batches = (int(hit.batch.min()) + 1) if len(hit) else math.inf
        rows.append({"scheme": scheme, "width": width, "seed": seed, "search_cost": batches * cfg["batch_size"] * per_trial,
                     "grid_cost": grid_cost, "search_best": t.loss.min(), "grid_best": grid_best.loc[(scheme, width, seed)]})
    return pd.DataFrame(rows)


@reproduction("tuned-lr-scaling", "searched optimal lr vs width: drifts as 1/n under SP, stays put under μP (the tables' "
              "exponents); the search's cost vs a full grid", quick=QUICK, full=FULL,
              runtime={"quick": "21 s CPU, 1 thread (67 s wall at load 10 on the shared 2 cores)",
                       "full": "≈ 6 min CPU (estimated from the quick run's cost per config-step; not run yet)"}, source=SOURCE,
              knobs={"steps": [20, 80], "batches": [3, 9]}, decisive=["slope-sp", "slope-mup"])
def run(ctx: Context) -> None:
    cfg = ctx.cfg
    store = ctx.out / "search.duckdb"
    store.unlink(missing_ok=True)
    found = run_search(search_spec(cfg), store, device=ctx.device, progress=False)
    trials = search_trials(store, found.run_id)
    trials["loss"] = trials["loss"].where(trials.state != "diverged", np.inf)
    grid_run = run_sweep(grid_spec(cfg), store, device=ctx.device, progress=False)
    grid = losses_at(store, grid_run.run_id)
    best = best_lr(trials, cfg["top"])
    for c in slope_claims(best, cfg, "sp", "sp") + slope_claims(best, cfg, "mup", "mup"):
        ctx.add(c)
    ctx.control("control-swapped-schemes", "the μP exponent checked on the SP searches and the SP exponent on the μP "
                "searches must both fail", SOURCE, slope_claims(best, cfg, "sp", "mup", "sp-run-") +
                slope_claims(best, cfg, "mup", "sp", "mup-run-"))
    grid_best = best_lr(grid)
    ctx.over_seeds("grid-slope-sp", f"the full grid's lr* (its best point) gives the same SP exponent: mean per-seed "
                   f"slope within {cfg['tolerance']} of the tables' {table_exponent('sp'):+.3g} (grid spacing "
                   f"{np.log10(cfg['lr_range'][1] / cfg['lr_range'][0]) / (cfg['grid_lr'] - 1):.2f} decades; "
                   f"{cfg['grid_seeds']} seeds)", SOURCE, "derived", seed_slopes(grid_best, "sp"), table_exponent("sp"),
                   cfg["tolerance"])
    cost = cost_to_match(trials, grid, cfg)
    ctx.claim("search-vs-grid-loss", "median over studies of the search's best loss ÷ the full grid's best loss ≤ 1.05 "
              f"(search: {cfg['batches'] * cfg['batch_size']} trials; grid: {cfg['grid_lr'] * len(cfg['grid_init'])})",
              "CARBS (arXiv 2306.08055): cost-aware search as good as a grid at lower cost", "inferred",
              float(np.median(cost.search_best / cost.grid_best)), 1.05, 0.0, "at_most")
    for rel in (0.01, 0.05):
        c = cost_to_match(trials, grid, cfg, rel)
        hit = np.isfinite(c.search_cost)
        ratio = float(np.median(c.search_cost[hit] / c.grid_cost[hit])) if hit.any() else math.nan
        ctx.note(f"Cost at equal accuracy (the grid's best loss within {rel:.0%}): the search reached it in {hit.sum()} of "
                 f"{len(c)} studies, there with a median {ratio:.2f}× the grid's config-steps "
                 f"({int(c.grid_cost.iloc[0])} per study; the search's whole budget is "
                 f"{cfg['batches'] * cfg['batch_size'] * cfg['steps']}).")
    ctx.note(f"lr* is the geometric mean lr of a study's {cfg['top']} best trials; intervals are bootstrap (BCa) over the "
             "independent searches (one per seed: init and sampler seed both change). Each batch of a search is one "
             "ensemble per width (all studies of that width together).")
    ctx.at_checkpoints([s for s in sorted(set(Store(store).records(found.run_id).step)) if s >= cfg["steps"] // 4], lambda step: (
        slope_claims(best_lr(_trials_at(store, found.run_id, trials, step), cfg["top"]), cfg, "sp", "sp")
        + slope_claims(best_lr(_trials_at(store, found.run_id, trials, step), cfg["top"]), cfg, "mup", "mup")))
    cost.to_csv(ctx.out / "cost.csv", index=False)
    _figures(ctx, trials, best, grid_best, cost)


def _trials_at(store: Path, run_id: str, trials: pd.DataFrame, step: int) -> pd.DataFrame:
    """The trials with their mean loss at an earlier recorded `step` (for --sensitivity)."""
    m = losses_at(store, run_id, step)
    return trials.assign(loss=m.loc[trials.member, "loss"].to_numpy())


def _figures(ctx: Context, trials: pd.DataFrame, best: pd.DataFrame, grid_best: pd.DataFrame, cost: pd.DataFrame) -> None:
    cfg = ctx.cfg
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    for i, scheme in enumerate(("sp", "mup")):
        t = trials[(trials.scheme == scheme) & (trials.seed == 0)]
        for j, (w, g) in enumerate(t.groupby("width")):
            ok = np.isfinite(g.loss)
            ax[i].scatter(g.lr[ok], g.loss[ok], s=10, color=f"C{j}", label=f"width {w}")
            ax[i].scatter(g.lr[~ok], np.full((~ok).sum(), g.loss[ok].max() * 3 if ok.any() else 1), marker="x", s=12,
                          color=f"C{j}")
            b = best[(best.scheme == scheme) & (best.width == w) & (best.seed == 0)]
            ax[i].scatter(b.lr, b.loss, s=80, facecolors="none", edgecolors=f"C{j}")
        ax[i].set(xscale="log", yscale="log", xlabel="base lr", ylabel=f"train loss at step {cfg['steps']}",
                  title=f"{NAMES[scheme]}: search trials (seed 0; × diverged)")
        ax[i].legend(fontsize=7)
    for i, scheme in enumerate(("sp", "mup")):
        b = best[best.scheme == scheme]
        ax[2].scatter(b.width * (1 + 0.04 * (b.seed - b.seed.mean())), b.lr, s=12, color=f"C{i}", label=f"{NAMES[scheme]} search lr*")
        g = grid_best[grid_best.scheme == scheme].groupby("width").lr.apply(lambda v: np.exp(np.log(v).mean()))
        ax[2].plot(g.index, g.values, "s", mfc="none", color=f"C{i}", label=f"{NAMES[scheme]} grid lr* (geo. mean over seeds)")
        w = np.array(cfg["widths"], float)
        ref = np.exp(np.log(b.lr).mean()) * (w / np.exp(np.log(w).mean())) ** table_exponent(scheme)
        ax[2].plot(w, ref, "--", color=f"C{i}", lw=1, label=f"tables: n^{table_exponent(scheme):+.0f}")
    ax[2].set(xscale="log", yscale="log", xlabel="width n", ylabel="optimal base lr", title="lr* vs width")
    ax[2].set_xticks(cfg["widths"], [str(w) for w in cfg["widths"]])
    ax[2].minorticks_off()
    ax[2].legend(fontsize=6)
    ctx.figure(fig, "tuned_lr", "Left, middle: loss at the horizon of every search trial vs its lr (seed 0), circles the "
               "best; right: the searched optimal lr per seed vs width, the full grid's, and the tables' exponents.")
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for i, scheme in enumerate(("sp", "mup")):
        t = trials[trials.scheme == scheme].sort_values(["width", "seed", "batch"])
        best_so_far = t.groupby(["width", "seed", "batch"]).loss.min().groupby(["width", "seed"]).cummin()
        grid = cost[cost.scheme == scheme].set_index(["width", "seed"]).grid_best
        excess = (best_so_far / grid.reindex(best_so_far.index.droplevel("batch")).to_numpy()).groupby("batch").median()
        steps = (excess.index + 1) * cfg["batch_size"] * cfg["steps"]
        ax.plot(steps, excess.values, "o-", color=f"C{i}", label=f"{NAMES[scheme]} search")
    ax.axvline(float(cost.grid_cost.iloc[0]), color="k", ls=":", label="full grid's cost")
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set(xlabel="config-steps per study", ylabel="best loss ÷ grid's best (median)", yscale="log")
    ax.legend(fontsize=7)
    ctx.figure(fig, "search_cost", "Best loss found so far by the search, relative to the full grid's best, against the "
               "config-steps spent (median over studies); the dotted line is the grid's cost.")

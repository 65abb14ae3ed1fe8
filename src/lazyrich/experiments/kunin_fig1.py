"""kunin-fig1: Kunin et al. 2024 ("Get rich quick", arXiv 2406.06158) Fig. 1 and Fig. 5b.

Teacher–student two-layer ReLU nets over a grid of init scale τ and per-neuron imbalance δ
(δ = a² − ||w||², upstream δ > 0). Authors' setup (shared/theory/experiments.md §1.1): d = 100,
m = 50 (25 directions duplicated with flipped readouts, f(x; θ₀) ≡ 0), k = 3 teacher neurons,
n = 1000 sphere points, loss mean (f − y)² without ½, full-batch GD with lr 5e-3/τ², float64.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..dynamics import train
from ..ensemble import build, predict
from ..models import MLP
from ..observe.base import Observation, State
from ..observe.kernel import KernelDistance
from ..tasks import teacher_student
from ..errors import require
from .base import Claim, Context, ordering, over_seeds, reproduction
from .intervals import MIN_SAMPLES
from .common import grid, heatmap, on_device, values

SOURCE = "Kunin et al. 2024 (arXiv 2406.06158) Fig. 1, Fig. 5b, App. D.1; shared/theory/experiments.md §1.1"
FIG1A = dict(d=2, width=50, k=3, n=20, teacher_seed=15, student_seed=100, lr=1e-2, steps=10_000,
             cells=[(0.1, 0.0), (2.0, 0.0), (0.1, 0.9999), (0.1, -0.9999)])
QUICK = dict(d=100, width=50, k=3, n=1000, n_test=2000, taus=[0.1, 2.0], deltas=[-1.0, -0.5, 0.0, 0.5, 1.0], seeds=[100, 101, 102, 103],
             lr0=5e-3, steps=1000, checkpoints=[100, 1000], fig1a=FIG1A)
FULL = dict(d=100, width=50, k=3, n=1000, n_test=10_000, taus=np.logspace(-1, 0.3, 17).round(6).tolist(),
            deltas=np.linspace(-1, 1, 17).round(6).tolist(), seeds=list(range(100, 116)), lr0=5e-3, steps=100_000,
            checkpoints=[100, 1000, 10_000, 100_000], fig1a=dict(FIG1A, lr=1e-4, steps=1_000_000))
# grid maxima of seed-averaged values printed by the authors' plot_fig1b.ipynb (experiments.md §1.1)
PAPER_MAX_TEST_LOSS = {100: 0.01355, 1000: 0.00790, 10_000: 0.00391, 100_000: 0.00490}


@dataclass
class NeuronVectors:
    """Observer: |a_i| w_i of every hidden neuron (Fig. 1a trajectories), [E, m·d]."""

    name: str = "neuron_vectors"

    def __call__(self, s: State) -> Iterator[Observation]:
        w, a = s.params["W1"], s.params["W2"][:, 0, :]
        yield Observation("neuron_vector", "W1", (a.abs().unsqueeze(-1) * w).flatten(1))
        yield Observation("readout", "W2", a)


def _grid_members(cfg: dict, seed: int) -> pd.DataFrame:
    return pd.DataFrame([{"tau": float(t), "delta": float(dl), "seed": seed, "lr": cfg["lr0"] / float(t) ** 2}
                         for t in cfg["taus"] for dl in cfg["deltas"]])


def run_grid(cfg: dict, device: str) -> tuple[pd.DataFrame, dict[str, float]]:
    """Train the τ×δ grid, one ensemble per seed (teacher, base student and data fixed by the seed).
    Returns the records and init checks (max |f(x;θ₀)|, max relative δ error)."""
    parts, f0, derr = [], 0.0, 0.0
    checkpoints = sorted({0, *cfg["checkpoints"], cfg["steps"]})
    for seed in cfg["seeds"]:
        data = on_device(teacher_student(cfg["d"], cfg["k"], cfg["n"], cfg["n_test"], seed=seed), device)
        ens = build(MLP((cfg["d"], cfg["width"], 1), "relu"), _grid_members(cfg, seed), init="kunin",
                    loss_scale=1.0, device=device)
        f0 = max(f0, float(predict(ens, ens.params, data.x).abs().max()))
        delta_k = ens.params["W2"][:, 0, :] ** 2 - ens.params["W1"].pow(2).sum(-1)
        want = torch.tensor(ens.members["delta"].to_numpy(float), dtype=delta_k.dtype, device=device).reshape(-1, 1)
        derr = max(derr, float(((delta_k - want).abs() / want.abs().clamp(min=1)).max()))
        run = train(ens, data, cfg["steps"], "gd", record=checkpoints,
                    observers=["loss", KernelDistance(weights="unit", alignment=False), "hamming", "param_distance"],
                    kernel="fused")
        parts.append(run.records())
    return pd.concat(parts, ignore_index=True), {"f0": f0, "delta_error": derr}


def run_fig1a(cfg: dict, device: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """d = 2 trajectories of |a_i| w_i for the four (τ, δ) cells of Fig. 1a. Returns records, the
    teacher's directions [k, 2] and signs [k]."""
    data = teacher_student(cfg["d"], cfg["k"], cfg["n"], n_test=1, seed=cfg["teacher_seed"])
    w_t, a_t = _teacher(cfg["d"], cfg["k"], cfg["teacher_seed"])
    rows = [{"tau": t, "delta": dl, "seed": cfg["student_seed"], "lr": cfg["lr"]} for t, dl in cfg["cells"]]
    ens = build(MLP((cfg["d"], cfg["width"], 1), "relu"), rows, init="kunin", loss_scale=1.0, device=device)
    steps = cfg["steps"]
    record = sorted({0, steps, *np.unique(np.round(np.logspace(0, np.log10(steps), 60)).astype(int)).tolist()})
    run = train(ens, on_device(data, device), steps, "gd", record=record, observers=["loss", NeuronVectors()])
    return run.records(), w_t, a_t


def _teacher(d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The teacher of `teacher_student(d, k, seed=seed)` (same generator draws, first in order)."""
    gen = torch.Generator().manual_seed(int(seed))
    w = torch.randn(k, d, generator=gen, dtype=torch.float64)
    w = w / w.norm(dim=1, keepdim=True)
    a = torch.sign(torch.randn(k, generator=gen, dtype=torch.float64))
    a[a == 0] = 1
    return w.numpy(), a.numpy()


def aligned_fraction(v: np.ndarray, w_teacher: np.ndarray, cos_min: float = 0.99) -> float:
    """Share of the total norm of the neuron vectors v [m, d] lying within arccos(cos_min) of a teacher direction."""
    norms = np.linalg.norm(v, axis=1)
    cos = (v / np.maximum(norms, 1e-300)[:, None]) @ w_teacher.T
    return float(norms[cos.max(1) >= cos_min].sum() / norms.sum())


@dataclass(frozen=True)
class BestCell:
    """The τ×δ cell with the lowest (or, `lowest` false, the highest) seed-averaged value, and how sure that is.

    `gap` = log10(best upstream (δ > 0) cell's mean / best δ ≤ 0 cell's mean): the best cell is upstream when
    gap < 0 (lowest) or gap > 0 (highest). [`gap_lo`, `gap_hi`]: percentile bootstrap interval over seeds (a
    seed fixes teacher, data and student directions for every cell, so whole seeds are resampled); `p_up`:
    share of the resamples whose best cell is upstream. Fewer than MIN_SAMPLES (3) seeds: no interval."""

    tau: float
    delta: float
    mean: float
    up: tuple[float, float, float]     # (τ, δ, mean) of the best upstream cell
    other: tuple[float, float, float]  # (τ, δ, mean) of the best cell with δ ≤ 0
    gap: float
    gap_lo: float
    gap_hi: float
    p_up: float
    seeds: int
    level: float
    lowest: bool = True

    @property
    def verdict(self) -> str:
        """'upstream' (interval on the upstream side of 0), 'not upstream' (other side) or 'undecided' (straddles 0)."""
        lo, hi = (self.gap_lo, self.gap_hi) if self.lowest else (-self.gap_hi, -self.gap_lo)
        return "upstream" if hi < 0 else "not upstream" if lo > 0 else "undecided"


def best_cell(per_seed: pd.DataFrame, lowest: bool = True, resamples: int = 2000, level: float = 0.95,
              rng: int = 0) -> BestCell:
    """Best cell of a table with columns seed, tau, delta, value (one positive value per seed and cell, every
    cell in every seed), with the bootstrap interval of the upstream-vs-rest gap (`BestCell`)."""
    wide = per_seed.pivot_table(index="seed", columns=["tau", "delta"], values="value", aggfunc="mean")
    require(not wide.isna().to_numpy().any(), "best_cell: every (tau, delta) cell needs a value for every seed")
    cells = np.array(wide.columns.tolist(), float).reshape(-1, 2)  # [C, 2]
    up = cells[:, 1] > 0
    require(up.any() and (~up).any(), "best_cell: the grid needs cells with delta > 0 and with delta <= 0")
    v = wide.to_numpy(float) * (1 if lowest else -1)  # [S, C]: always pick the minimum

    def gap(m: np.ndarray) -> np.ndarray:  # m: [..., C] signed cell means
        return np.log10(m[..., up].min(-1) / m[..., ~up].min(-1))

    mean = v.mean(0)
    i = int(np.argmin(mean))
    iu, io = (int(np.flatnonzero(mask)[np.argmin(mean[mask])]) for mask in (up, ~up))
    with np.errstate(invalid="ignore", divide="ignore"):
        g = float(gap(mean))
        if len(v) >= MIN_SAMPLES:  # percentile bootstrap: resample whole seeds (rows) with replacement
            boot = gap(v[np.random.default_rng(rng).integers(0, len(v), (resamples, len(v)))].mean(1))
            lo, hi = (float(q) for q in np.quantile(boot, [(1 - level) / 2, (1 + level) / 2]))
            p_up = float(((boot < 0) if lowest else (boot > 0)).mean())
        else:
            lo, hi, p_up = -np.inf, np.inf, float((g < 0) if lowest else (g > 0))
    sign = 1 if lowest else -1
    return BestCell(float(cells[i, 0]), float(cells[i, 1]), sign * float(mean[i]),
                    (float(cells[iu, 0]), float(cells[iu, 1]), sign * float(mean[iu])),
                    (float(cells[io, 0]), float(cells[io, 1]), sign * float(mean[io])), g, lo, hi, p_up, len(v), level, lowest)


def _seed_table(r: pd.DataFrame, observable: str, step: int, layer: str = "") -> pd.DataFrame:
    """seed × (τ, δ) table of one observable at `step`."""
    return values(r, observable, layer, step).pivot_table(index="seed", columns=["tau", "delta"], values="value")


def _best_holds(tables: list[pd.DataFrame], test: Callable[[float, float], bool]) -> Callable[[np.ndarray], bool]:
    """holds(idx) for a bootstrap resample idx of the seeds: `test(τ, δ)` of the best cell of the resampled
    seed-mean test loss, at every table (checkpoint) at once."""
    def holds(idx: np.ndarray) -> bool:
        return all(test(*t.columns[int(np.argmin(t.to_numpy()[idx].mean(0)))]) for t in tables)
    return holds


def grid_claims(r: pd.DataFrame, cfg: dict, prefix: str = "", steps: list[int] | None = None,
                last: int | None = None) -> list[Claim]:
    """The ordering claims of Fig. 1b / 5b on a records table (also used on the δ-flipped control).

    best-cell-*: the best cell of the seed-mean test loss, at every checkpoint in `steps` at once (default: the
    paper's panels ≥ 10³ recorded here), as an ordering over bootstrap resamples of the seeds — one checkpoint
    never decides it alone. hamming/param ratios at step `last` (default: the last step), over seeds."""
    tmin = min(cfg["taus"])
    dpos = min(d for d in cfg["deltas"] if d > 0)
    dmax, dmin = max(cfg["deltas"]), min(cfg["deltas"])
    last = cfg["steps"] if last is None else last
    if steps is None:  # the paper's panels from 10³ on (a run shorter than that: its last step)
        steps = [s for s in cfg["checkpoints"] if s >= 1000] or [cfg["steps"]]
    tabs = [_seed_table(r, "test_loss", s) for s in steps]
    seeds = len(tabs[0])
    best = [t.columns[int(np.argmin(t.to_numpy().mean(0)))] for t in tabs]
    at = f"step {steps[0]}" if len(steps) == 1 else f"every checkpoint in {steps}"
    out = [ordering(f"{prefix}best-cell-upstream", f"at {at} the seed-mean test loss is lowest at an upstream init: δ of "
                    f"the best cell ≥ {dpos:g} (smallest δ > 0 of the grid); measured: smallest such δ over the checkpoints, "
                    "verdict by seed resamples in which it holds at all of them", SOURCE, "paper",
                    min(b[1] for b in best), dpos, 0.0, "at_least", seeds, _best_holds(tabs, lambda t, d: d >= dpos))]
    if not prefix:
        out.append(ordering("best-cell-small-tau", f"at {at} the best cell has small τ (≤ 0.2; experiments.md §1.1); "
                            "measured: largest such τ", SOURCE, "paper", max(b[0] for b in best), 0.2, 0.0, "at_most",
                            seeds, _best_holds(tabs, lambda t, d: t <= 0.2)))
    ham = _seed_table(r, "hamming_neurons", last, "W1")
    pdist = _seed_table(r, "param_distance", last)
    out.append(over_seeds(f"{prefix}hamming-up-vs-down", f"Fig. 5b at τ = {tmin:g}, step {last}: activation-pattern change "
                          f"H(δ={dmax:g}) / H(δ={dmin:g}) ≥ 2, mean over seeds of the per-seed ratio (upstream changes many "
                          "gates; threshold inferred)", SOURCE, "inferred",
                          (ham[(tmin, dmax)] / ham[(tmin, dmin)]).to_numpy(), 2.0, 0.0, "at_least"))
    out.append(over_seeds(f"{prefix}param-up-vs-down", f"Fig. 5b at τ = {tmin:g}, step {last}: parameter distance "
                          f"P(δ={dmax:g}) / P(δ={dmin:g}) < 1, mean over seeds of the per-seed ratio (downstream needs larger "
                          "parameter movement)", SOURCE, "paper", (pdist[(tmin, dmax)] / pdist[(tmin, dmin)]).to_numpy(),
                          1.0, 0.0, "at_most"))
    return out


@reproduction("kunin-fig1", "Kunin et al. Fig. 1/5b: teacher-student ReLU τ×δ grid, upstream small τ learns rich and fast",
              quick=QUICK, full=FULL, runtime={"quick": "39 s CPU time, 1 thread (4 seeds; 2-core CPU shared with other jobs)",
                                               "full": "not run here: 4624 members × 10⁵ steps (paper: 90 min on 360 cores); est. hours on one GPU"},
              source=SOURCE, knobs={"d": [20, 50], "seeds": [list(range(100, 106))]},
              decisive=["best-cell-upstream", "best-cell-small-tau", "hamming-up-vs-down", "param-up-vs-down"])
def run(ctx: Context) -> None:
    cfg = ctx.cfg
    r, init = run_grid(cfg, ctx.device)
    ctx.claim("init-zero-function", "symmetrised init: max |f(x; θ₀)| over the training set", SOURCE, "derived",
              init["f0"], 0.0, 1e-12)
    ctx.claim("init-delta", "every neuron starts at the requested δ: max |a² − ||w||² − δ| / max(1, |δ|)", SOURCE,
              "derived", init["delta_error"], 0.0, 1e-12)
    s_min = float(r[r.observable == "kernel_distance"]["value"].min())
    ctx.claim("kernel-distance-nonnegative", "S(0,t) ≥ −1e-12 at every checkpoint (float64 kernel features)", SOURCE,
              "derived", s_min, 0.0, 1e-12, "at_least")
    tmin, tmax = min(cfg["taus"]), max(cfg["taus"])
    kd = _seed_table(r, "kernel_distance", cfg["steps"])
    ups = [dl for dl in cfg["deltas"] if dl >= 0]
    ctx.over_seeds("kernel-lazy-large-tau", f"final S at τ = {tmax:g} below S at τ = {tmin:g} for every δ ≥ 0: per seed the "
                   "max over δ ≥ 0 of the ratio, mean over seeds < 1 (experiments.md §1.1 ordering)", SOURCE, "paper",
                   np.max([kd[(tmax, dl)] / kd[(tmin, dl)] for dl in ups], axis=0), 1.0, 0.0, "at_most")
    ctx.over_seeds("kernel-small-large-tau", f"final S at τ = {tmax:g} is small: per seed the max over δ, mean over seeds "
                   "≤ 0.05 (bottom of the paper's 0–0.6 colour scale; threshold inferred)", SOURCE, "inferred",
                   kd[[c for c in kd.columns if c[0] == tmax]].max(axis=1).to_numpy(), 0.05, 0.0, "at_most")
    main = grid_claims(r, cfg)
    for c in main:
        ctx.add(c)
    recorded = sorted(s for s in set(cfg["checkpoints"]) | {cfg["steps"]} if s > 0)
    ctx.at_checkpoints(recorded, lambda step: grid_claims(r, cfg, steps=[step], last=step))
    if not ctx.quick:
        for step, ref in PAPER_MAX_TEST_LOSS.items():
            t = _seed_table(r, "test_loss", step)
            ctx.over_seeds(f"max-test-loss-{step}", f"grid maximum of seed-averaged test loss at step {step} within ±20 % "
                           "of the authors' notebook (threshold inferred); samples: the per-seed values of the maximal cell",
                           SOURCE, "inferred", t[t.mean().idxmax()].to_numpy(), ref, 0.2, relative=True)
    # Negative control: δ's sign flipped. The grid is symmetric in δ, so the control's run at label δ is
    # exactly the nominal run at −δ (same seed, same init with a ↔ w scales swapped): relabel, don't retrain.
    # Only claims that hold here can be controlled: a flipped claim that already fails unflipped says nothing.
    flipped = r.assign(delta=-r["delta"])
    held = {c.id for c in main if c.verdict == "pass"}
    switched = grid_claims(flipped, cfg, prefix="flipped-")
    decisive = [c for c in switched if c.id.removeprefix("flipped-") in held] or switched
    ctx.control("control-delta-flipped", "with δ's sign flipped (downstream inits labelled upstream) the upstream claims "
                "that pass here must all fail", SOURCE, decisive)
    ctx.note("Negative control: the δ grid is symmetric, so the flipped pipeline's run at δ is the nominal run at −δ; "
             "its records are relabelled instead of retrained (identical numbers). It flips the claims that pass here "
             f"({', '.join(sorted(held)) or 'none'}).")
    ctx.note("Test loss over checkpoints and d: `lazyrich reproduce kunin-fig1 --sensitivity` maps best-cell-upstream at "
             "every recorded checkpoint and at d = 20, 50; the larger study (examples/kunin_test_loss.py, "
             "docs/reproductions.md) measures where the upstream corner has the smallest test loss.")
    # Fig. 1a: d = 2 trajectories
    a_cfg = cfg["fig1a"]
    ra, w_t, a_t = run_fig1a(a_cfg, ctx.device)
    vec = ra[ra.observable == "neuron_vector"]
    last = vec.step.max()
    frac = {}
    for e, (tau, delta) in enumerate(a_cfg["cells"]):
        v = vec[(vec.member == e) & (vec.step == last)].sort_values("index")["value"].to_numpy().reshape(-1, a_cfg["d"])
        frac[(tau, delta)] = aligned_fraction(v, w_t)
    up_cell, down_cell = a_cfg["cells"][2], a_cfg["cells"][3]
    ctx.claim("fig1a-upstream-aligned", f"Fig. 1a, d = 2: at τ = {up_cell[0]:g}, δ = {up_cell[1]:g} the neurons align with the "
              "teacher: share of Σ|a_i|·||w_i|| within 8° (cos ≥ 0.99) of a teacher direction ≥ 0.8 (threshold inferred)",
              SOURCE, "inferred", frac[up_cell], 0.8, 0.0, "at_least")
    ctx.claim("fig1a-downstream-not-aligned", f"Fig. 1a: at τ = {down_cell[0]:g}, δ = {down_cell[1]:g} (downstream) the "
              "neurons do not align within the same time: aligned share below the upstream one", SOURCE, "paper",
              frac[down_cell], frac[up_cell], 0.0, "at_most")
    _figures(ctx, r, ra, w_t, a_t, a_cfg)


def _figures(ctx: Context, r: pd.DataFrame, ra: pd.DataFrame, w_t: np.ndarray, a_t: np.ndarray, a_cfg: dict) -> None:
    cfg = ctx.cfg
    panels = [("test_loss", "", "test loss", True), ("kernel_distance", "", "kernel distance S(0,t)", False),
              ("hamming_neurons", "W1", "Hamming distance H", False), ("param_distance", "", "parameter distance", False)]
    steps = [s for s in cfg["checkpoints"]]
    fig, axes = plt.subplots(len(steps), 4, figsize=(16, 3.4 * len(steps)), squeeze=False)
    for i, step in enumerate(steps):
        for ax, (obs, layer, title, log) in zip(axes[i], panels):
            heatmap(ax, grid(r, obs, "delta", "tau", layer=layer, step=step), f"{title}, step {step}", "τ (init scale)",
                    "δ (upstream > 0)", log=log)
    fig.tight_layout()
    ctx.figure(fig, "fig1b_grid", "Fig. 1b / 5b: seed-averaged test loss, kernel distance, Hamming and parameter distance "
               "over the τ×δ grid at each checkpoint (rows). Paper: lowest test loss at small τ, large δ; S ≈ 0 at large τ.")
    vec = ra[ra.observable == "neuron_vector"]
    fig, axes = plt.subplots(1, len(a_cfg["cells"]), figsize=(4 * len(a_cfg["cells"]), 4), squeeze=False)
    m = a_cfg["width"]
    for e, (ax, (tau, delta)) in enumerate(zip(axes[0], a_cfg["cells"])):
        v = vec[vec.member == e].sort_values(["step", "index"])
        traj = v["value"].to_numpy().reshape(-1, m, a_cfg["d"])
        a0 = ra[(ra.observable == "readout") & (ra.member == e) & (ra.step == 0)].sort_values("index")["value"].to_numpy()
        sign = np.sign(a0)
        lim = 1.15 * np.abs(traj).max()
        for i in range(m):
            ax.plot(traj[:, i, 0], traj[:, i, 1], color="tab:red" if sign[i] > 0 else "tab:blue", lw=0.6, alpha=0.7)
        for j in range(len(a_t)):
            ax.arrow(0, 0, 0.9 * lim * w_t[j, 0], 0.9 * lim * w_t[j, 1], color="k", width=0.01 * lim,
                     length_includes_head=True)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(f"τ = {tau:g}, δ = {delta:+.4g}")
    fig.tight_layout()
    ctx.figure(fig, "fig1a_trajectories", "Fig. 1a (d = 2): trajectories of |a_i| w_i (red: positive, blue: negative "
               "initial readout), teacher directions as black arrows (length not to scale). Upstream small τ aligns to the teacher; "
               "downstream small τ stays near its init within the same time.")

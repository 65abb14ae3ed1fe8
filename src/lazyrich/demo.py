"""`lazyrich demo`: a τ×δ sweep of two-layer ReLU students (Kunin et al. Fig. 1 in miniature), one ensemble.

Every seed draws its own teacher, training set and student directions (as in the paper's 16 seeds), so the
summary can say how sure its best cell is: a bootstrap interval over seeds (`kunin_fig1.best_cell`), and
whether that agrees with Kunin et al.'s "this [small-τ, upstream] initialization also leads to the smallest
test loss" at each recorded step.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pandas as pd
import torch

from .dynamics import train
from .ensemble import build
from .models import MLP
from .observe.base import Data
from .observe.kernel import KernelDistance
from .records import log_steps
from .tasks import teacher_student

if TYPE_CHECKING:
    from .experiments.kunin_fig1 import BestCell

FULL = dict(d=20, h=50, k=3, n=200, n_test=1000, taus=np.logspace(-1, 0.3, 5), deltas=np.linspace(-1, 1, 7), seeds=4,
            steps=3000)
QUICK = dict(d=10, h=20, k=2, n=60, n_test=500, taus=np.logspace(-1, 0.3, 3), deltas=np.linspace(-1, 1, 3), seeds=3,
             steps=300)
LR0 = 0.02  # lr = LR0 / τ² as in Kunin et al. (their 5e-3 at 10⁵ steps; we run fewer steps)
PAPER = "Kunin et al.: smallest test loss at small τ, upstream δ > 0"
STUDY = "docs/reproductions.md, kunin-fig1: test loss"


def members(cfg: dict) -> pd.DataFrame:
    rows = [{"tau": float(t), "delta": float(d), "seed": s, "lr": LR0 / float(t) ** 2}
            for s in range(cfg["seeds"]) for t in cfg["taus"] for d in cfg["deltas"]]
    return pd.DataFrame(rows)


def seed_data(cfg: dict, seeds: list[int]) -> Data:
    """Per-member data [E, n, d]: member e sees the teacher and training/test sets of its seed."""
    sets = {s: teacher_student(cfg["d"], cfg["k"], cfg["n"], n_test=cfg["n_test"], seed=s) for s in sorted(set(seeds))}
    stack = lambda f: torch.stack([getattr(sets[s], f) for s in seeds])  # noqa: E731
    return Data(stack("x"), stack("y"), stack("x_test"), stack("y_test"))


def _per_seed(records: pd.DataFrame, observable: str, step: int) -> pd.DataFrame:
    """Values of one observable at `step`, only cells present in every seed (a diverged member drops its cell)."""
    r = records[(records.observable == observable) & (records.layer == "") & (records["index"] == 0) & (records.step == step)]
    r = r[["seed", "tau", "delta", "value"]]
    seeds = r.groupby(["tau", "delta"]).seed.transform("nunique")
    return r[seeds == r.seed.nunique()]


def _spans(steps: list[int], verdicts: list[str], want: str) -> str:
    """'38–338, 3000' for the runs of consecutive recorded steps with verdict `want`."""
    out, run = [], []
    for s, v in zip(steps, verdicts):
        if v == want:
            run.append(s)
        elif run:
            out.append(run)
            run = []
    if run:
        out.append(run)
    return ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in out)


def summary_lines(records: pd.DataFrame) -> list[str]:
    """What the demo found, from its records (columns seed, tau, delta, step, observable, layer, index, value;
    diverged members already removed): the best test-loss cell at the last step with its seed interval, whether
    that agrees with Kunin et al. (and why not, where it does not), the verdict at every recorded step, and the
    cell with the largest kernel distance with its interval."""
    from .experiments.kunin_fig1 import best_cell

    last = int(records.step.max())
    steps = sorted(int(s) for s in records[records.observable == "test_loss"].step.unique() if s > 0)
    b = best_cell(_per_seed(records, "test_loss", last))
    ci = f"95% CI [{b.gap_lo:+.2f}, {b.gap_hi:+.2f}]" if np.isfinite(b.gap_lo) else "no interval with 1 seed"
    lines = [f"lowest test loss at step {last} ({b.seeds} seeds): τ={b.tau:.3g}, δ={b.delta:+.3g} ({b.mean:.2g}); "
             f"best upstream τ={b.up[0]:.3g}, δ={b.up[1]:+.3g} ({b.up[2]:.2g}) vs best δ ≤ 0 τ={b.other[0]:.3g}, "
             f"δ={b.other[1]:+.3g} ({b.other[2]:.2g}): log10 ratio {b.gap:+.2f}, {ci} over seeds; "
             f"upstream best in {b.p_up:.0%} of seed resamples"]
    by_step = [best_cell(_per_seed(records, "test_loss", s)).verdict for s in steps]
    up_at, down_at = _spans(steps, by_step, "upstream"), _spans(steps, by_step, "not upstream")
    where = "; ".join(x for x in (f"upstream best (interval below 0) at steps {up_at}" if up_at else "",
                                  f"δ ≤ 0 best (interval above 0) at steps {down_at}" if down_at else "") if x)
    if b.verdict == "upstream":
        lines.append(f"agrees with {PAPER} at step {last}" + (f" ({where})" if where else ""))
    elif b.verdict == "not upstream":
        lines.append(f"does not agree with {PAPER} at step {last}: " + (f"{where}. " if where else "") + _why(records, b, last))
    else:
        lines.append(f"undecided against {PAPER} at step {last}: the seed interval straddles 0 (more seeds needed)"
                     + (f"; {where}" if where else ""))
    kd = _per_seed(records, "kernel_distance", last)
    if len(kd):
        k = best_cell(kd, lowest=False)
        kci = f"95% CI [{k.gap_lo:+.2f}, {k.gap_hi:+.2f}]" if np.isfinite(k.gap_lo) else "no interval with 1 seed"
        small = k.tau == float(kd.tau.min())
        agree = "agrees with" if k.verdict == "upstream" and small else "undecided against" if k.verdict == "undecided" else "does not agree with"
        lines.append(f"largest kernel distance S(0,{last}) at τ={k.tau:.3g}, δ={k.delta:+.3g} ({k.mean:.2g}); best upstream "
                     f"{k.up[2]:.2g} vs best δ ≤ 0 {k.other[2]:.2g}: log10 ratio {k.gap:+.2f}, {kci}; {agree} Kunin et al. "
                     "(rapid rich learning at small τ, upstream)")
    return lines


def _why(records: pd.DataFrame, b: "BestCell", last: int) -> str:
    """Why the best cell is not upstream, from the train loss of the two competing cells at `last`."""
    train = _per_seed(records, "loss", last).groupby(["tau", "delta"]).value.mean()
    if not len(train):
        return f"see {STUDY}"
    up, best = float(train[b.up[:2]]), float(train[(b.tau, b.delta)])
    fit = (f"Upstream fits the training set further (train loss {up:.2g} vs {best:.2g}) yet tests worse: its test loss "
           "stalls while the δ ≤ 0 cells keep improving" if up < best else
           f"Upstream also fits the training set less far (train loss {up:.2g} vs {best:.2g})")
    return (f"{fit}. Kunin et al.'s claim holds early in training, not later (as measured at the paper's d = 100, "
            f"n = 1000: {STUDY})")


def run_demo(out: Path, quick: bool = False) -> Iterator[str]:
    """Train the grid, write records (Parquet) and a heatmap figure; yield lines to print."""
    cfg = QUICK if quick else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    mem = members(cfg)
    data = seed_data(cfg, mem.seed.tolist())
    net = MLP((cfg["d"], cfg["h"], 1), "relu")
    # Kunin's code: loss = mean (f − y)² without ½ (loss_scale=1), same lr for both layers
    ens = build(net, mem, scheme="sp", init="kunin", loss_scale=1.0)
    observers = ["loss", "conserved", KernelDistance(weights="unit", alignment=False), "hamming", "param_distance"]
    run = train(ens, data, cfg["steps"], "gd", record=log_steps(cfg["steps"], 12), observers=observers, kernel="fused")
    records = run.records()
    status = run.members
    records = records.merge(status[["status"]].rename_axis("member").reset_index(), on="member")
    records_path = out / "records.parquet"
    records.to_parquet(records_path, index=False)
    fig_path = out / "demo.png"
    from .report.demo_figure import heatmaps

    ok = records[records.status == "ok"]
    heatmaps(ok, fig_path)
    found = summary_lines(ok)
    elapsed = time.perf_counter() - t0
    from .report.html import write_report

    config = {k: (list(map(float, v)) if isinstance(v, np.ndarray) else v) for k, v in cfg.items()}
    report = write_report(out / "report.html", "lazyrich demo: τ×δ grid of two-layer ReLU students",
                          figures=[(fig_path, "Seed-averaged final test loss, δ_k drift, kernel distance, Hamming and "
                                    "parameter distance over τ (init scale) and δ (upstream > 0).")],
                          config={**config, "lr": f"{LR0} / tau**2", "loss": "mean (f - y)^2 (Kunin et al.'s code, loss_scale=1)"},
                          runtime=elapsed, summary=f"{len(mem)} members trained as one ensemble. " + " ".join(found))
    yield (f"trained {len(mem)} members ({len(cfg['taus'])} τ × {len(cfg['deltas'])} δ × {cfg['seeds']} seeds) for "
           f"{cfg['steps']} GD steps as one ensemble in {elapsed:.1f} s")
    n_div = int((status.status == "diverged").sum())
    if n_div:
        yield f"{n_div} member(s) diverged (recorded with status and step; left out of the figure and the summary)"
    yield f"records ({len(records)} rows): {records_path}"
    yield f"figure: {fig_path}"
    yield f"report: {report}"
    yield from found

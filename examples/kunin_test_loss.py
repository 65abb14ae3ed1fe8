"""Kunin et al. Fig. 1b: does the upstream corner (small τ, δ > 0) give the smallest test loss, and at which
checkpoints and input sizes d? Best cell of the seed-averaged test loss over τ × δ at every checkpoint, with a
bootstrap interval over seeds of gap = log10(best upstream mean / best δ ≤ 0 mean) (`kunin_fig1.best_cell`).

Authors' setup (shared/theory/experiments.md §1.1): h = 50 (25 directions, flipped copies), k = 3 teacher
neurons, n = 1000 sphere points, loss mean (f − y)² without ½, full-batch GD, lr 5e-3/τ², float64, 17 τ ×
17 δ × 16 seeds, 10⁵ steps, test set 10 000 points. The sizes here shrink the grid, seeds and steps:

  python examples/kunin_test_loss.py --size cpu --out kt_cpu       # ≈ 16 core-minutes, measured (2-core CPU, 1 thread each)
  python examples/kunin_test_loss.py --size gpu --device cuda --out "$OUT/kunin_test_loss"   # bench/gpu_session.sh
  python examples/kunin_test_loss.py --size tiny --out /tmp/kt      # seconds: checks the script end to end

Per d it writes records_d{d}.parquet (test and train loss per seed, cell, checkpoint), appends one line per
(d, checkpoint) to summary.jsonl, and prints a table.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lazyrich.dynamics import train
from lazyrich.ensemble import build
from lazyrich.experiments.common import on_device
from lazyrich.experiments.kunin_fig1 import best_cell
from lazyrich.models import MLP
from lazyrich.tasks import teacher_student

DELTAS9 = np.linspace(-1, 1, 9).round(6).tolist()
CHECKPOINTS = [10, 100, 300, 1000, 2000, 3000, 5000, 10_000]
SIZES = {
    # CPU (2 cores shared with other jobs): the two smallest τ (τ ≥ 0.5 never won: seed 100 at d = 20), 9 δ, 3-4 seeds
    "cpu": [dict(d=20, n=1000, taus=[0.1, 0.2], deltas=DELTAS9, seeds=4, steps=10_000, checkpoints=CHECKPOINTS),
            dict(d=50, n=1000, taus=[0.1, 0.2], deltas=DELTAS9, seeds=3, steps=10_000, checkpoints=CHECKPOINTS),
            dict(d=100, n=1000, taus=[0.1, 0.2], deltas=DELTAS9, seeds=4, steps=5000, checkpoints=CHECKPOINTS[:-1])],
    # GPU (9-minute budget): the paper's 17 δ, small-to-medium τ, 16 seeds, to 10⁴ steps (d = 100 also 3·10⁴)
    "gpu": [dict(d=d, n=1000, taus=np.logspace(-1, 0.3, 17).round(6).tolist()[:9], deltas=np.linspace(-1, 1, 17).round(6).tolist(),
                 seeds=16, steps=10_000 if d < 100 else 30_000, checkpoints=CHECKPOINTS + ([30_000] if d == 100 else []))
            for d in (20, 50, 100)],
    "tiny": [dict(d=d, n=40, taus=[0.1, 0.5], deltas=[-1.0, 0.0, 1.0], seeds=3, steps=30, checkpoints=[10, 30])
             for d in (5, 8)],
}
COMMON = dict(width=50, k=3, n_test=2000, lr0=5e-3)


def train_cells(cfg: dict, seed: int, device: str) -> pd.DataFrame:
    """One seed (teacher, data, student directions) over the τ × δ grid, one ensemble: test and train loss."""
    data = on_device(teacher_student(cfg["d"], cfg["k"], cfg["n"], cfg["n_test"], seed=seed), device)
    rows = [{"tau": t, "delta": dl, "seed": seed, "lr": cfg["lr0"] / t ** 2} for t in cfg["taus"] for dl in cfg["deltas"]]
    ens = build(MLP((cfg["d"], cfg["width"], 1), "relu"), rows, init="kunin", loss_scale=1.0, device=device)
    run = train(ens, data, cfg["steps"], "gd", record=sorted({0, *cfg["checkpoints"]}), observers=["loss"], kernel="fused")
    r = run.records()
    return r[r.observable.isin(["loss", "test_loss"])][["tau", "delta", "seed", "step", "observable", "value"]]


def summarize(r: pd.DataFrame, d: int) -> list[dict]:
    """One summary per checkpoint: best cell, upstream gap with its seed interval, train loss of the two corners."""
    out = []
    for step in sorted(r.step.unique()):
        if step == 0:
            continue
        t = r[(r.step == step) & (r.observable == "test_loss")]
        b = best_cell(t)
        tr = r[(r.step == step) & (r.observable == "loss")].groupby(["tau", "delta"]).value.mean()
        out.append({"d": d, "step": int(step), **asdict(b), "verdict": b.verdict,
                    "train_up": float(tr[b.up[:2]]), "train_other": float(tr[b.other[:2]])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="cpu")
    ap.add_argument("--d", type=int, nargs="*", help="only these d (default: every d of the size)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--resume", action="store_true", help="keep the seeds already in OUT/records_d*.parquet")
    ap.add_argument("--budget", type=float, default=float("inf"),
                    help="seconds: start no new seed after this (the summary covers the seeds done)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    sizes = [{**COMMON, **size} for size in SIZES[a.size] if not a.d or size["d"] in a.d]
    parts: dict[int, list[pd.DataFrame]] = {cfg["d"]: [] for cfg in sizes}
    done: dict[int, set[int]] = {cfg["d"]: set() for cfg in sizes}
    for cfg in sizes:
        old = a.out / f"records_d{cfg['d']}.parquet"
        if a.resume and old.exists():  # the seeds whose every cell of this grid was recorded
            r = pd.read_parquet(old)
            r = r[r.tau.isin(cfg["taus"]) & r.delta.isin(cfg["deltas"])]
            full = r.groupby("seed").apply(lambda g: len(g.groupby(["tau", "delta"])) == len(cfg["taus"]) * len(cfg["deltas"]))
            done[cfg["d"]] = {int(sd) for sd, ok in full.items() if ok}
            parts[cfg["d"]].append(r[r.seed.isin(done[cfg["d"]])])
    secs = {cfg["d"]: 0.0 for cfg in sizes}
    # seeds in the outer loop and records saved after each one, so an interrupted run keeps every finished seed
    start = time.perf_counter()
    for i in range(max(cfg["seeds"] for cfg in sizes)):
        for cfg in sizes:
            if i < cfg["seeds"] and 100 + i not in done[cfg["d"]] and time.perf_counter() - start < a.budget:
                t0 = time.perf_counter()
                parts[cfg["d"]].append(train_cells(cfg, 100 + i, a.device))
                secs[cfg["d"]] += time.perf_counter() - t0
                pd.concat(parts[cfg["d"]], ignore_index=True).to_parquet(a.out / f"records_d{cfg['d']}.parquet", index=False)
                print(f"d = {cfg['d']}: seed {100 + i} done ({secs[cfg['d']]:.0f} s)", flush=True)
    for cfg in sizes:
        if parts[cfg["d"]]:
            report(pd.concat(parts[cfg["d"]], ignore_index=True), cfg, secs[cfg["d"]], a.out, a.device)


def report(r: pd.DataFrame, cfg: dict, secs: float, out: Path, device: str) -> None:
    """Append the per-checkpoint summaries to summary.jsonl and print them as a table."""
    rows = summarize(r, cfg["d"])
    with open(out / "summary.jsonl", "a") as f:
        for row in rows:
            f.write(json.dumps({**row, "n": cfg["n"], "taus": cfg["taus"], "deltas": cfg["deltas"],
                                "seconds": round(secs, 1), "device": device}) + "\n")
    print(f"d = {cfg['d']}, n = {cfg['n']}, {len(cfg['taus'])} τ × {len(cfg['deltas'])} δ × {r.seed.nunique()} seeds, "
          f"{cfg['steps']} steps on {device}: {secs:.0f} s", flush=True)
    print(f"{'step':>6} {'best (τ, δ)':>14} {'test':>9} {'best up (τ, δ): test':>26} {'best δ≤0 (τ, δ): test':>27} "
          f"{'gap [95% CI]':>24} {'P(up)':>6}  verdict", flush=True)
    for s in rows:
        print(f"{s['step']:>6} ({s['tau']:.3g}, {s['delta']:+.3g}) {s['mean']:9.2e} "
              f"({s['up'][0]:.3g}, {s['up'][1]:+.3g}): {s['up'][2]:9.2e}  ({s['other'][0]:.3g}, {s['other'][1]:+.3g}): "
              f"{s['other'][2]:9.2e}  {s['gap']:+.2f} [{s['gap_lo']:+.2f}, {s['gap_hi']:+.2f}] {s['p_up']:6.2f}  {s['verdict']}",
              flush=True)


if __name__ == "__main__":
    main()

"""`lazyrich demo`: a τ×δ sweep of two-layer ReLU students (Kunin et al. Fig. 1 in miniature), one ensemble."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from .dynamics import train
from .ensemble import build
from .models import MLP
from .observe.kernel import KernelDistance
from .records import log_steps
from .tasks import teacher_student

FULL = dict(d=20, h=50, k=3, n=200, taus=np.logspace(-1, 0.3, 7), deltas=np.linspace(-1, 1, 7), seeds=1, steps=3000)
QUICK = dict(d=10, h=20, k=2, n=60, taus=np.logspace(-1, 0.3, 3), deltas=np.linspace(-1, 1, 3), seeds=1, steps=300)
LR0 = 0.02  # lr = LR0 / τ² as in Kunin et al. (their 5e-3 at 10⁵ steps; we run fewer steps)


def members(cfg: dict) -> pd.DataFrame:
    rows = [{"tau": float(t), "delta": float(d), "seed": s, "lr": LR0 / float(t) ** 2}
            for s in range(cfg["seeds"]) for t in cfg["taus"] for d in cfg["deltas"]]
    return pd.DataFrame(rows)


def run_demo(out: Path, quick: bool = False) -> Iterator[str]:
    """Train the grid, write records (Parquet) and a heatmap figure; yield lines to print."""
    cfg = QUICK if quick else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = teacher_student(cfg["d"], cfg["k"], cfg["n"], n_test=2000, seed=0)
    net = MLP((cfg["d"], cfg["h"], 1), "relu")
    mem = members(cfg)
    # Kunin's code: loss = mean (f − y)² without ½ (loss_scale=1), same lr for both layers
    ens = build(net, mem, scheme="sp", init="kunin", loss_scale=1.0)
    observers = ["loss", "conserved", KernelDistance(weights="unit", alignment=False), "hamming", "param_distance"]
    run = train(ens, data, cfg["steps"], "gd", record=log_steps(cfg["steps"], 12), observers=observers)
    records = run.records()
    status = run.members
    records = records.merge(status[["status"]].rename_axis("member").reset_index(), on="member")
    records_path = out / "records.parquet"
    records.to_parquet(records_path, index=False)
    fig_path = out / "demo.png"
    from .report.demo_figure import heatmaps

    heatmaps(records[records.status == "ok"], fig_path)
    elapsed = time.perf_counter() - t0
    final = records[(records.step == records.step.max()) & (records.observable == "test_loss") & (records.status == "ok")]
    best = final.groupby(["tau", "delta"])["value"].mean().idxmin()
    from .report.html import write_report

    config = {k: (list(map(float, v)) if isinstance(v, np.ndarray) else v) for k, v in cfg.items()}
    report = write_report(out / "report.html", "lazyrich demo: τ×δ grid of two-layer ReLU students",
                          figures=[(fig_path, "Final test loss, δ_k drift, kernel distance, Hamming and parameter distance over τ (init scale) and δ (upstream > 0).")],
                          config={**config, "lr": f"{LR0} / tau**2", "loss": "mean (f - y)^2 (Kunin et al.'s code, loss_scale=1)"},
                          runtime=elapsed,
                          summary=f"{len(mem)} members trained as one ensemble; lowest final test loss at τ={best[0]:.3g}, δ={best[1]:.3g}.")
    yield f"trained {len(mem)} members ({len(cfg['taus'])} τ × {len(cfg['deltas'])} δ × {cfg['seeds']} seeds) for {cfg['steps']} GD steps as one ensemble in {elapsed:.1f} s"
    n_div = int((status.status == "diverged").sum())
    if n_div:
        yield f"{n_div} member(s) diverged (recorded with status and step; left out of the figure)"
    yield f"records ({len(records)} rows): {records_path}"
    yield f"figure: {fig_path}"
    yield f"report: {report}"
    yield f"lowest test loss at τ={best[0]:.3g}, δ={best[1]:.3g} (Kunin et al.: small τ, upstream δ > 0)"

"""Learning-rate transfer across widths on MNIST-1D: the optimum stays put under μP, drifts under SP.

A plain PyTorch MLP (40 → w → w → 10, ReLU) is parametrized with `lazyrich.usermodels.parametrize`
(widths detected against the same class at width 32) and trained with torch.optim.Adam on the
param groups from `param_groups`. For each scheme and width we sweep the base learning rate and
record the training loss after a fixed budget; the figure shows loss against lr, one curve per width.

    python examples/mup_transfer.py            # ≈ 3 minutes on one CPU core, writes examples/figures/mup_transfer.png
    python examples/mup_transfer.py --quick    # a smoke run

Needs the `mnist1d` package (pip install mnist1d; it generates the data offline).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lazyrich.usermodels import param_groups, parametrize


def mlp(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(40, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))


def mnist1d_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)
    x = torch.tensor(data["x"], dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)  # coordinates Θ(1), as the parametrizations assume
    return x, torch.tensor(data["y"], dtype=torch.long)


def final_loss(scheme: str, width: int, lr: float, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int,
               seed: int) -> float:
    """Mean training loss over the last 10% of `steps` Adam steps (inf if it diverged)."""
    torch.manual_seed(seed)
    model = parametrize(mlp(width), scheme, base=mlp(32), delta=mlp(64), optimizer="adam", seed=seed)
    opt = torch.optim.Adam(param_groups(model, lr), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    tail: list[float] = []
    for step in range(steps):
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        if not math.isfinite(loss.item()):
            return math.inf
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 0.9 * steps:
            tail.append(loss.item())
    return float(np.mean(tail))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two widths, few lrs and steps")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "figures" / "mup_transfer.png")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small matrices: one thread is fastest, and leaves the other core free
    widths = [32, 512] if args.quick else [32, 128, 512]
    # the core's tables are absolute (μP-Adam hidden lr = base/fan_in), so each scheme has its own range
    log2_lrs = {"sp": np.arange(-12.0, -2.0), "mup": np.arange(-6.0, 4.0)}
    if args.quick:
        log2_lrs = {k: v[::3] for k, v in log2_lrs.items()}
    steps, batch, seeds = (60, 128, [0]) if args.quick else (300, 256, [0])
    x, y = mnist1d_data()
    start = time.time()
    results: dict[str, dict[int, list[float]]] = {}
    for scheme in ("sp", "mup"):
        for width in widths:
            results.setdefault(scheme, {})[width] = [
                float(np.mean([final_loss(scheme, width, 2.0**k, x, y, steps, batch, s) for s in seeds]))
                for k in log2_lrs[scheme]]
    print(f"trained {sum(map(len, log2_lrs.values())) * len(widths) * len(seeds)} models in {time.time() - start:.0f} s")
    for scheme, per_width in results.items():
        best = {w: log2_lrs[scheme][int(np.nanargmin(v))] for w, v in per_width.items()}
        drift = best[widths[-1]] - best[widths[0]]
        print(f"{scheme:>3}: best log2(lr) per width " + ", ".join(f"{w}: {b:+.0f}" for w, b in best.items())
              + f"  (drift {drift:+.0f} over {widths[0]}→{widths[-1]})")
    plot(results, log2_lrs, args.out)
    print(f"wrote {args.out}")


def plot(results: dict[str, dict[int, list[float]]], log2_lrs: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, (scheme, per_width) in zip(axes, results.items()):
        lrs = log2_lrs[scheme]
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(per_width)))
        for c, (width, losses) in zip(colors, per_width.items()):
            v = np.array(losses)
            ax.plot(lrs, np.where(np.isfinite(v), v, np.nan), color=c, marker="o", ms=3, label=f"width {width}")
            i = int(np.nanargmin(v))
            ax.plot(lrs[i], v[i], marker="*", ms=12, color=c)
        ax.set_title({"sp": "standard parametrization (SP)", "mup": "μP (lazyrich.parametrize)"}[scheme])
        ax.set_xlabel("log2 base learning rate (Adam)")
        ax.set_ylim(top=2.4)
    axes[0].set_ylabel("training loss (cross-entropy)")
    axes[1].legend(fontsize=8)
    fig.suptitle("MNIST-1D MLP: the optimal learning rate transfers across width under μP", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    main()

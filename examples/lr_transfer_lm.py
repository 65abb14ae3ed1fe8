"""Learning-rate transfer on real text: a byte-level GPT on the Python standard library's source, AdamW.

Sweep (the `lazyrich reproduce lr-transfer-lm` pipeline at any size): for each scheme the base lr is swept on
a log₂ grid at several widths (μP vs SP) and depths (CompleteP vs μP without a depth rule); prints the optimal
log₂ lr per seed and size, and writes the loss-vs-lr figure.

    python examples/lr_transfer_lm.py                          # the quick size (≈ 40 s CPU)
    python examples/lr_transfer_lm.py --widths 16,32,64,128 --depths 2,4,8,16 --steps 100 --seeds 0,1,2
    python examples/lr_transfer_lm.py --arch hf-gpt2           # the same with Hugging Face GPT2LMHeadModel
    python examples/lr_transfer_lm.py --monitor --width 256 --steps 200   # RegimeMonitor verdicts, SP vs μP

The model is an ordinary `nn.Module` (`lazyrich.models.gpt.GPT`); all the parametrization is three calls:

    model = parametrize(GPT(width, depth), "mup", base=GPT(16, 2), delta=GPT(32, 2), optimizer="adam",
                        depth="completep")                    # + overrides for μP relative to the base width
    opt = torch.optim.AdamW(param_groups(model, lr, eps=1e-10))
    monitor = RegimeMonitor(model, probe, output=lambda y: y[:, -1] @ projection)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lazyrich.experiments import lr_transfer_lm as lt
from lazyrich.tasks.stdlib_bytes import batch, fixed_batch, stdlib_corpus
from lazyrich.usermodels import RegimeMonitor, param_groups
from lazyrich.usermodels.hf import logits


def ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",")]


def sweep(cfg: dict, out: Path) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    table = lt.sweep(cfg, lt.arms(cfg))
    opt = lt.optima(table, cfg["steps"])
    print(f"{len(table)} runs in {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU")
    for arm, g in opt.groupby("arm"):
        axis = "width" if arm.endswith("width") else "depth"
        print(f"{arm:16s} optimal log2 lr by {axis} (rows: seeds)")
        print(g.pivot(index="seed", columns=axis, values="log2_lr_opt").round(2).to_string())
        print(f"{'':16s} per-seed shift, largest − smallest {axis}: {lt.shifts(opt, arm, axis).round(2).tolist()}")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "losses.csv", index=False)
    opt.to_csv(out / "optima.csv", index=False)


def monitor_run(cfg: dict, scheme: str, width: int, log2_lr: float, steps: int, every: int, seed: int = 0) -> None:
    """Train one model with a RegimeMonitor (probe: 4 validation windows; kernel of 8 random directions of the
    last position's logits) and print its verdict."""
    corpus = stdlib_corpus()
    model = lt.make_model(cfg, scheme, width, cfg["depth"], seed)
    opt = torch.optim.AdamW(param_groups(model, 2.0 ** log2_lr, eps=lt.EPS), weight_decay=0.0)
    probe, _ = fixed_batch(corpus.val, 4, cfg["seq"])
    projection = torch.randn(256, 8, generator=torch.Generator().manual_seed(0)) / 16
    monitor = RegimeMonitor(model, probe, every=every, output=lambda y: logits(y)[:, -1] @ projection)
    gen = torch.Generator().manual_seed(1000 + seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = batch(corpus.train, cfg["batch"], cfg["seq"], gen)
        loss = F.cross_entropy(logits(model(x)).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        monitor.step()
    v = monitor.verdict()
    print(f"{scheme:4s} width {width} lr 2^{log2_lr:g}: loss {float(loss):.3f}, {v} "
          f"(flips {v.activation_change:.3f}; {time.perf_counter() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", type=ints, default=lt.QUICK["widths"])
    ap.add_argument("--depths", type=ints, default=lt.QUICK["depths"])
    ap.add_argument("--seeds", type=ints, default=lt.QUICK["seeds"])
    ap.add_argument("--steps", type=int, default=lt.QUICK["steps"])
    ap.add_argument("--arch", choices=["gpt", "hf-gpt2"], default="gpt",
                    help="lazyrich.models.gpt.GPT, or Hugging Face GPT2LMHeadModel (needs the hf extra)")
    ap.add_argument("--out", type=Path, default=Path("lazyrich-out/lr_transfer_lm"))
    ap.add_argument("--monitor", action="store_true", help="RegimeMonitor verdicts of SP and μP at --width")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--lr-sp", type=float, default=-9.0, help="log2 base lr of the SP monitor run")
    ap.add_argument("--lr-mup", type=float, default=-5.0, help="log2 base lr of the μP monitor run")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = dict(lt.QUICK, arch=args.arch, widths=args.widths, depths=args.depths, seeds=args.seeds, steps=args.steps,
               base_width=min(args.widths), width=min(args.widths), base_depth=min(args.depths), depth=min(args.depths))
    if args.monitor:
        for scheme, lg in (("sp", args.lr_sp), ("mup", args.lr_mup)):
            monitor_run(cfg, scheme, args.width, lg, args.steps, every=max(1, args.steps // 4))
    else:
        sweep(cfg, args.out)


if __name__ == "__main__":
    main()

"""lr-transfer-lm: the optimal AdamW learning rate of a small pre-LN GPT on real text transfers across width
under μP and across depth under CompleteP, and drifts under SP / under μP without a depth rule.

A byte-level GPT (`lazyrich.models.gpt.GPT`, an ordinary `nn.Module`; or Hugging Face GPT-2 with cfg
arch="hf-gpt2") is trained on the Python standard library's own source files (`lazyrich.tasks.stdlib_bytes`,
ships offline) with AdamW, through the user-model path: `usermodels.plan` + `apply` (what `parametrize` does,
planned once per size) draw the init and install multipliers, depth hooks and the attention scale;
`usermodels.param_groups` gives AdamW's groups. For every (scheme, width, depth, seed) the base learning rate
is swept on a log₂ grid; the validation loss after `steps` steps gives, per seed, the optimal log₂ lr (the
vertex of a parabola fitted around the grid argmin). Claims are on the per-seed shift of that optimum from
the narrowest (shallowest) to the widest (deepest) model, mean over seeds with its bootstrap interval
(issue-23 convention).

μP is taken relative to the base width N₀ (as microsoft/mup and nanoGPT-mup do): each tensor's init std,
multiplier and lr scale is the core μP row at width N times (SP row ÷ μP row) at N₀, so at N₀ the model is
SP. CompleteP (Dey et al. 2025; shared/theory/depth.md) is that μP with `parametrize(..., depth=1.0)`: the
branch multiplier (L/L₀)^(−α), α = 1, on the residual branches' output projections (`attn.o`, `mlp.down`),
the block lr factor (L/L₀)^(α−1) = 1 and AdamW ε (1e-10 at the base) × (L/L₀)^(−α).
Negative controls: SP across widths, μP without a depth rule across depths.
"""
from __future__ import annotations

import math
import time
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import require
from ..models.gpt import GPT
from ..tasks.stdlib_bytes import batch, fixed_batch, stdlib_corpus
from ..usermodels import param_groups
from ..usermodels.hf import logits
from ..usermodels.parametrize import Plan, apply, plan
from .base import Claim, Context, over_seeds, reproduction

SOURCE = ("Yang et al. 2021 'Tensor Programs V' (arXiv 2203.03466) Fig. 1, 3; Dey et al. 2025 'CompleteP' "
          "(arXiv 2505.01618) Fig. 1, Table 1; shared/theory/depth.md")
QUICK = dict(widths=[16, 64], depth=2, depths=[2, 8], width=16, head_dim=8, base_width=16, base_depth=2,
             log2_lrs=[-8, -7, -6, -5, -4, -3], seeds=[0, 1, 2, 3, 4], steps=30, batch=8, seq=16, eval_windows=512, alpha=1.0)
FULL = dict(QUICK, widths=[32, 64, 128, 256], depth=2, depths=[2, 4, 8, 16], width=32, base_width=32,
            log2_lrs=[-10, -9, -8, -7, -6, -5, -4], steps=200, batch=16, seq=32, eval_windows=256)
SHIFT = 1.0  # [inferred] the optimum stays within one log₂ grid step: Yang et al. Fig. 1, Dey et al. Fig. 1, read off
EPS = 1e-10  # AdamW ε at the base; CompleteP scales it by (L/L₀)^(−α) per group (param_groups(eps=))
SCHEMES = ("sp", "mup", "completep")


def build(cfg: dict, width: int, depth: int) -> nn.Module:
    """The bare model: `GPT` (cfg "arch" = "gpt", the default) or Hugging Face `GPT2LMHeadModel` ("hf-gpt2":
    part A's `usermodels.hf.gpt2`, untied, heads of width head_dim; needs the `hf` extra)."""
    arch = cfg.get("arch", "gpt")
    require(arch in ("gpt", "hf-gpt2"), f"lr-transfer-lm: arch {arch!r}: choose gpt or hf-gpt2")
    if arch == "gpt":
        return GPT(width, depth, context=cfg["seq"], head_dim=cfg["head_dim"])
    from ..usermodels.hf import gpt2
    return gpt2(width, depth, heads=width // cfg["head_dim"], vocab=256, context=cfg["seq"], tie=False, seed=None)


def _roles_models(cfg: dict, depth: int) -> tuple[nn.Module, nn.Module]:
    """Two models at other widths (mup's base and delta): width dimensions are where they differ."""
    return build(cfg, cfg["head_dim"], depth), build(cfg, 2 * cfg["head_dim"], depth)


def relative_mup(model: nn.Module, cfg: dict, depth: int) -> dict[str, dict[str, float]]:
    """Per-tensor overrides giving μP relative to the base width N₀: each field (init std, multiplier, lr scale) is
    the core μP row at the model's width times (SP row ÷ μP row) at N₀, so at N₀ the model is SP (microsoft/mup's
    convention; the core tables are absolute)."""
    b, d = _roles_models(cfg, cfg["base_depth"])
    here = plan(model, "mup", base=b, delta=d, optimizer="adam")
    at_base = build(cfg, cfg["base_width"], depth)
    mup0 = {r.name: r for r in plan(at_base, "mup", base=b, delta=d, optimizer="adam").rows}
    sp0 = {r.name: r for r in plan(at_base, "sp", base=b, delta=d, optimizer="adam").rows}
    out: dict[str, dict[str, float]] = {}
    for r in here.rows:
        ratio = lambda f: getattr(sp0[r.name], f) / getattr(mup0[r.name], f) if getattr(mup0[r.name], f) else 1.0  # noqa: E731
        out[r.name] = {f: getattr(r, f) * ratio(f) for f in ("init_std", "multiplier", "lr_scale")}
    return out


def lm_plan(cfg: dict, scheme: str, width: int, depth: int) -> Plan:
    """The parametrization of the GPT at (width, depth) under `scheme` ∈ {sp, mup, completep}: SP is the core
    table; μP relative to the base width; CompleteP is that μP with `parametrize(..., depth=α)` (branch
    multiplier (L/L₀)^(−α), block lr × (L/L₀)^(α−1), ε × (L/L₀)^(−α), α = cfg["alpha"])."""
    require(scheme in SCHEMES, f"lr-transfer-lm: unknown scheme {scheme!r}: choose {', '.join(SCHEMES)}")
    key = (scheme, width, depth, cfg.get("arch", "gpt"), *(cfg[k] for k in ("head_dim", "seq", "base_width", "base_depth", "alpha")))
    if key not in _PLANS:
        model = build(cfg, width, depth)
        b, d = _roles_models(cfg, cfg["base_depth"])  # base depth L₀ = the base's blocks
        over = None if scheme == "sp" else relative_mup(model, cfg, depth)
        # heads keep head_dim as width grows, so μP's 1/d_head logits differ from SP's 1/sqrt(d_head) by a
        # constant: attn_mult = sqrt(head_dim) makes them equal at every width (μP at the base width is SP)
        _PLANS[key] = plan(model, "sp" if scheme == "sp" else "mup", base=b, delta=d, optimizer="adam", overrides=over,
                           attn_mult=math.sqrt(cfg["head_dim"]), depth=cfg["alpha"] if scheme == "completep" else None)
    return _PLANS[key]


_PLANS: dict[tuple, Plan] = {}  # planning a deep model costs more than training it a few steps at quick size


def make_model(cfg: dict, scheme: str, width: int, depth: int, seed: int) -> nn.Module:
    """The GPT through the user-model path (`lm_plan` installed as `parametrize` would), drawn with `seed`."""
    return apply(build(cfg, width, depth), lm_plan(cfg, scheme, width, depth), seed=seed)


def train_one(cfg: dict, scheme: str, width: int, depth: int, seed: int, log2_lr: float,
              checkpoints: tuple[int, ...] = (), device: str = "cpu") -> dict[int, float]:
    """Validation loss (nats per byte) after each step in `checkpoints` ∪ {steps}; inf once the loss is not finite.
    The seed fixes the init and the order of training windows (shared by every lr: common random numbers)."""
    corpus = stdlib_corpus()
    model = make_model(cfg, scheme, width, depth, seed).to(device)
    opt = torch.optim.AdamW(param_groups(model, 2.0 ** log2_lr, eps=EPS), weight_decay=0.0)
    gen = torch.Generator().manual_seed(1000 + seed)
    xv, yv = (t.to(device) for t in fixed_batch(corpus.val, cfg["eval_windows"], cfg["seq"]))
    out: dict[int, float] = {}
    todo = set(checkpoints) | {cfg["steps"]}
    for step in range(1, cfg["steps"] + 1):
        x, y = (t.to(device) for t in batch(corpus.train, cfg["batch"], cfg["seq"], gen))
        loss = F.cross_entropy(logits(model(x)).flatten(0, 1), y.flatten())
        if not torch.isfinite(loss):
            return {s: math.inf for s in todo}
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step in todo:
            with torch.no_grad():
                v = float(F.cross_entropy(logits(model(xv)).flatten(0, 1), yv.flatten()))
            out[step] = v if math.isfinite(v) else math.inf
    return out


def sweep(cfg: dict, arms: list[tuple[str, str, int, int]], checkpoints: tuple[int, ...] = (),
          threads: int = 1, device: str = "cpu") -> pd.DataFrame:
    """One row per (arm, scheme, width, depth, seed, log₂ lr, step) with the validation loss. One torch thread by
    default: these matrices are too small to split, and on a shared machine a second thread's barrier waits cost
    up to 100× (measured on the loaded 2-core CPU)."""
    rows = []
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows = _sweep(cfg, arms, checkpoints, device)
    finally:
        torch.set_num_threads(before)
    return pd.DataFrame(rows)


def _sweep(cfg: dict, arms: list[tuple[str, str, int, int]], checkpoints: tuple[int, ...],
           device: str) -> list[dict[str, Any]]:
    rows = []
    done: dict[tuple, dict[int, float]] = {}
    for arm, scheme, width, depth in arms:
        # at the base width and depth every scheme is SP (μP relative to the base, depth factors 1): train it once
        same = "sp" if (width, depth) == (cfg["base_width"], cfg["base_depth"]) else scheme
        for seed in cfg["seeds"]:
            for lg in cfg["log2_lrs"]:
                key = (same, width, depth, seed, lg)
                if key not in done:
                    done[key] = train_one(cfg, same, width, depth, seed, lg, checkpoints, device)
                for step, v in done[key].items():
                    rows.append(dict(arm=arm, scheme=scheme, width=width, depth=depth, seed=seed, log2_lr=lg, step=step,
                                     loss=v))
    return rows


def optimum(log2_lrs: np.ndarray, losses: np.ndarray, reach: int = 2) -> tuple[float, bool]:
    """(optimal log₂ lr, bracketed): the vertex of the least-squares parabola through the grid argmin and up to
    `reach` finite neighbours on each side (kept within one grid step of the argmin: near a flat valley floor
    the argmin alone jumps between neighbours on noise); at a grid edge the edge itself and bracketed = False."""
    x, y = np.asarray(log2_lrs, float), np.asarray(losses, float)
    y = np.where(np.isfinite(y), y, np.inf)
    i = int(np.argmin(y))
    if i == 0 or i == len(x) - 1 or not np.all(np.isfinite(y[i - 1:i + 2])):
        return float(x[i]), False
    win = [k for k in range(max(0, i - reach), min(len(x), i + reach + 1)) if np.isfinite(y[k])]
    a, b, _ = np.polyfit(x[win], y[win], 2)
    vertex = -b / (2 * a) if a > 0 else x[i]
    return float(np.clip(vertex, x[i - 1], x[i + 1])), True


def optima(table: pd.DataFrame, step: int) -> pd.DataFrame:
    """Per (arm, scheme, width, depth, seed): the optimal log₂ lr at `step` and whether the grid brackets it."""
    out = []
    for key, g in table[table.step == step].groupby(["arm", "scheme", "width", "depth", "seed"]):
        g = g.sort_values("log2_lr")
        opt, inside = optimum(g.log2_lr.to_numpy(), g.loss.to_numpy())
        out.append(dict(zip(["arm", "scheme", "width", "depth", "seed"], key), log2_lr_opt=opt, bracketed=inside,
                        best_loss=float(g.loss.min())))
    return pd.DataFrame(out)


def shifts(opt: pd.DataFrame, arm: str, axis: str) -> np.ndarray:
    """Per seed: optimal log₂ lr at the largest `axis` value (width or depth) minus that at the smallest."""
    g = opt[opt.arm == arm].pivot(index="seed", columns=axis, values="log2_lr_opt")
    return (g[g.columns.max()] - g[g.columns.min()]).to_numpy()


def shift_claims(opt: pd.DataFrame, cfg: dict, prefix: str = "") -> list[Claim]:
    """The decisive claims on the arms (μP over width, CompleteP over depth), or — with `prefix` "control-" — the
    same claims on the negative-control arms (SP over width, μP without a depth rule over depth)."""
    w_arm, d_arm = ("sp-width", "mup-depth") if prefix else ("mup-width", "completep-depth")
    w_name, d_name = ("SP", "μP without a depth rule") if prefix else ("μP", f"CompleteP (α = {cfg['alpha']:g})")
    w, dd = cfg["widths"], cfg["depths"]
    return [
        over_seeds(f"{prefix}width-shift", f"under {w_name} the optimal log₂ AdamW lr (validation loss after "
                   f"{cfg['steps']} steps) moves by ≤ {SHIFT:g} from width {min(w)} to {max(w)} (depth {cfg['depth']}): "
                   f"|mean shift over {len(cfg['seeds'])} seeds| ≤ {SHIFT:g}", SOURCE, "inferred",
                   shifts(opt, w_arm, "width"), 0.0, SHIFT),
        over_seeds(f"{prefix}depth-shift", f"under {d_name} the optimal log₂ AdamW lr moves by ≤ {SHIFT:g} from depth "
                   f"{min(dd)} to {max(dd)} (width {cfg['width']}): |mean shift over seeds| ≤ {SHIFT:g}", SOURCE, "inferred",
                   shifts(opt, d_arm, "depth"), 0.0, SHIFT),
    ]


def arms(cfg: dict) -> list[tuple[str, str, int, int]]:
    """(arm, scheme, width, depth): μP and SP over widths at cfg depth; CompleteP and μP over depths at cfg width."""
    out = [(f"{s}-width", s, w, cfg["depth"]) for s in ("mup", "sp") for w in cfg["widths"]]
    out += [(f"{s}-depth", s, cfg["width"], d) for s in ("completep", "mup") for d in cfg["depths"]]
    return out


@reproduction("lr-transfer-lm", "Byte-level GPT on the stdlib's source, AdamW: the lr optimum transfers over width under μP "
              "(SP drifts) and over depth under CompleteP (control: μP without a depth rule)",
              quick=QUICK, full=FULL, source=SOURCE,
              runtime={"quick": "64 s CPU (1 thread; 8.7 min wall on the 2-core CPU at load 14)",
                       "full": "≈ 3 h CPU, estimated from per-step timings (not run); no GPU run"},
              knobs={"steps": [20, 60]}, decisive=["width-shift", "depth-shift"])
def run(ctx: Context) -> None:
    cfg = ctx.cfg
    require(cfg["base_width"] == min(cfg["widths"]) and cfg["base_depth"] == min(cfg["depths"]),
            "lr-transfer-lm: the base width and depth must be the smallest swept (μP is SP there)")
    t0, c0 = time.perf_counter(), time.process_time()
    half = cfg["steps"] // 2
    table = sweep(cfg, arms(cfg), checkpoints=(half,), device=ctx.device)
    n_runs = len(table[table.step == cfg["steps"]].drop_duplicates(["scheme", "width", "depth", "seed", "log2_lr"]))
    ctx.note(f"trained {n_runs} runs in {time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU "
             "(1 torch thread; the CPU time is the wall time on a quiet machine)")
    table.to_csv(ctx.out / "losses.csv", index=False)
    opt = optima(table, cfg["steps"])
    opt.to_csv(ctx.out / "optima.csv", index=False)
    for c in shift_claims(opt, cfg):
        ctx.add(c)
    ctx.claim("optima-bracketed", "every per-seed optimum lies strictly inside its lr grid (else the optimum is censored "
              "at the grid's edge and the shift is a bound): number of (arm, size, seed) optima at an edge",
              SOURCE, "derived", float((~opt.bracketed).sum()), 0.0)
    sp_width, mup_depth = shift_claims(opt, cfg, prefix="control-")
    ctx.control("control-sp-width", "SP over width: the width-transfer claim must fail", SOURCE, [sp_width])
    ctx.control("control-mup-depth", "μP without a depth rule over depth: the depth-transfer claim must fail", SOURCE,
                [mup_depth])
    ctx.at_checkpoints([half], lambda k: shift_claims(optima(table, k), cfg))
    for arm, g in opt.groupby("arm"):
        axis = "width" if arm.endswith("width") else "depth"
        means = g.groupby(axis).log2_lr_opt.mean()
        ctx.note(f"{arm}: mean optimal log2 lr by {axis} " + ", ".join(f"{k}: {v:.2f}" for k, v in means.items()))
    _figure(ctx, table, opt)


def _figure(ctx: Context, table: pd.DataFrame, opt: pd.DataFrame) -> None:
    cfg = ctx.cfg
    last = table[table.step == cfg["steps"]]
    panels = [("mup-width", "width", "μP"), ("sp-width", "width", "SP"), ("completep-depth", "depth", "CompleteP"),
              ("mup-depth", "depth", "μP, no depth rule")]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    for ax, (arm, axis, title) in zip(axes, panels):
        g = last[last.arm == arm]
        sizes = sorted(g[axis].unique())
        colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(sizes)))
        for c, s in zip(colors, sizes):
            m = g[g[axis] == s].groupby("log2_lr").loss.mean()
            ax.plot(m.index, m.to_numpy(), "o-", color=c, ms=3, label=f"{axis} {s}")
            o = opt[(opt.arm == arm) & (opt[axis] == s)].log2_lr_opt.mean()
            ax.axvline(o, color=c, ls=":", lw=1)
        finite = g.loss[np.isfinite(g.loss)]
        if len(finite):
            ax.set_ylim(finite.min() - 0.05, min(finite.max(), finite.min() + 1.5))
        ax.set_xlabel("log₂ base lr")
        ax.set_title(title)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(f"validation loss after {cfg['steps']} steps (nats/byte)")
    fig.tight_layout()
    ctx.figure(fig, "lr_curves", "Validation loss against the base AdamW learning rate (mean over seeds), one curve per "
               "width (left two) or depth (right two); dotted: the mean per-seed optimum. Transfer = the minima line up.")

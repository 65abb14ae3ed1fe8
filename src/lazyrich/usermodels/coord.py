"""Coordinate check: activation and update sizes versus width over the first training steps.

For every width the model is built by `factory(width)`, parametrized, trained a few steps on one
fixed batch, and every parametrized layer's output is measured on that batch: `activation` =
RMS of its coordinates, `update` = RMS of (output now − output at init). Under μP both stay flat in
width; under SP the readout's update grows (∝ width for SGD). The slope of log(size) against
log(width) summarizes each curve. The "ablation ladder" turns μP's ingredients on one at a time,
starting from SP: readout init, readout lr, input-layer and bias lrs, hidden lrs, attention 1/d.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..conventions import mse
from ..errors import LazyrichError, require
from ..observe.spectral import scaling_exponent
from ..param.depth import alpha_of
from .depth import find_blocks
from .groups import param_groups
from .hf import logits
from .parametrize import Plan, apply, plan
from .tensors import assign_roles, discover

Factory = Callable[[int], nn.Module]
# (label, roles, fields) switched from SP to μP, cumulatively
LADDER: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("+ readout init", ("output",), ("init_std", "multiplier")),
    ("+ readout lr", ("output",), ("lr_scale",)),
    ("+ input & bias lr", ("input", "bias"), ("init_std", "multiplier", "lr_scale")),
    ("+ hidden", ("hidden", "fixed"), ("init_std", "multiplier", "lr_scale")),
)


def mlp(d: int = 32, c: int = 10, depth: int = 3, activation: type[nn.Module] = nn.ReLU) -> Factory:
    """A factory width → nn.Sequential MLP with `depth` linear layers (d → width → ... → c)."""
    def build(width: int) -> nn.Module:
        dims = [d] + [width] * (depth - 1) + [c]
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < depth - 1:
                layers.append(activation())
        return nn.Sequential(*layers)
    return build


class ResBlock(nn.Module):
    """Pre-LN residual MLP block: x + fc2(relu(fc1(LN(x)))) (branch output: fc2)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(width), nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(torch.relu(self.fc1(self.norm(x))))


class ResMLP(nn.Module):
    """d → width, `depth` pre-LN residual blocks in `blocks`, final LayerNorm, readout width → c."""

    def __init__(self, width: int, depth: int, d: int = 32, c: int = 10) -> None:
        super().__init__()
        self.inp = nn.Linear(d, width)
        self.blocks = nn.ModuleList(ResBlock(width) for _ in range(depth))
        self.norm, self.out = nn.LayerNorm(width), nn.Linear(width, c)

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h)
        return self.out(self.norm(h))


def resmlp(d: int = 32, c: int = 10) -> Callable[[int, int], nn.Module]:
    """A factory (width, depth) → `ResMLP`: the default model of a coord check over depth."""
    return lambda width, depth: ResMLP(width, depth, d, c)


def default_batch(model: nn.Module, size: int = 64, seed: int = 0) -> Tensor:
    """Inputs for a model whose first layer is Linear (Gaussian, coordinates Θ(1)) or Embedding (tokens)."""
    first = next((m for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding, nn.modules.conv._ConvNd))), None)
    gen = torch.Generator().manual_seed(seed)
    if isinstance(first, nn.Linear):
        return torch.randn(size, first.in_features, generator=gen)
    if isinstance(first, nn.Embedding):
        return torch.randint(0, first.num_embeddings, (size, 8), generator=gen)
    raise LazyrichError("cannot guess inputs for this model: pass batch=inputs (a tensor the model accepts)")


def ladder_plans(model: nn.Module, base: nn.Module, delta: nn.Module | None = None, optimizer: str = "sgd",
                 depth: str | float | None = None, **kwargs) -> list[tuple[str, Plan]]:
    """SP, then μP's ingredients switched on one at a time (rungs that change nothing are skipped),
    ending at full μP with attention logits 1/d_head; with `depth` (e.g. "completep") a last rung adds
    the depth scheme (branch multipliers m_L^(−α) and its lr/ε factors)."""
    roles = _roles(base, delta)
    sp = plan(model, "sp", optimizer=optimizer, roles=roles, **kwargs)
    mup = plan(model, "mup", optimizer=optimizer, roles=roles, **kwargs)
    fields = ("init_std", "multiplier", "lr_scale")
    pending = {r.name: {f: getattr(r, f) for f in fields} for r in sp.rows}
    out = [("SP", plan(model, "mup", optimizer=optimizer, roles=roles, overrides=_exact(pending),
                       attention_scaling=False, **kwargs))]
    for label, rung_roles, rung_fields in LADDER:
        changed = False
        for r, m in zip(sp.rows, mup.rows):
            if r.role in rung_roles:
                for f in rung_fields:
                    changed |= pending[r.name].pop(f, getattr(m, f)) != getattr(m, f)
        if changed:
            out.append((label, plan(model, "mup", optimizer=optimizer, roles=roles, overrides=_exact(pending),
                                    attention_scaling=False, **kwargs)))
    if mup.attention:
        out.append(("+ attention 1/d", mup))
    else:
        out[-1] = ("μP", out[-1][1])
    if depth is not None and alpha_of(depth) > 0:
        out.append((f"+ depth α={alpha_of(depth):g}", plan(model, "mup", optimizer=optimizer, roles=roles, depth=depth, **kwargs)))
    return out


def split_label(label: str) -> tuple[str, str | float | None]:
    """"mup+completep" → ("mup", "completep"); "mup+0.75" → ("mup", 0.75); "sp" → ("sp", None)."""
    scheme, _, depth = label.partition("+")
    if not depth:
        return scheme, None
    try:
        return scheme, float(depth)
    except ValueError:
        return scheme, depth


def _exact(pending: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {n.replace("[", "[[]"): f for n, f in pending.items() if f}  # names as literal fnmatch patterns


def _roles(base: nn.Module, delta: nn.Module | None) -> dict[str, str]:
    """Roles of the base's tensors as literal fnmatch patterns; a block index becomes `*` so the
    annotations cover deeper models built by the same factory."""
    infos = assign_roles(discover(base), base, delta=delta)
    try:
        blocks = find_blocks(base)
    except LazyrichError:
        blocks = None
    out = {}
    for t in infos:
        name = t.name.replace("[", "[[]")
        if blocks and t.name.startswith(blocks + "."):
            name = re.sub(r"^\d+", "*", name[len(blocks) + 1:])
            name = blocks.replace("[", "[[]") + "." + name
        out[name] = t.role
    return out


def _layers(model: nn.Module, p: Plan) -> dict[str, tuple[nn.Module, str]]:
    """Every parametrized layer, and (role "block") every residual block: its output is the stream."""
    modules = dict(model.named_modules())
    out: dict[str, tuple[nn.Module, str]] = {}
    for r in p.rows:
        if r.name.endswith("weight") and r.module in modules and r.module not in out:
            out[r.module] = (modules[r.module], r.role)
    for t in p.tied:  # a readout sharing the embedding's weight (GPT-2's lm_head)
        out.setdefault(t["module"], (modules[t["module"]], "output"))
    try:
        blocks = find_blocks(model)
    except LazyrichError:
        blocks = None
    if blocks:
        for k, blk in enumerate(modules[blocks].children()):
            out[f"{blocks}.{k}"] = (blk, "block")
    return out


def site(module: str, blocks: str | None, depth: int | None) -> str:
    """A module's place comparable across depths: block k of L becomes `blocks[(k+1)/L]`."""
    if not blocks or depth is None or not module.startswith(blocks + "."):
        return module
    k, _, rest = module[len(blocks) + 1:].partition(".")
    return f"{blocks}[{(int(k) + 1) / depth:g}]" + (f".{rest}" if rest else "")


def _optimizer(model: nn.Module, optimizer: str, lr: float) -> torch.optim.Optimizer:
    groups = param_groups(model, lr)
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr)
    return torch.optim.Adam(groups, lr=lr)


def _measure(model: nn.Module, layers: dict[str, tuple[nn.Module, str]], x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    seen: dict[str, Tensor] = {}
    handles = [m.register_forward_hook(lambda mod, a, out, k=k: seen.__setitem__(k, logits(out).detach().clone()))
               for k, (m, _) in layers.items()]
    try:
        with torch.no_grad():
            out = logits(model(x))
    finally:
        for h in handles:
            h.remove()
    return seen, out.detach()


def _rms(t: Tensor) -> float:
    return float(t.double().pow(2).mean().sqrt())


def run_one(model: nn.Module, p: Plan, x: Tensor, y: Tensor | None, steps: int, lr: float, optimizer: str,
            seed: int) -> list[dict]:
    """Install `p` on `model`, train `steps` steps of ½·MSE on (x, y), measure every layer each step."""
    apply(model, p, init="normal", seed=seed)
    layers = _layers(model, p)
    opt = _optimizer(model, optimizer, lr)
    rows: list[dict] = []
    first, out = _measure(model, layers, x)
    if y is None:
        y = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1))
    roles = {k: r for k, (_, r) in layers.items()}
    for step in range(steps + 1):
        now = first if step == 0 else _measure(model, layers, x)[0]
        for k, v in now.items():
            rows.append({"step": step, "module": k, "role": roles[k], "quantity": "activation", "value": _rms(v)})
            rows.append({"step": step, "module": k, "role": roles[k], "quantity": "update", "value": _rms(v - first[k])})
        if step < steps:
            opt.zero_grad()
            out = logits(model(x))
            mse(out.reshape(1, out.shape[0], -1), y.reshape(1, y.shape[0], -1))[0].backward()
            opt.step()
    return rows


@dataclass
class CoordCheck:
    """Tidy records (label, width, depth, seed, step, module, site, role, quantity, value) and fitted
    slopes over width or depth. `site` is the module's place comparable across depths (block k of L
    → `blocks[(k+1)/L]`; equal to `module` without depths)."""

    records: pd.DataFrame

    def slopes(self, over: str = "width") -> pd.DataFrame:
        """Slope of log(mean over seeds) against log(width) (or log(depth), `over="depth"`) per (label,
        other axis, step, site, role, quantity); sites missing at some sizes are fitted where present."""
        require(over in ("width", "depth"), f"over={over!r}: choose width or depth")
        other = "depth" if over == "width" else "width"
        r = self.records
        require(r[over].notna().all() and r[over].nunique() >= 2, f"the records have fewer than two {over}s to fit a slope over")
        keys = ["label", other, "step", "site", "role", "quantity"]
        mean = r.groupby(keys + [over], sort=False, dropna=False)["value"].mean()
        out = []
        for key, part in mean.groupby(level=list(range(len(keys))), sort=False, dropna=False):
            x, v = part.index.get_level_values(over).to_numpy(float), part.to_numpy(float)
            ok = np.isfinite(v) & (v > 0)
            slope = scaling_exponent(x[ok], v[ok]) if ok.sum() >= 2 else float("nan")
            row = dict(zip(keys, key), slope=slope, n=int(ok.sum()))
            row["module"] = row["site"]
            out.append(row)
        df = pd.DataFrame(out)
        return df.drop(columns=[other]) if r[other].isna().all() else df

    def plot(self, path: str | Path, quantity: str = "update", over: str = "width") -> Path:
        """One row of panels per label, one panel per step; one line per layer, log-log in width (or depth)."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        r = self.records[self.records.quantity == quantity]
        labels = list(dict.fromkeys(r.label))
        steps = sorted(r.step.unique())
        steps = [s for s in steps if quantity != "update" or s > 0] or steps
        fig, axes = plt.subplots(len(labels), len(steps), figsize=(2.6 * len(steps), 2.2 * len(labels)),
                                 squeeze=False, sharex=True)
        for i, label in enumerate(labels):
            for j, step in enumerate(steps):
                ax = axes[i][j]
                part = r[(r.label == label) & (r.step == step)].groupby(["site", "role", over], sort=False)["value"].mean()
                for (module, role), s in part.groupby(level=[0, 1], sort=False):
                    ax.loglog(s.index.get_level_values(over), s.to_numpy(), marker="o", ms=3, label=f"{module} ({role})")
                ticks = sorted(r[over].unique())
                ax.set_xticks(ticks, [str(int(w)) for w in ticks], fontsize=7)
                ax.minorticks_off()
                lo, hi = float(part.min()), float(part.max())
                if lo > 0 and hi / lo < 100:  # show at least two decades, so flat looks flat
                    mid = (lo * hi) ** 0.5
                    ax.set_ylim(mid / 10, mid * 10)
                ax.set_title(f"{label} · step {step}", fontsize=8)
                if j == 0:
                    ax.set_ylabel(f"{quantity} (RMS)", fontsize=8)
                if i == len(labels) - 1:
                    ax.set_xlabel(over, fontsize=8)
        axes[0][-1].legend(fontsize=6, loc="best")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def coord_check(factory: Callable[..., nn.Module], widths: Sequence[int], schemes: Sequence[str] = ("sp", "mup"), *,
                depths: Sequence[int] | None = None, ladder: bool = False, optimizer: str = "sgd", lr: float = 0.02,
                steps: int = 3, seeds: Sequence[int] = (0, 1), batch: Tensor | None = None, targets: Tensor | None = None,
                base_width: int | None = None, progress: bool | None = None, **kwargs) -> CoordCheck:
    """Activation and update sizes of every layer of `factory(width)` — or `factory(width, depth)` when
    `depths` is given — for each size, over `steps` steps of ½·MSE training on one fixed batch
    (default: Gaussian inputs, Gaussian targets per seed). Residual blocks are measured too (role
    "block": the stream after each block).

    Each entry of `schemes` is one label: a scheme ("sp", "mup", ...) or a scheme with a depth scheme,
    "mup+completep", "mup+depth-mup", "mup+0.75" (α). `ladder=True` adds the SP → μP ablation ladder
    (labels "0: SP", "1: + readout init", ..., whose ends replace the schemes sp and mup; with depths,
    a last rung "+ depth α=1" adds CompleteP). Widths are detected by comparing `factory(base_width)`
    (default: the smallest width; with one width, against twice it) with another width. Extra keyword
    arguments go to `parametrize` (gamma, overrides, attn_mult, ...). A progress bar with ETA shows on a
    terminal (`progress=False` hides it).
    """
    from ..progress import WorkBar

    widths = sorted({int(w) for w in widths})
    depth_list: list[int | None] = sorted({int(d) for d in depths}) if depths is not None else [None]
    require(all(w >= 1 for w in widths) and bool(widths), f"widths {widths} must be positive")
    require(depths is None or all(d is not None and d >= 1 for d in depth_list), f"depths {depths} must be positive")
    require(len(widths) >= 2 or len(depth_list) >= 2,
            f"a coord check needs at least two widths or two depths; got widths {widths}, depths {depths}")
    require(steps >= 1, f"steps={steps} must be at least 1")
    require(optimizer in ("sgd", "adam"), f"optimizer={optimizer!r}: the coord check trains with sgd or adam")
    require(lr > 0 and math.isfinite(lr), f"lr={lr} must be a positive finite number")
    labels = [(s, *split_label(s)) for s in schemes]
    for _, _, d in labels:
        alpha_of(d)  # a clear error for an unknown depth scheme before any work
    build = (lambda w, L: factory(w)) if depths is None else (lambda w, L: factory(w, L))  # noqa: E731
    bw, d0 = base_width or widths[0], depth_list[0]
    other = widths[1] if len(widths) > 1 and bw == widths[0] else (widths[0] if len(widths) > 1 else 2 * bw)
    base, delta = build(bw, d0), build(other, d0)
    roles = _roles(base, delta)
    rows: list[dict] = []
    with WorkBar("coord check", sum(w * w * (L or 1) for w in widths for L in depth_list) * len(seeds), progress) as bar:
        for width in widths:
            for L in depth_list:
                for seed in seeds:
                    model = build(width, L)
                    blocks = find_blocks(model) if L is not None else None
                    x = batch if batch is not None else default_batch(model, seed=seed)
                    # the ladder starts at SP and ends at μP: those schemes are not run twice
                    own = [t for t in labels if not (ladder and t[0] in ("sp", "mup"))]
                    labelled = [(lab, plan(model, s, optimizer=optimizer, roles=roles, depth=d, **kwargs)) for lab, s, d in own]
                    if ladder:
                        labelled += [(f"{i}: {lab}", p) for i, (lab, p) in enumerate(
                            ladder_plans(model, base, delta, optimizer, depth="completep" if depths is not None else None, **kwargs))]
                    for label, p in labelled:
                        torch.manual_seed(seed)
                        for row in run_one(build(width, L), p, x, targets, steps, lr, optimizer, seed):
                            rows.append({"label": label, "width": width, "depth": L, "seed": seed, **row,
                                         "site": site(row["module"], blocks, L)})
                    bar.advance(width * width * (L or 1))  # cost ∝ width² · depth (the hidden GEMMs)
    return CoordCheck(pd.DataFrame(rows))

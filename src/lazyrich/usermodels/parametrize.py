"""Apply SP / NTP / μP / MF / spectral to any `nn.Module`, with the core's scaling rules.

The rules are not restated here: each tensor is mapped to a role and (fan_in, fan_out) and its row is
read from `lazyrich.param.layer_table` on a synthetic chain where it sits in that role, so the MLP
tables and the nn.Module path cannot drift apart. A multiplier m ≠ 1 is carried by a hook where the
owning module's call carries the weight (Linear, Conv, Embedding); elsewhere (inside
nn.MultiheadAttention, norms, raw tensors) the tensor gets the abc-equivalent representative with
multiplier 1 (std·m, lr·m² for SGD, lr·m for Adam/Muon): the same function and trajectory.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import LazyrichError, require
from ..param import depth as depth_rules
from ..param.schemes import FIELDS, LayerRow, check_choice, invariants, layer_table
from . import attention, meta
from .depth import Depth, count, find_blocks, structure
from .tensors import TensorInfo, assign_roles, discover, tied_uses

INITS = ("normal", "rescale", "keep")
MUP_FAMILY = ("mup", "mf", "spectral")  # schemes whose attention logits scale as 1/d_head


@dataclass(frozen=True)
class TensorRow:
    """The effective hyperparameters of one tensor of a user model (`hooked`: multiplier via a hook)."""

    name: str
    module: str
    kind: str
    role: str
    shape: tuple[int, ...]
    fan_in: int
    fan_out: int
    init_std: float
    multiplier: float
    lr_scale: float
    wd_scale: float
    hooked: bool
    eps_scale: float = 1.0  # Adam ε factor (depth schemes: m_L^(−α) inside blocks)
    in_block: bool = False  # inside a residual block (takes the depth factors)
    c_init_exp: float | None = None  # width exponents of the abc-invariants c_init = m·σ and c_lr
    c_lr_exp: float | None = None
    lr_depth_exp: float = 0.0  # depth exponents: lr ∝ m_L^lr_depth_exp, branch output ∝ m_L^branch_depth_exp
    branch_depth_exp: float = 0.0


@dataclass(frozen=True)
class Plan:
    """A parametrization of one model: settings and one row per tensor (pure data, JSON-ready)."""

    scheme: str
    optimizer: str
    gamma: float
    rows: tuple[TensorRow, ...]
    attention: tuple[str, ...] = ()
    attn_mult: float = 1.0
    # depth scheme: {"alpha", "blocks", "n_blocks", "base_blocks", "ratio", "branch_mult", "lr", "eps", "branches"}
    depth: Mapping[str, Any] | None = None
    # tied readouts: ({"name": tied parameter, "module": second owner, "multiplier": m}, ...)
    tied: tuple[Mapping[str, Any], ...] = ()

    def state(self) -> dict[str, Any]:
        rows = [{**asdict(r), "shape": list(r.shape)} for r in self.rows]
        return {"version": meta.VERSION, "scheme": self.scheme, "optimizer": self.optimizer, "gamma": self.gamma,
                "attention": list(self.attention), "attn_mult": self.attn_mult, "rows": rows,
                "depth": dict(self.depth) if self.depth else None, "tied": [dict(t) for t in self.tied]}

    @staticmethod
    def from_state(state: Mapping[str, Any]) -> "Plan":
        rows = tuple(TensorRow(**{**r, "shape": tuple(r["shape"])}) for r in state["rows"])
        return Plan(state["scheme"], state["optimizer"], float(state["gamma"]), rows,
                    tuple(state["attention"]), float(state["attn_mult"]), state.get("depth"),
                    tuple(state.get("tied") or ()))

    def row(self, name: str) -> TensorRow:
        return next(r for r in self.rows if r.name == name)


def _synthetic(role: str, fan_in: int, fan_out: int, depth: int) -> tuple[tuple[int, ...], str, bool]:
    """A chain of `depth` layers where (fan_in → fan_out) sits in `role`; the row name to read."""
    if role in ("input", "fixed"):
        return (fan_in, fan_out, *[1] * (depth - 1)), "W1", False
    if role == "hidden":
        return (1, fan_in, fan_out, *[1] * (depth - 2)), "W2", False
    if role == "output":
        return (*[1] * (depth - 1), fan_in, fan_out), f"W{depth}", False
    return (1, fan_out, *[1] * (depth - 1)), "b1", True  # bias: a weight from a width-1 input


def rule(role: str, fan_in: int, fan_out: int, scheme: str, optimizer: str = "sgd", gamma: float = 1.0,
         gamma_lr: bool | None = None, depth: int = 3, override: Mapping[str, float] | None = None) -> LayerRow:
    """The core table's row for one tensor in `role` ("fixed": nothing grows, the SP row)."""
    widths, name, bias = _synthetic(role, fan_in, fan_out, depth)
    rows = layer_table(widths, "sp" if role == "fixed" else scheme, optimizer, gamma, gamma_lr, bias,
                       {name: dict(override)} if override else None)
    return next(r for r in rows if r.name == name)


def _overrides(infos: list[TensorInfo], overrides: Mapping[str, Mapping[str, float]] | None) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for pattern, fields in (overrides or {}).items():
        hits = [t.name for t in infos if fnmatch.fnmatchcase(t.name, pattern)]
        require(bool(hits), f"override {pattern!r} matches no parameter: names look like {infos[0].name!r}")
        bad = [k for k in fields if k not in FIELDS]
        require(not bad, f"override keys {bad} for {pattern!r} are not among {', '.join(FIELDS)}")
        for h in hits:
            out.setdefault(h, {}).update({k: float(v) for k, v in fields.items()})
    return out


def _depth(model: nn.Module, base: nn.Module | None, alpha: float, optimizer: str, blocks: str | None,
           branches: list[str] | tuple[str, ...] | None) -> tuple[Depth | None, dict[str, Any] | None]:
    if alpha == 0.0 and blocks is None and not branches:
        return None, None  # α = 0: no depth scaling, the blocks need not be found
    d = structure(model, blocks, branches)
    base_blocks = count(base, d.blocks) if base is not None else 1
    f = depth_rules.factors(alpha, optimizer, d.n_blocks, base_blocks)
    info = {"alpha": alpha, "blocks": d.blocks, "n_blocks": d.n_blocks, "base_blocks": base_blocks, "ratio": f.ratio,
            "branch_mult": f.branch, "lr": f.lr, "wd": f.wd, "eps": f.eps, "branches": list(d.branches)}
    return d, info


def _tied(model: nn.Module, infos: list[TensorInfo], scheme: str, optimizer: str, gamma: float,
          gamma_lr: bool | None, depth: int) -> list[dict[str, Any]]:
    """Tied readouts (a Linear sharing an embedding's weight): the tensor keeps the embedding's row
    (init, lr, wd) and the readout gets the multiplier m = c_init of the untied readout's row / the
    embedding's σ (mup's MuSharedReadout choice; SP keeps the model as it is, m = 1)."""
    by_name = {t.name: t for t in infos}
    out = []
    for name, module, kind in tied_uses(model):
        t = by_name.get(name)
        if t is None or kind != "linear" or t.kind != "embedding":
            continue
        m = 1.0
        if scheme != "sp" and t.role == "input":
            emb = rule("input", t.fan_in, t.fan_out, scheme, optimizer, gamma, gamma_lr, depth)
            out_row = rule("output", t.fan_out, t.shape[0], scheme, optimizer, gamma, gamma_lr, depth)
            m = out_row.multiplier * out_row.init_std / emb.init_std
        out.append({"name": name, "module": module, "multiplier": m})
    return out


_GROWS = {"input": (True, False), "hidden": (True, True), "output": (False, True), "bias": (True, False),
          "fixed": (False, False)}


def _width_exps(t: TensorInfo, row: LayerRow, **how: Any) -> tuple[float, float]:
    """Exponents of c_init and c_lr in the width: the row again with every growing fan doubled."""
    out_g, in_g = t.width if (t.width is not None and t.role != "fixed") else _GROWS[t.role]
    if t.role == "bias":
        out_g, in_g = out_g or in_g, False
    wide = rule(t.role, t.fan_in * (2 if in_g else 1), t.fan_out * (2 if out_g else 1), **how)
    (a, b), (a2, b2) = invariants(row, how["optimizer"]), invariants(wide, how["optimizer"])
    exp = lambda x, y: math.log2(y / x) if x > 0 and y > 0 else 0.0  # noqa: E731
    return exp(a, a2), exp(b, b2)


def plan(model: nn.Module, scheme: str = "mup", base: nn.Module | None = None, optimizer: str = "sgd",
         gamma: float = 1.0, overrides: Mapping[str, Mapping[str, float]] | None = None, *,
         roles: Mapping[str, str] | None = None, delta: nn.Module | None = None, gamma_lr: bool | None = None,
         attn_mult: float = 1.0, attention_scaling: bool | None = None, depth: str | float | None = None,
         blocks: str | None = None, branches: list[str] | tuple[str, ...] | None = None) -> Plan:
    """The parametrization `parametrize` would apply, without touching the model."""
    check_choice(scheme, optimizer)
    alpha = depth_rules.alpha_of(depth)
    require(attn_mult > 0 and math.isfinite(attn_mult), f"attn_mult={attn_mult} must be a positive finite number")
    require(delta is None or base is not None, "delta= needs base= (widths are where base and delta differ)")
    require(base is None or type(base) is type(model),
            f"base is a {type(base).__name__} but the model a {type(model).__name__}: build the base with the model's "
            "own class, only narrower (or shallower)")
    d, depth_info = _depth(model, base, alpha, optimizer, blocks, branches)
    canon = d.canon if d is not None else None
    if canon is None and base is not None:  # a shallower base works without a depth scheme too
        try:
            path = find_blocks(model, blocks)
        except LazyrichError:
            path = None
        canon = Depth(path, 0, ()).canon if path else None
    infos = assign_roles(discover(model), base, dict(roles or {}), delta, canon)
    over = _overrides(infos, overrides)
    chain = [t for t in infos if t.role in ("input", "hidden", "output")]
    n_layers = max(len(chain), 3 if any(t.role == "hidden" for t in chain) else 2)
    rows = []
    for t in infos:
        how = dict(scheme=scheme, optimizer=optimizer, gamma=gamma, gamma_lr=gamma_lr, depth=n_layers, override=over.get(t.name))
        r = rule(t.role, t.fan_in, t.fan_out, **how)  # type: ignore[arg-type]
        c_init_exp, c_lr_exp = _width_exps(t, r, **how)
        hooked = t.hookable and r.multiplier != 1.0
        if r.multiplier != 1.0 and not hooked:  # fold into the equivalent representative with m = 1
            r = r.shift(1.0 / r.multiplier, optimizer)
            r = LayerRow(r.name, r.role, r.fan_in, r.fan_out, r.init_std, 1.0, r.lr_scale, r.wd_scale)
        lr, wd, eps, inside, lr_dexp, br_dexp = r.lr_scale, r.wd_scale, 1.0, False, 0.0, 0.0
        if depth_info is not None and d is not None and d.inside(t.name):
            inside = True
            lr, wd, eps = lr * depth_info["lr"], wd * depth_info["wd"], depth_info["eps"]
            e = depth_rules.exponents(alpha, optimizer)
            lr_dexp, br_dexp = e.lr, (e.branch if t.module in d.branches else 0.0)
        rows.append(TensorRow(t.name, t.module, t.kind, t.role, t.shape, t.fan_in, t.fan_out, r.init_std,
                              r.multiplier, lr, wd, hooked, eps, inside, c_init_exp, c_lr_exp, lr_dexp, br_dexp))
    paths = attention.attention_modules(model) if attention_scaling is not False else []
    if attention_scaling is True and not paths:
        paths = [""]  # asked for, not detected: scope the logit scaling to the whole model
    if scheme not in MUP_FAMILY:
        paths = []
    tied = _tied(model, infos, scheme, optimizer, gamma, gamma_lr, n_layers)
    return Plan(scheme, optimizer, float(gamma), tuple(rows), tuple(paths), float(attn_mult), depth_info, tuple(tied))


def _sp_std(row: TensorRow) -> float:
    return rule(row.role if row.role != "fixed" else "input", row.fan_in, row.fan_out, "sp").init_std


@torch.no_grad()
def _init(model: nn.Module, p: Plan, how: str, seed: int | None) -> None:
    require(how in INITS, f"unknown init {how!r}: choose one of {', '.join(INITS)}")
    if how == "keep":
        return
    params = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    for r in p.rows:
        t = params[r.name]
        if r.kind == "param" or (r.kind == "norm" and r.name.endswith("weight")):
            continue  # raw tensors and norm gains keep their values: we do not know their semantics
        if how == "rescale":
            if r.role != "bias":
                sp = _sp_std(r)
                t.mul_(r.init_std / sp if sp > 0 else 0.0)
            continue
        if gen is None:
            t.normal_(0.0, r.init_std) if r.init_std > 0 else t.zero_()
        else:
            t.copy_(torch.randn(t.shape, generator=gen, dtype=torch.float64).mul_(r.init_std))


def apply(model: nn.Module, p: Plan, init: str = "normal", seed: int | None = None) -> nn.Module:
    """Install a plan: metadata, multiplier hooks, attention scaling and (unless `init="keep"`) init."""
    names = {n for n, _ in model.named_parameters()}
    missing = [r.name for r in p.rows if r.name not in names]
    require(not missing, f"the parametrization names tensors {missing[:3]} this model lacks: build the same architecture")
    meta.strip(model)
    _init(model, p, init, seed)
    m = meta.attach(model, p.state())
    attention.install(model, list(p.attention), m)
    return model


def parametrize(model: nn.Module, scheme: str = "mup", base: nn.Module | None = None, optimizer: str = "sgd",
                gamma: float = 1.0, overrides: Mapping[str, Mapping[str, float]] | None = None, *,
                roles: Mapping[str, str] | None = None, delta: nn.Module | None = None, gamma_lr: bool | None = None,
                attn_mult: float = 1.0, attention_scaling: bool | None = None, depth: str | float | None = None,
                blocks: str | None = None, branches: list[str] | tuple[str, ...] | None = None, init: str = "normal",
                seed: int | None = None) -> nn.Module:
    """Give `model` the parametrization `scheme` ∈ {sp, ntp, mup, mf, spectral} for `optimizer` ∈
    {sgd, adam, muon}; returns the same model (changed in place).

    Width dimensions come from `base` (the same class at another width; a dimension that differs is a
    width; with `delta`, a third model, where base and delta differ — as in mup) or from `roles` ({"fnmatch pattern": "input"|"hidden"|"output"|"bias"|"fixed"}); without
    either, the first matrix is the input layer and the last the readout. `overrides` sets fields
    (init_std, multiplier, lr_scale, wd_scale) of matching tensors before γ, as in `layer_table`.
    `init`: "normal" redraws N(0, init_std²) (biases 0; norm gains and raw tensors kept), "rescale"
    multiplies the current values by init_std / SP std (keeps the user's init shape, as mup does),
    "keep" leaves values alone (e.g. before loading a checkpoint). Under μP-family schemes, attention
    logits become attn_mult·q·k/d_head (`attention_scaling`: None = detect, True = force, False = off;
    Hugging Face attention modules get their own `scaling` attribute set, so eager and SDPA agree).

    Depth: `depth` = "completep" (α = 1, Dey et al. 2025), "depth-mup" (α = ½, Tensor Programs VI) or a
    number α ∈ [0, 1] multiplies every residual branch's output by m_L^(−α), m_L = L/L₀ with L the
    model's number of blocks and L₀ the base's (1 without a base), and every tensor inside the blocks
    gets the learning-rate factor m_L^(2α−1) (SGD) or m_L^(α−1) (Adam, Muon) and Adam ε factor m_L^(−α)
    (`param_groups(..., eps=)`). Blocks are the model's list of identical modules (GPT-2's
    `transformer.h`, Llama's `model.layers`) or `blocks="path"`; the branch outputs are found in each
    block (c_proj, o_proj, down_proj, ...) or named by `branches=[fnmatch patterns]`. `base` may differ
    from the model in width, depth or both (block k is compared with the base's block 0).
    Tied embeddings (a readout sharing the embedding's weight) keep the embedding's row and the readout
    gets the multiplier that gives the untied readout's c_init (1/width under μP, mup's choice).
    """
    p = plan(model, scheme, base, optimizer, gamma, overrides, roles=roles, delta=delta, gamma_lr=gamma_lr,
             attn_mult=attn_mult, attention_scaling=attention_scaling, depth=depth, blocks=blocks, branches=branches)
    return apply(model, p, init, seed)


def plan_of(model: nn.Module) -> Plan:
    """The parametrization installed on `model` (from its checkpoint-safe metadata)."""
    return Plan.from_state(meta.get(model).state)


def restore(model: nn.Module, state_dict: Mapping[str, Any], strict: bool = True) -> nn.Module:
    """Load a state_dict saved from a parametrized model into a fresh (unparametrized) one: installs
    the saved parametrization (hooks, attention scaling, metadata) and then the weights."""
    keys = [k for k in state_dict if k.endswith(meta.STATE_KEY)]
    require(len(keys) == 1, "this state_dict holds no lazyrich metadata: load it with model.load_state_dict, "
                            "or save it from a model passed through lazyrich.parametrize")
    apply(model, Plan.from_state(state_dict[keys[0]]), init="keep")
    model.load_state_dict(dict(state_dict), strict=strict)
    return model

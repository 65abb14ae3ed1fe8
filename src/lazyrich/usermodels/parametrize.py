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

from ..errors import require
from ..param.schemes import FIELDS, LayerRow, check_choice, layer_table
from . import attention, meta
from .tensors import TensorInfo, assign_roles, discover

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


@dataclass(frozen=True)
class Plan:
    """A parametrization of one model: settings and one row per tensor (pure data, JSON-ready)."""

    scheme: str
    optimizer: str
    gamma: float
    rows: tuple[TensorRow, ...]
    attention: tuple[str, ...] = ()
    attn_mult: float = 1.0

    def state(self) -> dict[str, Any]:
        rows = [{**asdict(r), "shape": list(r.shape)} for r in self.rows]
        return {"version": meta.VERSION, "scheme": self.scheme, "optimizer": self.optimizer, "gamma": self.gamma,
                "attention": list(self.attention), "attn_mult": self.attn_mult, "rows": rows}

    @staticmethod
    def from_state(state: Mapping[str, Any]) -> "Plan":
        rows = tuple(TensorRow(**{**r, "shape": tuple(r["shape"])}) for r in state["rows"])
        return Plan(state["scheme"], state["optimizer"], float(state["gamma"]), rows,
                    tuple(state["attention"]), float(state["attn_mult"]))

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


def plan(model: nn.Module, scheme: str = "mup", base: nn.Module | None = None, optimizer: str = "sgd",
         gamma: float = 1.0, overrides: Mapping[str, Mapping[str, float]] | None = None, *,
         roles: Mapping[str, str] | None = None, delta: nn.Module | None = None, gamma_lr: bool | None = None,
         attn_mult: float = 1.0, attention_scaling: bool | None = None) -> Plan:
    """The parametrization `parametrize` would apply, without touching the model."""
    check_choice(scheme, optimizer)
    require(attn_mult > 0 and math.isfinite(attn_mult), f"attn_mult={attn_mult} must be a positive finite number")
    require(delta is None or base is not None, "delta= needs base= (widths are where base and delta differ)")
    infos = assign_roles(discover(model), base, dict(roles or {}), delta)
    over = _overrides(infos, overrides)
    chain = [t for t in infos if t.role in ("input", "hidden", "output")]
    depth = max(len(chain), 3 if any(t.role == "hidden" for t in chain) else 2)
    rows = []
    for t in infos:
        r = rule(t.role, t.fan_in, t.fan_out, scheme, optimizer, gamma, gamma_lr, depth, over.get(t.name))
        hooked = t.hookable and r.multiplier != 1.0
        if r.multiplier != 1.0 and not hooked:  # fold into the equivalent representative with m = 1
            r = r.shift(1.0 / r.multiplier, optimizer)
            r = LayerRow(r.name, r.role, r.fan_in, r.fan_out, r.init_std, 1.0, r.lr_scale, r.wd_scale)
        rows.append(TensorRow(t.name, t.module, t.kind, t.role, t.shape, t.fan_in, t.fan_out, r.init_std,
                              r.multiplier, r.lr_scale, r.wd_scale, hooked))
    paths = attention.attention_modules(model) if attention_scaling is not False else []
    if attention_scaling is True and not paths:
        paths = [""]  # asked for, not detected: scope the logit scaling to the whole model
    if scheme not in MUP_FAMILY:
        paths = []
    return Plan(scheme, optimizer, float(gamma), tuple(rows), tuple(paths), float(attn_mult))


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
                attn_mult: float = 1.0, attention_scaling: bool | None = None, init: str = "normal",
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
    logits become attn_mult·q·k/d_head (`attention_scaling`: None = detect, True = force, False = off).
    """
    p = plan(model, scheme, base, optimizer, gamma, overrides, roles=roles, delta=delta, gamma_lr=gamma_lr,
             attn_mult=attn_mult, attention_scaling=attention_scaling)
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

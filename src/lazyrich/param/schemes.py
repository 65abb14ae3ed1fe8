"""Parametrizations as one object: a table keyed by (scheme, optimizer).

Each weight tensor W_l ∈ R^{fan_out × fan_in} gets an init std σ, a forward multiplier m, a
learning-rate scale and a weight-decay scale (the forward pass is z = m · W h + b). Every scheme is
one abc-representative; `shift` moves between equivalent representatives (m·s, σ/s, lr/s² for SGD,
lr/s for Adam and Muon) without changing the trained function. Sources and constants: docs/param.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Literal

from ..conventions import lr_gamma_factor
from ..errors import require

Scheme = Literal["sp", "ntp", "mup", "mf", "spectral"]
Optimizer = Literal["sgd", "adam", "muon"]
SCHEMES: tuple[str, ...] = ("sp", "ntp", "mup", "mf", "spectral")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "muon")
FIELDS = ("init_std", "multiplier", "lr_scale", "wd_scale")


@dataclass(frozen=True)
class LayerRow:
    """Effective hyperparameters of one tensor. `role` ∈ {input, hidden, output, bias}."""

    name: str
    role: str
    fan_in: int
    fan_out: int
    init_std: float
    multiplier: float
    lr_scale: float
    wd_scale: float = 1.0

    def shift(self, s: float, optimizer: str) -> "LayerRow":
        """The abc-equivalent representative with multiplier·s (same function and trajectory)."""
        lr_power = 2 if optimizer == "sgd" else 1
        return replace(self, multiplier=self.multiplier * s, init_std=self.init_std / s,
                       lr_scale=self.lr_scale / s**lr_power)


Rule = Callable[[int, int, str], tuple[float, float, float]]  # (fan_in, fan_out, role) -> (std, mult, lr)


def _sp(opt: str) -> Rule:
    return lambda i, o, r: (1 / math.sqrt(i), 1.0, 1.0)


def _ntp(opt: str) -> Rule:
    # SGD: the NTK parametrization. Adam/Muon ignore gradient size, so there is no kernel limit;
    # 1/sqrt(fan_in) keeps each layer's contribution to the output O(1) (our choice, docs/param.md).
    lr = {"sgd": lambda i: 1.0, "adam": lambda i: 1 / math.sqrt(i), "muon": lambda i: 1.0}[opt]
    return lambda i, o, r: (1.0, 1 / math.sqrt(i), lr(i))


def _mup(opt: str) -> Rule:
    # Tensor Programs V, Table 3 (no multipliers): output init var 1/fan_in², others 1/fan_in.
    def rule(i: int, o: int, r: str) -> tuple[float, float, float]:
        std = 1 / i if r == "output" else 1 / math.sqrt(i)
        if opt == "sgd":
            lr = {"input": float(o), "hidden": 1.0, "output": 1 / i}[r]
        elif opt == "adam":
            lr = 1.0 if r == "input" else 1 / i
        else:  # orthogonalized update has unit spectral norm: lr = sqrt(fan_out/fan_in) (spectral condition)
            lr = math.sqrt(o / i)
        return std, 1.0, lr
    return rule


def _spectral(opt: str) -> Rule:
    # Yang-Simon-Bernstein Parametrization 1: σ = min(1, sqrt(fan_out/fan_in))/sqrt(fan_in),
    # SGD lr = fan_out/fan_in; Adam lr = 1/fan_in (Sec. 3.3, App. B); Muon lr = sqrt(fan_out/fan_in).
    def rule(i: int, o: int, r: str) -> tuple[float, float, float]:
        std = min(1.0, math.sqrt(o / i)) / math.sqrt(i)
        lr = {"sgd": o / i, "adam": 1 / i, "muon": math.sqrt(o / i)}[opt]
        return std, 1.0, lr
    return rule


_RULES: dict[str, Callable[[str], Rule]] = {"sp": _sp, "ntp": _ntp, "mup": _mup, "mf": _mup, "spectral": _spectral}


def _bias_lr(scheme: str, opt: str, fan_out: int) -> float:
    # Biases are weights from a width-1 input (TP5 "input weights & all biases"; spectral App. on biases).
    if scheme in ("mup", "mf", "spectral") and opt == "sgd":
        return float(fan_out)
    return 1.0


def _role(l: int, depth: int) -> str:
    return "output" if l == depth else ("input" if l == 1 else "hidden")


def check_choice(scheme: str, optimizer: str) -> None:
    require(scheme in SCHEMES, f"unknown parametrization {scheme!r}: choose one of {', '.join(SCHEMES)}")
    require(optimizer in OPTIMIZERS, f"unknown optimizer family {optimizer!r} for a parametrization: choose one of {', '.join(OPTIMIZERS)}")


def layer_table(widths: tuple[int, ...] | list[int], scheme: str = "mup", optimizer: str = "sgd",
                gamma: float = 1.0, gamma_lr: bool | None = None, bias: bool = False,
                overrides: dict[str, dict[str, float]] | None = None) -> "LayerTable":
    """Per-tensor hyperparameters of an MLP with `widths` (d, n_1, ..., c), input layer first, as a
    `LayerTable`: a list of `LayerRow` that prints as a table with the abc-invariants c_init, c_lr and
    their width exponents (`.to_frame()` for a DataFrame).

    `gamma` is the richness dial of Atanasov et al.: the readout multiplier is divided by γ and, when
    `gamma_lr` is on (default for SGD, where the law was derived; off for Adam/Muon), every learning
    rate is multiplied by g(γ) = γ² (γ ≤ 1) or γ^{2/L} (γ > 1). `overrides` replaces fields per
    tensor after the scheme and before γ, e.g. ``{"W2": {"multiplier": 0.5}}``.
    """
    check_choice(scheme, optimizer)
    widths = tuple(int(w) for w in widths)
    require(len(widths) >= 2 and all(w > 0 for w in widths),
            f"widths {widths} must be at least two positive integers (input, ..., output), e.g. 10,64,1")
    require(gamma > 0 and math.isfinite(gamma), f"gamma={gamma} must be a positive finite number")
    depth = len(widths) - 1
    rule = _RULES[scheme](optimizer)
    rows: list[LayerRow] = []
    for l in range(1, depth + 1):
        i, o, role = widths[l - 1], widths[l], _role(l, depth)
        std, mult, lr = rule(i, o, role)
        row = LayerRow(f"W{l}", role, i, o, std, mult, lr)
        if scheme == "mf" and role == "output":
            row = row.shift(1 / i, optimizer)  # mean-field readout: multiplier 1/width, O(1) init
        rows.append(row)
        if bias and l < depth:
            rows.append(LayerRow(f"b{l}", "bias", 1, o, 0.0, 1.0, _bias_lr(scheme, optimizer, o)))
    rows = _apply_overrides(rows, overrides or {})
    if gamma != 1.0:
        use_lr = (optimizer == "sgd") if gamma_lr is None else gamma_lr
        g = lr_gamma_factor(gamma, depth) if use_lr else 1.0
        rows = [replace(r, multiplier=r.multiplier / gamma if r.role == "output" else r.multiplier,
                        lr_scale=r.lr_scale * g) for r in rows]
    return LayerTable(rows, widths=widths, scheme=scheme, optimizer=optimizer, gamma=gamma, gamma_lr=gamma_lr,
                      bias=bias, overrides=overrides)


def _apply_overrides(rows: list[LayerRow], overrides: dict[str, dict[str, float]]) -> list[LayerRow]:
    names = [r.name for r in rows]
    for name, fields in overrides.items():
        require(name in names, f"override for unknown tensor {name!r}: tensors are {', '.join(names)}")
        for key, value in fields.items():
            require(key in FIELDS, f"override key {key!r} for {name} is not one of {', '.join(FIELDS)}")
            require(math.isfinite(float(value)) and float(value) >= 0,
                    f"override {name}.{key}={value} must be a finite non-negative number")
    return [replace(r, **{k: float(v) for k, v in overrides.get(r.name, {}).items()}) for r in rows]


def table_dicts(rows: list[LayerRow]) -> list[dict[str, float | int | str]]:
    """Rows as JSON-ready dicts (name, fan_in, fan_out, init_std, multiplier, lr_scale, wd_scale)."""
    return [{"name": r.name, "role": r.role, "fan_in": r.fan_in, "fan_out": r.fan_out, "init_std": r.init_std,
             "multiplier": r.multiplier, "lr_scale": r.lr_scale, "wd_scale": r.wd_scale} for r in rows]


def invariants(row: LayerRow, optimizer: str) -> tuple[float, float]:
    """(c_init, c_lr) = (m·σ, m²·lr) for SGD or (m·σ, m·lr) for Adam and Muon: the abc-invariants, equal
    across equivalent representatives (`LayerRow.shift`), so they are what to compare between schemes."""
    power = 2 if optimizer == "sgd" else 1
    return row.multiplier * row.init_std, row.multiplier**power * row.lr_scale


COLUMNS = ("name", "role", "fan_in", "fan_out", "init_std", "multiplier", "lr_scale", "wd_scale", "c_init", "c_lr",
           "c_init_exp", "c_lr_exp")


class LayerTable(list):
    """The rows of `layer_table` (a plain list of `LayerRow` to code) that prints as a table.

    Besides each row's fields it shows the invariants c_init = m·σ and c_lr (`invariants`) and their
    width exponents: c ∝ n^exp measured by doubling every hidden width (the μP/SP/NTP signature that
    microsoft/mup's `MuReadout`/`set_base_shapes` encode as width multipliers; blank without hidden layers)."""

    def __init__(self, rows: Iterable[LayerRow], **how: Any) -> None:
        super().__init__(rows)
        self.how = how

    def records(self) -> list[dict[str, Any]]:
        """One dict per row with every column of `COLUMNS` (exponents None without hidden layers)."""
        opt, widths = self.how.get("optimizer", "sgd"), self.how.get("widths")
        wider: dict[str, LayerRow] = {}
        if widths is not None and len(widths) > 2:
            doubled = (widths[0], *[2 * w for w in widths[1:-1]], widths[-1])
            wider = {r.name: r for r in layer_table(doubled, **{k: v for k, v in self.how.items() if k != "widths"})}
        out = []
        for r in self:
            c_init, c_lr = invariants(r, opt)
            row: dict[str, Any] = {**table_dicts([r])[0], "c_init": c_init, "c_lr": c_lr, "c_init_exp": None, "c_lr_exp": None}
            if r.name in wider:
                c2_init, c2_lr = invariants(wider[r.name], opt)
                row["c_init_exp"] = math.log2(c2_init / c_init) if c_init > 0 and c2_init > 0 else None
                row["c_lr_exp"] = math.log2(c2_lr / c_lr) if c_lr > 0 and c2_lr > 0 else None
            out.append(row)
        return out

    def to_frame(self) -> Any:
        """A pandas DataFrame of `records()` indexed by tensor name."""
        import pandas as pd

        return pd.DataFrame(self.records(), columns=list(COLUMNS)).set_index("name")

    def __str__(self) -> str:
        h = self.how
        title = (f"{h.get('scheme', '?')} × {h.get('optimizer', '?')}, widths {tuple(h.get('widths', ()))}, "
                 f"γ={h.get('gamma', 1.0):g}; c_init = m·σ, c_lr = {'m²' if h.get('optimizer') == 'sgd' else 'm'}·lr; "
                 "*_exp: c ∝ width^exp")
        recs = self.records()
        cells = [[_cell(v) for v in rec.values()] for rec in recs]
        width = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
        left = {0, 1}
        lines = [title, "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(COLUMNS, width)))]
        for row in cells:
            lines.append("  ".join(v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(row, width))))
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)

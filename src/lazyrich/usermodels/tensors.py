"""Which tensors of an `nn.Module` a parametrization acts on, and the role each plays.

Every parameter gets a `TensorInfo`: the kind of module that owns it, its fan-in/fan-out and its role
in the width limit — input (only fan-out grows with width), hidden (both grow), output (only fan-in
grows), bias (a vector: biases, norm gains), or fixed (nothing grows). Roles come, in order of
precedence, from explicit `roles` annotations, from comparing shapes with a `base` model of the same
class (as microsoft/mup's base shapes do: a dimension that differs is a width), or from the order of
registration (first matrix = input, last = output, the rest hidden), which suits plain chains only.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, replace
from typing import Callable

from torch import nn

from ..errors import LazyrichError, require

ROLES = ("input", "hidden", "output", "bias", "fixed")
# modules whose forward we can wrap with a multiplier (z = m·W h + b) by a hook on the module call
HOOKABLE = ("linear", "conv", "conv1d", "embedding")


def is_conv1d(module: nn.Module) -> bool:
    """Hugging Face's `Conv1D` (GPT-2): a linear layer with weight stored transposed, [in, out]."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


@dataclass(frozen=True)
class TensorInfo:
    """One parameter: `name` as in `named_parameters`, `module` the owner's path, `kind` the owner type
    (linear, conv, embedding, norm, attention, param), `width` = (fan_out grows, fan_in grows)."""

    name: str
    module: str
    kind: str
    shape: tuple[int, ...]
    fan_in: int
    fan_out: int
    width: tuple[bool, bool] | None = None
    role: str = ""
    hookable: bool = False


def _with(t: TensorInfo, **kw) -> TensorInfo:
    return replace(t, **kw)


def _norm_types() -> tuple[type, ...]:
    types: list[type] = [nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase]
    if hasattr(nn, "RMSNorm"):
        types.append(nn.RMSNorm)
    return tuple(types)


def _kind(module: nn.Module, inside_attention: bool) -> str:
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    if isinstance(module, nn.Linear):
        return "attention" if inside_attention else "linear"
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        return "conv"
    if isinstance(module, nn.Embedding):
        return "embedding"
    if is_conv1d(module):
        return "conv1d"
    if isinstance(module, _norm_types()):
        return "norm"
    return "param"


def _fans(kind: str, pname: str, shape: tuple[int, ...], module: nn.Module) -> tuple[int, int]:
    """(fan_in, fan_out) as the rules read them: weights are [out, in, *kernel]."""
    if len(shape) <= 1 or kind == "norm":
        return 1, int(math.prod(shape))
    if kind == "embedding":  # a lookup = a linear map of a one-hot input (norm 1, not sqrt(vocab))
        return 1, shape[1]
    if kind == "attention" and pname == "in_proj_weight":  # [3E, E]: three stacked E×E maps
        return shape[1], shape[0] // 3
    if kind == "attention" and len(shape) == 3:  # bias_k, bias_v: [1, 1, E]
        return 1, shape[-1]
    if kind == "conv1d":  # transposed layout: weight [in, out]
        return shape[0], shape[1]
    return int(math.prod(shape[1:])), shape[0]


def _width_dims(kind: str, pname: str, shape: tuple[int, ...]) -> tuple[int | None, int | None]:
    """Indices of the (fan_out, fan_in) dimensions used to detect widths (None: no such dim)."""
    if len(shape) <= 1 or kind == "norm":
        return 0 if shape else None, None
    if kind == "embedding":
        return 1, None
    if kind == "attention" and len(shape) == 3:
        return 2, None
    if kind == "conv1d":
        return 1, 0
    return 0, 1


def discover(model: nn.Module) -> list[TensorInfo]:
    """Every distinct parameter with its owner kind and fans, in registration order (no roles yet)."""
    out: list[TensorInfo] = []
    seen: set[int] = set()
    attention_paths = [n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    for path, module in model.named_modules():
        inside = any(path.startswith(a + ".") for a in attention_paths)
        kind = _kind(module, inside)
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:  # tied weights take the role of their first owner
                continue
            require(not isinstance(p, nn.parameter.UninitializedParameter),
                    f"{path}.{pname} is not initialized yet (a Lazy module): run one forward pass first")
            seen.add(id(p))
            shape = tuple(p.shape)
            fan_in, fan_out = _fans(kind, pname, shape, module)
            hookable = kind in HOOKABLE and pname == "weight"
            out.append(TensorInfo(f"{path}.{pname}" if path else pname, path, kind, shape, fan_in, fan_out,
                                  hookable=hookable))
    require(bool(out), "the model has no parameters to parametrize")
    return out


def tied_uses(model: nn.Module) -> list[tuple[str, str, str]]:
    """Second owners of tied weights: (parameter name as `discover` names it, owner module path, kind)."""
    first: dict[int, str] = {}
    out = []
    for path, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in first:
                out.append((first[id(p)], path, _kind(module, False)))
            else:
                first[id(p)] = f"{path}.{pname}" if path else pname
    return out


def linear_chain(model: nn.Module) -> list[tuple[str, str]]:
    """Consecutive Linear layers (registration order, outside attention) whose widths connect."""
    linears = [(n, m) for n, m in model.named_modules() if type(m) is nn.Linear]
    return [(a, b) for (a, ma), (b, mb) in zip(linears, linears[1:]) if ma.out_features == mb.in_features]


def _is_matrix(t: TensorInfo) -> bool:
    return len(t.shape) >= 2 and t.kind != "norm" and not (t.kind == "attention" and len(t.shape) == 3)


def _role_from_width(t: TensorInfo) -> TensorInfo:
    out_grows, in_grows = t.width or (False, False)
    if not _is_matrix(t):
        return _with(t, role="bias")
    if t.kind == "embedding":
        return _with(t, role="input" if out_grows else "fixed")
    if t.kind == "param" and out_grows != in_grows:
        # a raw tensor with one width dimension (e.g. a positional table): vector-like, as mup treats it
        return _with(t, role="bias", fan_in=1, fan_out=t.shape[0] if out_grows else int(math.prod(t.shape[1:])))
    role = {(True, True): "hidden", (True, False): "input", (False, True): "output", (False, False): "fixed"}[
        (out_grows, in_grows)]
    return _with(t, role=role)


def compare_with_base(infos: list[TensorInfo], base: nn.Module, delta: nn.Module | None = None,
                      canon: Callable[[str], str] | None = None) -> list[TensorInfo]:
    """Mark width dimensions: those where `base` (same class, other width) differs from the model, or
    from `delta` when given (as mup's `delta`: lets the model have the base's own width). `canon` maps
    parameter names to the base's (e.g. every residual block to block 0, when the base is shallower)."""
    canon = canon or (lambda n: n)
    base_shapes = {canon(n): tuple(p.shape) for n, p in base.named_parameters()}
    ref = {canon(n): tuple(p.shape) for n, p in delta.named_parameters()} if delta is not None else \
        {canon(t.name): t.shape for t in infos}
    missing = [t.name for t in infos if canon(t.name) not in base_shapes or canon(t.name) not in ref]
    require(not missing, f"base model lacks parameters {missing[:3]}: build the base with the same class, only narrower")
    out = []
    for t in infos:
        b, r = base_shapes[canon(t.name)], ref[canon(t.name)]
        require(len(b) == len(t.shape) == len(r),
                f"{t.name} has shape {t.shape} but {b} in the base model: they must differ only in widths")
        o_dim, i_dim = _width_dims(t.kind, t.name.rsplit(".", 1)[-1], t.shape)
        grows = lambda d: d is not None and r[d] != b[d]  # noqa: E731
        out.append(_with(t, width=(grows(o_dim), grows(i_dim))))
    if delta is None and all(base_shapes[canon(t.name)] == t.shape for t in infos):
        raise LazyrichError("the base model has the model's own shapes, so no dimension looks like a width: "
                            "build the base at another width, or pass delta= a model at a third width")
    return out


def assign_roles(infos: list[TensorInfo], base: nn.Module | None = None,
                 roles: dict[str, str] | None = None, delta: nn.Module | None = None,
                 canon: Callable[[str], str] | None = None) -> list[TensorInfo]:
    """Roles from annotations (fnmatch patterns on parameter names) > base comparison > order."""
    roles = roles or {}
    for pattern, role in roles.items():
        require(role in ROLES, f"role {role!r} for {pattern!r} is not one of {', '.join(ROLES)}")
        require(any(fnmatch.fnmatchcase(t.name, pattern) for t in infos),
                f"role annotation {pattern!r} matches no parameter: names look like {infos[0].name!r}")
    if base is not None:
        infos = compare_with_base(infos, base, delta, canon)
        infos = [_role_from_width(t) for t in infos]
    else:
        matrices = [i for i, t in enumerate(infos) if _is_matrix(t)]
        first, last = (matrices[0], matrices[-1]) if matrices else (-1, -1)
        infos = [_with(t, role="bias" if not _is_matrix(t) else "input" if (i == first or t.kind == "embedding")
                       else "output" if i == last else "hidden") for i, t in enumerate(infos)]
    out = []
    for t in infos:
        hits = [r for p, r in roles.items() if fnmatch.fnmatchcase(t.name, p)]
        out.append(_with(t, role=hits[-1]) if hits else t)
    return out

"""Checkpoint-safe metadata and the forward hooks that carry multipliers.

The per-tensor table lives in a tiny submodule (`_lazyrich`) whose `get_extra_state` puts it in the
`state_dict` as plain Python data (lists, dicts, numbers: loadable with `torch.load(weights_only=True)`).
Nothing is stored on `nn.Parameter` objects, so `torch.save`/`load`, `copy.deepcopy`, `state_dict`
round trips and wrappers that rebuild parameters (FSDP) keep it. Hooks are small picklable objects
that read their multiplier from that submodule, so loading a checkpoint updates them too.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import LazyrichError, require

META_NAME = "_lazyrich"
STATE_KEY = f"{META_NAME}._extra_state"
VERSION = 1
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class LazyrichMeta(nn.Module):
    """Holds a parametrization's state (scheme, rows, attention scale); never called in forward."""

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__()
        self.state = state

    @property
    def multipliers(self) -> dict[str, float]:
        out = {r["name"]: r["multiplier"] for r in self.state["rows"] if r["hooked"]}
        out.update({tied_key(t["module"]): t["multiplier"] for t in self.state.get("tied") or ()})
        return out

    @property
    def branch_mult(self) -> float:
        return float((self.state.get("depth") or {}).get("branch_mult", 1.0))

    def get_extra_state(self) -> dict[str, Any]:
        return self.state

    def set_extra_state(self, state: Any) -> None:
        require(isinstance(state, dict) and state.get("version") == VERSION,
                f"checkpoint holds lazyrich metadata of an unknown version: expected version {VERSION}")
        if _hooked(self.state) != _hooked(state):
            raise LazyrichError("checkpoint carries multipliers on other tensors than this model's parametrization: "
                                "load it into a fresh model with lazyrich.usermodels.restore(model, state_dict)")
        self.state = state

    def forward(self, *args: Any) -> Any:  # pragma: no cover - never part of the model's computation
        raise LazyrichError("the lazyrich metadata module is not a layer: do not call it")

    def extra_repr(self) -> str:
        return f"scheme={self.state['scheme']}, optimizer={self.state['optimizer']}, tensors={len(self.state['rows'])}"


def tied_key(module: str) -> str:
    return f"tied:{module}"


def _hooked(state: dict[str, Any]) -> set[str]:
    """Everything a hook reads: multiplier rows, tied readouts and residual branch outputs."""
    depth = state.get("depth") or {}
    return ({r["name"] for r in state["rows"] if r["hooked"]} | {tied_key(t["module"]) for t in state.get("tied") or ()}
            | {f"branch:{b}" for b in depth.get("branches", ())})


class InputMultiplier:
    """Forward pre-hook: W(m·x) + b = m·Wx + b for linear and conv modules."""

    def __init__(self, meta: LazyrichMeta, name: str) -> None:
        self.meta, self.name = meta, name

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        return (args[0] * self.meta.multipliers[self.name], *args[1:])


class OutputMultiplier:
    """Forward hook for embeddings (no bias): m·E[i]."""

    def __init__(self, meta: LazyrichMeta, name: str) -> None:
        self.meta, self.name = meta, name

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return output * self.meta.multipliers[self.name]


class BranchMultiplier:
    """Forward hook on a residual branch's output module: m_L^(−α)·F(x) (bias included; for modules
    returning a tuple, as nn.MultiheadAttention, the first element)."""

    def __init__(self, meta: LazyrichMeta) -> None:
        self.meta = meta

    def __call__(self, module: nn.Module, args: tuple, output: Any) -> Any:
        m = self.meta.branch_mult
        if isinstance(output, tuple):
            return (output[0] * m, *output[1:])
        return output * m


def host(model: nn.Module) -> nn.Module:
    """Where the metadata submodule lives: the root, unless the root is a container whose length and
    iteration must not change (Sequential, ModuleList, ModuleDict); then its first parametrized leaf."""
    if not isinstance(model, _CONTAINERS):
        return model
    for m in model.modules():
        if not isinstance(m, _CONTAINERS) and not isinstance(m, LazyrichMeta) and any(True for _ in m.parameters(recurse=False)):
            return m
    raise LazyrichError("found no layer to hold the parametrization metadata: the model needs parameters")


def find(model: nn.Module) -> LazyrichMeta | None:
    """The model's metadata module, or None when it was never parametrized."""
    return next((m for m in model.modules() if isinstance(m, LazyrichMeta)), None)


def get(model: nn.Module) -> LazyrichMeta:
    meta = find(model)
    require(meta is not None, "the model is not parametrized: call lazyrich.parametrize(model, scheme, base=...) first")
    return meta


def strip(model: nn.Module) -> None:
    """Remove a previous parametrization's metadata module and hooks (parametrize is idempotent)."""
    from .attention import AttentionScale

    from .attention import unset_hf_scaling

    ours = (InputMultiplier, OutputMultiplier, BranchMultiplier, AttentionScale)
    for module in list(model.modules()):
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for key in [k for k, h in hooks.items() if isinstance(h, ours) or isinstance(getattr(h, "__self__", None), ours)]:
                del hooks[key]
                module._forward_hooks_always_called.pop(key, None)
        if isinstance(module._modules.get(META_NAME), LazyrichMeta):
            del module._modules[META_NAME]
        unset_hf_scaling(module)


def attach(model: nn.Module, state: dict[str, Any]) -> LazyrichMeta:
    """Attach metadata and install the multiplier hooks its rows ask for."""
    meta = LazyrichMeta(state)
    host(model).add_module(META_NAME, meta)
    modules = dict(model.named_modules())
    for row in state["rows"]:
        if not row["hooked"]:
            continue
        module = modules[row["module"]]
        if row["kind"] == "embedding":
            module.register_forward_hook(OutputMultiplier(meta, row["name"]))
        else:
            module.register_forward_pre_hook(InputMultiplier(meta, row["name"]))
    for t in state.get("tied") or ():
        if t["multiplier"] != 1.0:
            modules[t["module"]].register_forward_pre_hook(InputMultiplier(meta, tied_key(t["module"])))
    for b in (state.get("depth") or {}).get("branches", ()):
        modules[b].register_forward_hook(BranchMultiplier(meta))
    return meta

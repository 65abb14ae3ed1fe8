"""Parametrized models inside wrappers and distributed checkpoints.

Wrappers that keep the user's module as a child — `torch.compile` (`._orig_mod`), DistributedDataParallel
and DataParallel (`.module`) — prefix every parameter name, while the plan names tensors as the
parametrized module does. `unwrap` finds that module (the one whose parameter names are the plan's), so
`param_groups`, `inspect` and `RegimeMonitor` work on the wrapper too. FSDP2's `fully_shard` changes the
module in place (same names, DTensor parameters) and needs nothing. The metadata's own hooks run inside
the wrapped module's forward, so multipliers hold under every wrapper (tests/usermodels/test_distributed.py).

`torch.distributed.checkpoint` flattens the nested metadata into one entry per leaf
(`_lazyrich._extra_state.rows.3.lr_scale`, ...): loading into a model parametrized the same way restores it
as any state; `plan_from_checkpoint` and `restore_checkpoint` read it back for a fresh model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..errors import require
from . import meta
from .parametrize import Plan, apply

WRAPPED = ("_orig_mod", "module")  # torch.compile's OptimizedModule; DDP and DataParallel


def unwrap(model: nn.Module) -> nn.Module:
    """The parametrized module inside `model`'s wrappers (`model` itself when its names are the plan's)."""
    names = {r["name"] for r in meta.get(model).state["rows"]}
    m = model
    while not names <= {n for n, _ in m.named_parameters()}:
        inner = next((m._modules[a] for a in WRAPPED if isinstance(m._modules.get(a), nn.Module)), None)
        require(inner is not None, f"{type(model).__name__} does not hold the parametrized module under the plan's "
                                   "names: pass the module you gave to lazyrich.parametrize")
        m = inner
    return m


def _unflatten(flat: dict[str, Any], paths: dict[str, tuple]) -> Any:
    """Rebuild the nested dicts and lists that distributed checkpoint flattened (paths: key → (root, k1, k2, ...))."""
    root: dict[Any, Any] = {}
    for key, value in flat.items():
        node: Any = root
        path = paths[key]
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    def listify(x: Any) -> Any:  # integer-keyed dicts were lists
        if not isinstance(x, dict):
            return x
        if x and all(isinstance(k, int) for k in x):
            return [listify(x[i]) for i in range(len(x))]
        return {k: listify(v) for k, v in x.items()}
    return listify(root)


def plan_from_checkpoint(checkpoint_id: str | Path) -> Plan:
    """The parametrization saved in a `torch.distributed.checkpoint` folder (written from a parametrized
    model's `state_dict()`), read without building the model."""
    import torch.distributed.checkpoint as dcp

    md = dcp.FileSystemReader(str(checkpoint_id)).read_metadata()
    paths = {k: tuple(v) for k, v in (md.planner_data or {}).items()}
    roots = {p[0] for p in paths.values() if str(p[0]).endswith(meta.STATE_KEY)}
    require(len(roots) == 1, f"the checkpoint in {checkpoint_id} holds no lazyrich metadata: save the state_dict of "
                             "a model passed through lazyrich.parametrize")
    keys = [k for k, p in paths.items() if p[0] in roots]
    flat: dict[str, Any] = {k: None for k in keys}
    dcp.load(flat, checkpoint_id=str(checkpoint_id))
    return Plan.from_state(_unflatten(flat, paths)[roots.pop()])


def restore_checkpoint(model: nn.Module, checkpoint_id: str | Path) -> nn.Module:
    """Load a `torch.distributed.checkpoint` of a parametrized model into a fresh one of the same architecture:
    installs the saved parametrization (hooks, attention and depth scaling, metadata), then the weights."""
    import torch.distributed.checkpoint as dcp

    apply(model, plan_from_checkpoint(checkpoint_id), init="keep")
    state = model.state_dict()
    dcp.load(state, checkpoint_id=str(checkpoint_id))
    model.load_state_dict(state)
    return model

"""Spec → members → ensembles → chunks.

`expand` turns the axes into the members table (one row per configuration, every member key
filled; row i is member i). `plan` groups members that share shapes and data (task, task seed,
width, depth, activation, optimizer kind) into ensembles, and splits each group into near-equal
chunks that fit the memory budget. The plan depends on the spec alone, never on the backend or
the number of workers, so every backend and every resumed run computes exactly the same chunks.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import require
from .expr import evaluate
from .keys import INT_KEYS, STR_KEYS
from .spec import MEMBER_KEYS, Axis, Choice, Integers, LogUniform, SweepSpec

GROUP_KEYS = ("task", "task_seed", "width", "depth", "activation", "optimizer")
_OPTIMIZER_SLOTS = {"gd": 0, "sgd": 0, "momentum": 1, "adam": 2, "muon": 1, "spectral": 0}
_CHEAP_OBSERVERS = {"loss", "conserved"}
MAX_MEMBERS = 10_000_000


@dataclass(frozen=True)
class Chunk:
    """One ensemble to run: members (global ids, ascending) that share the `group` values."""

    index: int
    group: tuple[Any, ...]
    members: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass
class Plan:
    spec: SweepSpec
    members: pd.DataFrame  # index = member id, columns = MEMBER_KEYS
    chunks: list[Chunk]
    steps_per_member: int  # steps (discrete) or recorded times (flow): the unit of progress

    @property
    def size(self) -> int:
        return len(self.members)


def _block_rows(axis: Axis) -> list[dict[str, Any]]:
    if axis.grid is not None:
        keys = list(axis.grid)
        return [dict(zip(keys, combo)) for combo in itertools.product(*axis.grid.values())]
    if axis.zip is not None:
        keys = list(axis.zip)
        return [dict(zip(keys, combo)) for combo in zip(*axis.zip.values())]
    block = axis.random
    assert block is not None
    rng = np.random.default_rng(block.seed)
    cols: dict[str, list[Any]] = {}
    for key, dist in block.dists.items():  # keys drawn in the order written: reproducible
        if isinstance(dist, Choice):
            cols[key] = [dist.choice[i] for i in rng.integers(0, len(dist.choice), block.n)]
        elif isinstance(dist, Integers):
            cols[key] = [int(v) for v in rng.integers(dist.integers[0], dist.integers[1], block.n)]
        elif isinstance(dist, LogUniform):
            lo, hi = dist.loguniform
            cols[key] = [float(v) for v in np.exp(rng.uniform(math.log(lo), math.log(hi), block.n))]
        else:
            cols[key] = [float(v) for v in rng.uniform(*dist.uniform, block.n)]
    return [{k: cols[k][i] for k in cols} for i in range(block.n)]


def expand(spec: SweepSpec) -> pd.DataFrame:
    """The members table: the product of the axis blocks (the first block varies slowest)."""
    blocks = [_block_rows(a) for a in spec.axes]
    total = math.prod(len(b) for b in blocks)
    require(total <= MAX_MEMBERS, f"the axes expand to {total} members (> {MAX_MEMBERS}); split the sweep into several files")
    base = spec.base_member()
    rows = [{**base, **{k: v for part in combo for k, v in part.items()}} for combo in itertools.product(*blocks)]
    members = pd.DataFrame(rows, columns=list(MEMBER_KEYS))
    for key, text in spec.derived.items():
        values = evaluate(text, {k: members[k].to_numpy(float) for k in members if k not in STR_KEYS})
        members[key] = values
    for key in MEMBER_KEYS:
        if key in INT_KEYS and pd.api.types.is_integer_dtype(members[key]):
            members[key] = members[key].astype(np.int64)  # given as integers: exact (seeds up to 2⁶³−1)
        elif key in INT_KEYS:  # derived, in float64: exact integers only up to 2⁵³
            col = members[key].to_numpy(float)
            require(bool(np.all(np.isfinite(col) & (col == np.round(col)) & (np.abs(col) <= 2.0**53))),
                    f"{'derived.' * (key in spec.derived)}{key}: must be an integer (|value| ≤ 2⁵³) for every member; "
                    "fix the axis or the derived expression")
            members[key] = col.astype(np.int64)
        elif key in STR_KEYS:
            members[key] = members[key].astype(str)
        else:
            members[key] = members[key].astype(np.float64)
    members.index.name = "member"
    return members


def widths(spec: SweepSpec, row: pd.Series | dict[str, Any]) -> tuple[int, ...]:
    """(d, width, ..., width, c) of a member."""
    d, c = spec.tasks[str(row["task"])].dims
    return (d, *[int(row["width"])] * (int(row["depth"]) - 1), c)


def member_bytes(spec: SweepSpec, row: pd.Series | dict[str, Any]) -> int:
    """Working memory of one member (parameters, optimizer state, activations, observers): an
    estimate used to size chunks; the shared data are counted by `shared_bytes`."""
    size = 4 if spec.dtype == "float32" else 8
    w = widths(spec, row)
    task = spec.tasks[str(row["task"])]
    n, n_test = task.n or 2 * w[0], getattr(task, "n_test", 0)
    params = sum(a * b for a, b in zip(w[1:], w[:-1])) + (sum(w[1:-1]) if spec.model.bias else 0)
    slots = 16 if spec.flow is not None else 4 + _OPTIMIZER_SLOTS[str(row["optimizer"])]
    units = sum(w[1:])
    total = slots * params + 6 * n * units + 2 * n_test * units
    names = {o if isinstance(o, str) else next(iter(o)) for o in spec.observables}
    if names - _CHEAP_OBSERVERS:  # kernels and friends: allow n × n per member
        total += 2 * n * n * w[-1] ** 2
    return size * total


def shared_bytes(spec: SweepSpec, task: str) -> int:
    t = spec.tasks[task]
    d, c = t.dims
    n = (t.n or 2 * d) + getattr(t, "n_test", 0)
    return (4 if spec.dtype == "float32" else 8) * n * (d + c)


def plan(spec: SweepSpec) -> Plan:
    """Group members into ensembles and chunk them to `execution.memory_mb` / `chunk_members`."""
    members = expand(spec)
    budget = spec.execution.memory_mb * 2**20
    chunks: list[Chunk] = []
    for group, frame in members.groupby(list(GROUP_KEYS), sort=False):
        ids = frame.index.to_numpy()
        row = frame.iloc[0]
        cap = max(1, int((budget - shared_bytes(spec, str(row["task"]))) // member_bytes(spec, row)))
        if spec.execution.chunk_members:
            cap = min(cap, spec.execution.chunk_members)
        parts = math.ceil(len(ids) / cap)
        for part in np.array_split(ids, parts):
            chunks.append(Chunk(len(chunks), tuple(_plain(g) for g in group), tuple(int(i) for i in part)))
    steps = len(spec.record_points()) if spec.flow is not None else int(spec.steps or 0)
    return Plan(spec, members, chunks, steps)


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x

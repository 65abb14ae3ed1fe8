"""Run chunks: `execute_chunk` turns one chunk (an ensemble of members) into records and member
status. It is a pure function of its `ChunkTask`, so the local loop, a Dask worker and a resumed
run all produce the same numbers (bitwise on CPU at the same torch thread count)."""
from __future__ import annotations

import functools
import hashlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import torch

from ..errors import require
from .planner import Chunk, Plan, widths
from .spec import SweepSpec

RECORD_COLUMNS = ["member", "step", "time", "observable", "layer", "index", "value"]
BUILD_COLUMNS = ["seed", "scheme", "lr", "gamma", "weight_decay", "std_scale", "tau", "delta", "lam"]


@dataclass(frozen=True)
class ChunkTask:
    """Everything a worker needs to run one chunk (picklable)."""

    spec: SweepSpec
    chunk: Chunk
    members: pd.DataFrame  # the chunk's rows of the members table (index = global member id)
    device: str = "cpu"
    threads: int | None = None  # torch threads for this chunk; None leaves the process setting


@dataclass
class ChunkResult:
    chunk: int
    records: pd.DataFrame  # RECORD_COLUMNS, member = global id
    status: pd.DataFrame  # member, status, diverged_step
    wall_s: float
    worker: str
    member_steps: int
    code: str = ""  # digest of the lazyrich sources that computed it


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """sha256 (12 hex) of every lazyrich source file: which code computed a chunk, across machines."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


Runner = Callable[[ChunkTask], ChunkResult]


def check_device(device: str) -> str:
    require(device in ("cpu", "cuda") or device.startswith("cuda:"), f"--device {device!r}: use cpu or cuda")
    require(device == "cpu" or torch.cuda.is_available(), "CUDA is not available on this machine: use --device cpu")
    return device


def tasks_for(plan: Plan, chunks: Iterable[Chunk], device: str = "cpu", threads: int | None = None) -> list[ChunkTask]:
    return [ChunkTask(plan.spec, c, plan.members.loc[list(c.members)], device, threads) for c in chunks]


def execute_chunk(task: ChunkTask) -> ChunkResult:
    """Build the chunk's ensemble, train it (or integrate gradient flow), return its records."""
    from ..dynamics import flow, train
    from ..ensemble import build
    from ..models import MLP

    if task.threads:
        torch.set_num_threads(task.threads)
    start = time.perf_counter()
    spec, rows = task.spec, task.members
    first = rows.iloc[0]
    dtype = getattr(torch, spec.dtype)
    data = spec.tasks[str(first["task"])].load(int(first["task_seed"]), dtype)
    for name in ("x", "y", "x_test", "y_test"):
        value = getattr(data, name)
        if value is not None:
            setattr(data, name, value.to(task.device))
    net = MLP(widths(spec, first), str(first["activation"]), spec.model.bias)
    opt = spec.optimizer.optimizer(str(first["optimizer"]))
    ens = build(net, rows[BUILD_COLUMNS].reset_index(drop=True), optimizer=opt.family,
                gamma_lr=spec.parametrization.gamma_lr, init=spec.init.kind, overrides=spec.parametrization.overrides,
                loss_scale=spec.loss_scale, dtype=dtype, device=task.device)
    if spec.flow is not None:
        f = spec.flow
        run = flow(ens, data, spec.record_points(), spec.observers(), rtol=f.rtol, atol=f.atol, method=f.method)
        steps = len(f.times)
    else:
        steps = int(spec.steps or 0)
        run = train(ens, data, steps, opt, spec.schedule, spec.record_points(), spec.observers(),
                    data_seed=spec.execution.data_seed, kernel="fused")
    ids = rows.index.to_numpy(np.int64)
    records = run.records(config=False)
    records = pd.DataFrame({
        "member": ids[records["member"].to_numpy(np.int64)],
        "step": records["step"].to_numpy(np.int64),
        "time": records["time"].to_numpy(np.float64),
        "observable": records["observable"].astype(str).to_numpy(),
        "layer": records["layer"].astype(str).to_numpy(),
        "index": records["index"].to_numpy(np.int64),
        "value": records["value"].to_numpy(np.float64),
    }, columns=RECORD_COLUMNS)
    diverged = np.asarray(run.diverged_step, dtype=np.int64)
    status = pd.DataFrame({"member": ids, "status": np.where(diverged >= 0, "diverged", "ok"),
                           "diverged_step": diverged})
    worker = f"{socket.gethostname()}:{os.getpid()}"
    return ChunkResult(task.chunk.index, records, status, time.perf_counter() - start, worker, len(ids) * steps,
                       source_digest())


def run_local(tasks: list[ChunkTask], runner: Runner = execute_chunk) -> Iterator[ChunkResult]:
    """The in-process backend: chunks one after another."""
    for task in tasks:
        yield runner(task)

"""Run a sweep end to end: validate → plan → skip chunks already stored (resume) → execute on a
backend → write each chunk as it arrives → mark the run done."""
from __future__ import annotations

import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from ..errors import require
from .cluster import run_dask
from .executor import ChunkResult, Runner, check_device, execute_chunk, run_local, source_digest, tasks_for
from .planner import Plan, plan
from .progress import SweepProgress
from .spec import SweepSpec
from .validate import from_dict, load_spec
from .store import DEFAULT_STORE, Store

BACKENDS = ("local", "dask")


@dataclass
class SweepOutcome:
    run_id: str
    store: Path
    members: int
    chunks: int
    computed: int  # chunks computed by this call
    skipped: int  # chunks already in the store (resume)
    member_status: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    steps_per_s: float = 0.0  # config-steps per second of this call

    def records(self) -> pd.DataFrame:
        return Store(self.store).records(self.run_id)


def code_version() -> str:
    """lazyrich's version, the git commit (`.dirty` with local changes) and the digest of the sources."""
    from .. import __version__

    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = dirty = ""
    commit = f"+{sha}{'.dirty' if dirty else ''}" if sha else ""
    return f"{__version__}{commit} src:{source_digest()}"


def _as_spec(spec: SweepSpec | Mapping[str, Any] | str | Path) -> SweepSpec:
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return from_dict(dict(spec))
    return load_spec(spec)


def _member_rows(the_plan: Plan, result: ChunkResult) -> pd.DataFrame:
    rows = the_plan.members.loc[result.status["member"].to_numpy()].reset_index()
    rows["chunk"] = result.chunk
    rows["status"] = result.status["status"].to_numpy()
    rows["diverged_step"] = result.status["diverged_step"].to_numpy(np.int64)
    return rows


def run_sweep(spec: SweepSpec | Mapping[str, Any] | str | Path, store: str | Path = DEFAULT_STORE, *,
              resume: bool = False, backend: str = "local", scheduler: str | None = None, workers: int | None = None,
              device: str = "cpu", threads: int | None = None, progress: bool | None = None,
              busy_timeout: float = 30.0, runner: Runner = execute_chunk) -> SweepOutcome:
    """Run every member of `spec` and store the results; returns what was done.

    With `resume`, the newest run of the same spec (and device) continues: chunks already stored are
    skipped, the others computed, so the final records equal an uninterrupted run's. `threads` pins
    torch's thread count in the chunks (default 1; parallel chunks come from Dask workers).
    """
    spec = _as_spec(spec)
    require(backend in BACKENDS, f"--backend {backend!r}: use local or dask")
    require(scheduler is None or backend == "dask", "--scheduler joins a Dask cluster: add --backend dask")
    require(workers is None or backend == "dask", "--workers starts a Dask LocalCluster: add --backend dask")
    require(threads is None or threads >= 1, f"--threads {threads} must be at least 1")
    check_device(device)
    the_plan = plan(spec)
    # one thread per chunk by default: on a shared machine torch's intra-op threads make small
    # ensembles many times slower (docs/sweeps.md); parallelism comes from workers instead
    threads = threads or 1
    digest = f"{spec.digest()}-{device}"
    db = Store(store, busy_timeout)
    start = time.perf_counter()
    config = {"spec": spec.model_dump(mode="json"), "device": device, "threads": threads, "backend": backend}
    version = code_version()
    run_id, before, started_with = db.open_run(spec.name, digest, resume, config, version, device, backend, threads,
                                               the_plan.size, len(the_plan.chunks), socket.gethostname())
    if before not in ("new", "done") and not started_with.endswith(f"src:{source_digest()}"):
        warnings.warn(f"resuming {run_id} (started with lazyrich {started_with}) with {version}: chunks computed "
                      "by different code may differ; each chunk's code is in chunks.code", stacklevel=2)
    if before == "done":
        return SweepOutcome(run_id, db.path, the_plan.size, len(the_plan.chunks), 0, len(the_plan.chunks),
                            db.run(run_id)["member_status"])
    done = db.done_chunks(run_id)
    pending = [c for c in the_plan.chunks if c.index not in done]
    tasks = tasks_for(the_plan, pending, device, threads)
    results = run_local(tasks, runner) if backend == "local" else run_dask(tasks, scheduler, workers, runner)
    done_members = sum(c.size for c in the_plan.chunks if c.index in done)
    saved_threads = torch.get_num_threads()
    computed = 0
    try:
        with SweepProgress(len(the_plan.chunks), the_plan.size, len(done), done_members, progress, spec.name) as bar:
            for result in results:
                db.write_chunks(run_id, [(result.chunk, _member_rows(the_plan, result), result.records,
                                          result.wall_s, result.worker, result.code)])
                computed += 1
                bar.advance(len(result.status), result.member_steps)
            rate = bar.rate
    except BaseException as exc:
        db.finish(run_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    finally:
        torch.set_num_threads(saved_threads)
    complete = db.done_chunks(run_id) == {c.index for c in the_plan.chunks}
    db.finish(run_id, "done" if complete else "failed")
    info = db.run(run_id)
    return SweepOutcome(run_id, db.path, the_plan.size, len(the_plan.chunks), computed, len(done),
                        info["member_status"], time.perf_counter() - start, rate)

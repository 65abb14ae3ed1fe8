"""Run a sweep end to end: validate → plan → find the run to resume (by member digests) → execute on
a backend → write each chunk as it arrives → mark the run done.

Nothing is written before the first chunk is computed: a spec that fails anywhere before that
leaves no store file and no run row. A resumed run is continued exactly as it was planned (its own
stored spec: member order and chunks), and every stored member is matched to a planned one by its
digest (identity.py), never by its id or chunk index."""
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

from ..errors import LazyrichError, require
from .cluster import run_dask
from .executor import ChunkResult, Runner, check_device, execute_chunk, run_local, source_digest, tasks_for
from .identity import RESULTS_VERSION, chunk_digests, first_difference, member_digests, run_view, set_digest, shown
from .planner import Plan, plan
from .progress import SweepProgress
from .spec import SweepSpec
from .store import DEFAULT_STORE, Store, StoreBusy, StoreDamaged
from .validate import from_dict, load_spec

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


def _validated(spec: SweepSpec | Mapping[str, Any] | str | Path) -> SweepSpec:
    """The one call into validation: every spec, however given, is checked whole before any work."""
    if isinstance(spec, SweepSpec):
        return from_dict(spec.model_dump(mode="json"), f"sweep {spec.name!r}")
    if isinstance(spec, Mapping):
        return from_dict(dict(spec))
    return load_spec(spec)


def _member_rows(the_plan: Plan, digests: pd.Series, result: ChunkResult) -> pd.DataFrame:
    ids = result.status["member"].to_numpy()
    rows = the_plan.members.loc[ids].reset_index()
    rows["chunk"] = result.chunk
    rows["status"] = result.status["status"].to_numpy()
    rows["diverged_step"] = result.status["diverged_step"].to_numpy(np.int64)
    rows["digest"] = digests.loc[ids].to_numpy()
    return rows


def _not_resumed(run: dict[str, Any], config: dict[str, Any], store: Path) -> str:
    """One line: which run --resume found, why it is not resumed, how to resume it or start anew."""
    diff = first_difference(run_view(run["config"]), run_view(config))
    why = (f"{diff[0]}: {shown(diff[1])} there, {shown(diff[2])} here" if diff else
           "its members differ from this sweep's (stored by another version of lazyrich)")
    return (f"--resume found run {run['run_id']} ({run['status']}, {run['chunks_done']}/{run['n_chunks']} chunks "
            f"stored) but did not resume it: {why}; to resume it, sweep the spec it was started with "
            f"(lazyrich runs show {run['run_id']} --spec --store {store} > {run['name']}.yaml), "
            "or drop --resume to start a new run")


def _stored_chunks(db: Store, run_id: str, the_plan: Plan, digests: pd.Series) -> set[int]:
    """Planned chunks already stored, matched by digest; a stored member that is not the planned one
    stops the resume with the first differing key."""
    stored = db.member_digests(run_id)
    planned = pd.Series(digests.index, index=digests.to_numpy())
    matched = stored["digest"].map(planned)
    wrong = stored[matched.isna() | (matched != stored["member"])]
    if len(wrong):
        row = wrong.iloc[0]
        member = int(row["member"])
        want = the_plan.members.loc[member] if member in the_plan.members.index else None
        diff = None if want is None else next((k for k in the_plan.members.columns if row[k] != want[k]), None)
        why = (f"stored with {diff} {row[diff]} but is planned with {diff} {want[diff]}" if diff else
               "stored with a configuration digest this sweep does not plan")
        raise LazyrichError(f"member {member} of run {run_id} was {why}: the store was changed or this lazyrich "
                            "expands the sweep differently; start a new run (drop --resume)")
    have = {d for d in db.chunk_digests(run_id).values() if d is not None}
    return {c for c, d in chunk_digests(the_plan, digests).items() if d in have}


def run_sweep(spec: SweepSpec | Mapping[str, Any] | str | Path, store: str | Path = DEFAULT_STORE, *,
              resume: bool = False, backend: str = "local", scheduler: str | None = None, workers: int | None = None,
              device: str = "cpu", threads: int | None = None, progress: bool | None = None,
              busy_timeout: float = 30.0, runner: Runner = execute_chunk) -> SweepOutcome:
    """Run every member of `spec` and store the results; returns what was done.

    With `resume`, the newest run of the same sweep (name, device, thread count and member digests)
    continues as it was planned: chunks already stored are skipped, the others computed, so the final
    records equal an uninterrupted run's. An unfinished run of the same name with other members is
    refused in one line. `threads` pins torch's thread count in the chunks (default 1; parallel
    chunks come from Dask workers).
    """
    require(backend in BACKENDS, f"--backend {backend!r}: use local or dask")
    require(scheduler is None or backend == "dask", "--scheduler joins a Dask cluster: add --backend dask")
    require(workers is None or backend == "dask", "--workers starts a Dask LocalCluster: add --backend dask")
    require(threads is None or threads >= 1, f"--threads {threads} must be at least 1")
    check_device(device)
    spec = _validated(spec)
    # one thread per chunk by default: on a shared machine torch's intra-op threads make small
    # ensembles many times slower (docs/sweeps.md); parallelism comes from workers instead
    threads = threads or 1
    db = Store(store, busy_timeout)
    db.verify()  # read-only: a damaged store is refused before any work, and left untouched
    the_plan = plan(spec)
    require(the_plan.size > 0, "the axes expand to no members; give every axis at least one value")
    digests = member_digests(the_plan, device, threads)
    members_digest = set_digest(digests)
    start = time.perf_counter()
    config = {"spec": spec.model_dump(mode="json"), "device": device, "threads": threads, "backend": backend,
              "results_version": RESULTS_VERSION}
    version = code_version()
    run_id: str | None = None
    before = "new"
    if resume:
        found = db.find_runs(spec.name, device)
        match = next((r for r in found if r["members_digest"] == members_digest), None)
        if match is None:
            unfinished = next((r for r in found if r["status"] != "done"), None)
            if unfinished is not None:
                raise LazyrichError(_not_resumed(unfinished, config, db.path))
        else:  # continue it as it was planned: its own spec fixes member ids and chunks
            spec = from_dict(match["config"]["spec"], f"run {match['run_id']}")
            the_plan = plan(spec)
            digests = member_digests(the_plan, device, threads)
            config["spec"] = match["config"]["spec"]
            run_id, before = db.begin_run(spec.name, members_digest, True, config, version, device, backend, threads,
                                          the_plan.size, len(the_plan.chunks), socket.gethostname(), spec.digest())
            if before != "done" and not str(match["code_version"]).endswith(f"src:{source_digest()}"):
                warnings.warn(f"resuming {run_id} (started with lazyrich {match['code_version']}) with {version}: "
                              "chunks computed by different code may differ; each chunk's code is in chunks.code",
                              stacklevel=2)
    planned = chunk_digests(the_plan, digests)
    if before == "done":
        return SweepOutcome(str(run_id), db.path, the_plan.size, len(the_plan.chunks), 0, len(the_plan.chunks),
                            db.run(str(run_id))["member_status"])
    done = set() if run_id is None else _stored_chunks(db, run_id, the_plan, digests)
    pending = [c for c in the_plan.chunks if c.index not in done]
    tasks = tasks_for(the_plan, pending, device, threads)
    results = run_local(tasks, runner) if backend == "local" else run_dask(tasks, scheduler, workers, runner)
    done_members = sum(c.size for c in the_plan.chunks if c.index in done)
    saved_threads = torch.get_num_threads()
    computed = 0
    try:
        with SweepProgress(len(the_plan.chunks), the_plan.size, len(done), done_members, progress, spec.name) as bar:
            for result in results:
                if run_id is None:  # the first chunk is computed: only now does the run exist
                    run_id, before = db.begin_run(spec.name, members_digest, resume, config, version, device, backend,
                                                  threads, the_plan.size, len(the_plan.chunks), socket.gethostname(),
                                                  spec.digest())
                db.write_chunks(run_id, [(result.chunk, _member_rows(the_plan, digests, result), result.records,
                                          result.wall_s, result.worker, result.code, planned[result.chunk])])
                computed += 1
                bar.advance(len(result.status), result.member_steps)
            rate = bar.rate
    except BaseException as exc:
        if run_id is not None and not isinstance(exc, (StoreDamaged, StoreBusy)):
            db.finish(run_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    finally:
        torch.set_num_threads(saved_threads)
    assert run_id is not None
    complete = set(planned.values()) <= set(db.chunk_digests(run_id).values())
    db.finish(run_id, "done" if complete else "failed")
    info = db.run(run_id)
    return SweepOutcome(run_id, db.path, the_plan.size, len(the_plan.chunks), computed, len(done),
                        info["member_status"], time.perf_counter() - start, rate)

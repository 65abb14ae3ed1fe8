"""The Dask backend: chunks run on `distributed` workers and come back as records; the client
alone writes the store.

`workers=N` starts a `LocalCluster` (N processes, one thread each); `scheduler="tcp://host:port"`
joins a running cluster instead (e.g. one started by dask-jobqueue on SLURM/PBS, see docs/sweeps.md).
A chunk whose worker dies is rescheduled by the scheduler on another worker (up to
`distributed.scheduler.allowed-failures` deaths), and a chunk that raises is retried `retries` times.
"""
from __future__ import annotations

import logging
from typing import Iterator

from ..errors import LazyrichError, require
from .executor import ChunkResult, ChunkTask, Runner, execute_chunk


def run_dask(tasks: list[ChunkTask], scheduler: str | None = None, workers: int | None = None,
             runner: Runner = execute_chunk, retries: int = 2) -> Iterator[ChunkResult]:
    """Yield chunk results as workers finish them (in completion order)."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - dask[distributed] is a dependency
        raise LazyrichError("the dask backend needs dask[distributed]: pip install 'dask[distributed]'") from None
    require(workers is None or workers >= 1, f"--workers {workers} must be at least 1")
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise LazyrichError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); check --scheduler or start one") from None
    else:
        cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        futures = [client.submit(runner, t, key=f"lazyrich-chunk-{t.chunk.index}-{id(t):x}", pure=False, retries=retries)
                   for t in tasks]
        for future in as_completed(futures):
            result = future.result()
            future.release()
            yield result
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

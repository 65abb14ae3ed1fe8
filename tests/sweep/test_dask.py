"""The Dask backend on real LocalClusters (2 worker processes, 1 thread each): records equal the
local backend's bitwise (CPU, float64, one torch thread), and a chunk whose worker is killed is
recomputed elsewhere. One test joins a running cluster (--scheduler), one starts its own (--workers)."""
import logging
import os
import signal
import sys
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest

from lazyrich.sweep import Store, execute_chunk, from_dict, load_spec, run_sweep

QUICK = Path(__file__).resolve().parents[2] / "examples" / "quick.yaml"
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules


class KillWorkerOnce:
    """Runs a chunk, except that the first attempt at `chunk` SIGKILLs its own worker process."""

    def __init__(self, marker: Path, chunk: int):
        self.marker, self.chunk = marker, chunk

    def __call__(self, task):
        if task.chunk.index == self.chunk:
            try:
                with open(self.marker, "x") as f:
                    f.write(str(os.getpid()))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return execute_chunk(task)


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as c:
        yield c


@pytest.fixture(scope="module")
def local(quick_run):
    return _stored(quick_run)


def _stored(out):
    db = Store(out.store)
    return db.records(out.run_id), db.members(out.run_id)


def test_dask_equals_local_bitwise(tmp_path, cluster, local):
    out = run_sweep(load_spec(QUICK), tmp_path / "d.duckdb", backend="dask", scheduler=cluster.scheduler_address,
                    progress=False)
    assert out.computed == out.chunks == 8 and out.member_status == {"ok": 64}
    records, members = _stored(out)
    pd.testing.assert_frame_equal(records, local[0], check_exact=True)
    pd.testing.assert_frame_equal(members, local[1], check_exact=True)
    import duckdb
    con = duckdb.connect(str(out.store), read_only=True)
    workers = {w for (w,) in con.execute("SELECT DISTINCT worker FROM chunks").fetchall()}
    con.close()
    assert len(workers) == 2 and str(os.getpid()) not in {w.split(":")[1] for w in workers}


def test_killed_worker_chunk_is_retried(tmp_path, tiny):
    spec = from_dict(tiny(execution={"chunk_members": 1}))  # 4 chunks
    marker = tmp_path / "killed"
    out = run_sweep(spec, tmp_path / "k.duckdb", backend="dask", workers=2, progress=False,
                    runner=KillWorkerOnce(marker, chunk=1))
    assert marker.exists()  # a worker really died running chunk 1
    assert out.computed == 4 and out.member_status == {"ok": 4}
    alone = run_sweep(spec, tmp_path / "l.duckdb", threads=1, progress=False)
    for got, want in zip(_stored(out), _stored(alone)):
        pd.testing.assert_frame_equal(got, want, check_exact=True)

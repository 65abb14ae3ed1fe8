"""Resume after SIGKILL: a sweep killed at random moments (during start-up, training and chunk
writes) and re-run with --resume completes with no lost and no duplicated rows, and its records
equal those of an uninterrupted run. Two sweeps resuming the same store at once both succeed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from lazyrich.sweep import Store

QUICK = Path(__file__).resolve().parents[2] / "examples" / "quick.yaml"


def _sweep(store: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lazyrich.cli", "sweep", str(QUICK), "--store", str(store), "--resume",
           "--threads", "1", "--quiet"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _chunks_stored(store: Path) -> int:
    """Chunks in the store (read between the writer's transactions; -1 while it is locked)."""
    if not store.exists():
        return 0
    try:
        con = duckdb.connect(str(store), read_only=True)
    except duckdb.Error:
        return -1
    try:
        return con.execute("SELECT count(*) FROM chunks").fetchone()[0]
    except duckdb.Error:
        return 0
    finally:
        con.close()


def _codes(store: Path) -> list[str]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return sorted(c for (c,) in con.execute("SELECT DISTINCT code FROM chunks").fetchall())
    finally:
        con.close()


def _kill_when(proc: subprocess.Popen, store: Path, target: int, extra: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if target == 0 or _chunks_stored(store) >= target:
            time.sleep(extra)
            break
        time.sleep(0.03)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_at_random_moments_then_resume(tmp_path, quick_run):
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    ref = quick_run
    want = Store(ref.store).records(ref.run_id)
    chunk_time = ref.wall_s / ref.chunks
    # first kill lands in start-up (import, validation, run creation); later ones after some chunks,
    # at a random point of the next chunk's training or write. Under load a plan can miss the run
    # (every kill before the first chunk, or after the last): draw a new plan on a fresh store then.
    for attempt in range(4):
        store = tmp_path / f"killed{attempt}.duckdb"
        later = sorted(rng.integers(1, ref.chunks - 1, 2))
        plans = [(0, rng.uniform(1.0, 4.0))] + [(int(k), rng.uniform(0, 1.2 * chunk_time)) for k in later]
        stored = []
        for target, extra in plans:
            _kill_when(_sweep(store), store, target, extra)
            stored.append(_chunks_stored(store))
        print("chunks stored after each kill:", stored, "reference", round(ref.wall_s, 2), "s")
        if any(0 < s < ref.chunks for s in stored):
            break
    assert any(0 < s < ref.chunks for s in stored), f"no kill landed mid-run in 4 plans (last: {stored})"
    both = [_sweep(store), _sweep(store)]  # two resumes at once on the same store
    for proc in both:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    con = duckdb.connect(str(store), read_only=True)
    runs = con.execute("SELECT run_id, status, n_chunks FROM runs").fetchall()
    assert len(runs) == 1 and runs[0][1] == "done", runs  # every resume continued the one run
    run_id = runs[0][0]
    assert con.execute("SELECT count(*), count(DISTINCT chunk) FROM chunks").fetchone() == (ref.chunks, ref.chunks)
    assert con.execute("SELECT count(*), count(DISTINCT member) FROM members").fetchone() == (ref.members, ref.members)
    dupes = con.execute('SELECT count(*) FROM (SELECT member, step, observable, layer, "index", count(*) AS n '
                        "FROM records GROUP BY ALL HAVING n > 1)").fetchone()[0]
    con.close()
    assert dupes == 0
    got = Store(store).records(run_id)
    codes = {path.name: _codes(path) for path in (store, ref.store)}  # which sources computed the chunks
    pd.testing.assert_frame_equal(got, want, check_exact=True, obj=f"records {codes}")  # bitwise equal
    members = Store(store).members(run_id).drop(columns="chunk")
    pd.testing.assert_frame_equal(members, Store(ref.store).members(ref.run_id).drop(columns="chunk"), check_exact=True)


def test_two_sweeps_started_at_once_both_succeed(tmp_path, tiny):
    import yaml

    spec, store = tmp_path / "tiny.yaml", tmp_path / "shared.duckdb"
    spec.write_text(yaml.safe_dump(tiny(execution={"chunk_members": 1})))  # 4 chunks each: writes interleave
    cmd = [sys.executable, "-m", "lazyrich.cli", "sweep", str(spec), "--store", str(store), "--threads", "1", "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    db = Store(store)
    runs = db.runs()
    assert len(runs) == 2 and (runs.status == "done").all() and (runs.chunks_done == 4).all()
    first, second = (db.records(r) for r in runs.run_id)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert len(first) == 4 * 4 * 12  # 4 members × 4 records × 12 rows (no duplicates)

"""The DuckDB store: chunks are written whole or not at all, duplicates are skipped, a locked store
gives a clear "busy" error, runs resolve by prefix, exports equal the stored tables."""
import subprocess
import sys
import time

import duckdb
import numpy as np
import pandas as pd
import pytest

from lazyrich.errors import LazyrichError
from lazyrich.sweep import Store, StoreBusy, from_dict, plan, run_sweep
from lazyrich.sweep.executor import RECORD_COLUMNS
from lazyrich.sweep.store import MEMBER_COLUMNS


def _counts(path, run_id):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return tuple(con.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id]).fetchone()[0]
                     for t in ("chunks", "members", "records"))
    finally:
        con.close()


def _fake_chunk(p, chunk):
    ids = list(p.chunks[chunk].members)
    members = p.members.loc[ids].reset_index()
    members["chunk"], members["status"], members["diverged_step"] = chunk, "ok", -1
    records = pd.DataFrame({"member": np.repeat(ids, 2), "step": np.tile([0, 5], len(ids)), "time": 0.0,
                            "observable": "loss", "layer": "", "index": 0, "value": np.arange(2 * len(ids), dtype=float)})
    return chunk, members, records[RECORD_COLUMNS], 0.1, "test", "code"


@pytest.fixture
def store_and_run(tmp_path, tiny):
    p = plan(from_dict(tiny()))
    store = Store(tmp_path / "s.duckdb")
    run_id = store.create_run("tiny", "d", {}, "v", "cpu", "local", 1, p.size, len(p.chunks), "h")
    return store, run_id, p


def test_chunk_is_written_whole_or_not_at_all(store_and_run):
    store, run_id, p = store_and_run
    assert store.write_chunks(run_id, [_fake_chunk(p, 0)]) == 1
    assert _counts(store.path, run_id) == (1, 2, 4)
    chunk, members, records, wall, worker, code = _fake_chunk(p, 1)
    broken = records.assign(step="not a step")  # the records insert fails after the members insert
    with pytest.raises(duckdb.Error):
        store.write_chunks(run_id, [(chunk, members, broken, wall, worker, code)])
    assert _counts(store.path, run_id) == (1, 2, 4)  # nothing of chunk 1 remains
    assert store.done_chunks(run_id) == {0}
    assert store.write_chunks(run_id, [_fake_chunk(p, 1)]) == 1
    assert store.write_chunks(run_id, [_fake_chunk(p, 1), _fake_chunk(p, 0)]) == 0  # already stored: skipped
    assert _counts(store.path, run_id) == (2, 4, 8)
    members = store.members(run_id)
    assert list(members.columns) == MEMBER_COLUMNS and list(members.member) == [0, 1, 2, 3]


def test_busy_store_gives_a_clear_error(store_and_run):
    store, run_id, _ = store_and_run
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('ready', flush=True); time.sleep(60)", str(store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        start = time.monotonic()
        with pytest.raises(StoreBusy, match=rf"store .*s.duckdb is busy: process {holder.pid} holds it; wait"):
            Store(store.path, busy_timeout=0.5).done_chunks(run_id)
        assert 0.4 < time.monotonic() - start < 5
    finally:
        holder.kill()
        holder.wait()
    assert store.done_chunks(run_id) == set()  # usable again once the holder is gone


def test_resolve_prefix_latest_and_errors(store_and_run):
    store, run_id, p = store_and_run
    time.sleep(0.01)
    other = store.create_run("tiny", "d", {}, "v", "cpu", "local", 1, 4, 2, "h")
    assert store.resolve(run_id) == run_id and store.resolve("latest") == other
    with pytest.raises(LazyrichError, match="matches 2 runs"):
        store.resolve("tiny-")
    with pytest.raises(LazyrichError, match="no run 'nope'"):
        store.resolve("nope")
    with pytest.raises(LazyrichError, match="no store at"):
        Store(store.path.parent / "missing.duckdb").runs()


def test_export_equals_records_joined_with_members(tmp_path, tiny):
    out = run_sweep(from_dict(tiny()), tmp_path / "s.duckdb", progress=False)
    store = Store(out.store)
    records, members = store.records(out.run_id), store.members(out.run_id)
    want = records.merge(members.drop(columns="chunk"), on="member")
    parquet = pd.read_parquet(store.export(out.run_id, tmp_path / "r.parquet", "parquet"))
    csv = pd.read_csv(store.export(out.run_id, tmp_path / "r.csv", "csv"), keep_default_na=False)
    for got in (parquet, csv):
        assert len(got) == len(records) > 0 and (got.run_id == out.run_id).all()
        pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False, check_exact=True)
    with pytest.raises(LazyrichError, match="use parquet or csv"):
        store.export(out.run_id, tmp_path / "r.json", "json")


def test_runs_record_code_and_chunks_record_which_code_computed_them(tmp_path, tiny):
    from lazyrich.sweep.executor import source_digest
    from lazyrich.sweep.run import code_version

    out = run_sweep(from_dict(tiny()), tmp_path / "s.duckdb", progress=False)
    info = Store(out.store).run(out.run_id)
    assert info["code_version"] == code_version() and info["code_version"].endswith(f" src:{source_digest()}")
    con = duckdb.connect(str(out.store), read_only=True)
    assert con.execute("SELECT DISTINCT code FROM chunks").fetchall() == [(source_digest(),)]
    con.close()


class _Refuse:
    """A chunk that refuses its configuration at run time (like a check only the build can make)."""

    def __call__(self, task):
        raise LazyrichError("batch_size 1000 exceeds the 20 training samples")


CLASS6 = {  # refusals that older versions made only inside the first chunk (validation may catch them now)
    "batch_size": ({"optimizer": {"kind": "sgd", "lr": 0.05, "batch_size": 1000}}, r"batch_size:? 1000 exceeds"),
    "observer option": ({"observables": ["loss", {"kernel_distance": {"weights": "bogus"}}]}, "bogus"),
    "refusal in the chunk": ({"seed": 5}, "batch_size 1000 exceeds"),
}


@pytest.mark.parametrize("case", list(CLASS6))
def test_nothing_is_written_unless_the_first_chunk_runs(tmp_path, tiny, case):
    """Class 6: a sweep refused anywhere before its first chunk is stored leaves no store file, and in
    an existing store no run row and not a byte changed."""
    from lazyrich.sweep.executor import execute_chunk

    changes, message = CLASS6[case]
    spec = tiny(**changes)
    run = _Refuse() if case == "refusal in the chunk" else execute_chunk
    with pytest.raises(LazyrichError, match=message):
        run_sweep(spec, tmp_path / "new" / "s.duckdb", progress=False, runner=run)
    assert not (tmp_path / "new").exists()
    out = run_sweep(from_dict(tiny()), tmp_path / "s.duckdb", progress=False)
    before = out.store.read_bytes()
    for resume in (False, True):
        with pytest.raises(LazyrichError, match=message):
            run_sweep(spec, out.store, progress=False, runner=run, resume=resume)
        assert out.store.read_bytes() == before and len(Store(out.store).runs()) == 1


def test_resumes_that_start_at_once_join_one_run(tmp_path):
    """Two `--resume` of the same sweep on a store that holds no run yet: whichever stores its first
    chunk first creates the run, the other joins it (same name, device, member digests)."""
    store = Store(tmp_path / "s.duckdb")
    args = ("tiny", "digest-a", True, {}, "v", "cpu", "local", 1, 4, 2, "h")
    first, status = store.begin_run(*args)
    assert status == "new"
    assert store.begin_run(*args) == (first, "running")
    other = store.begin_run("tiny", "digest-b", True, {}, "v", "cpu", "local", 1, 4, 2, "h")[0]
    assert other != first and len(store.runs()) == 2  # other members: a run of its own
    assert store.begin_run("tiny", "digest-a", False, {}, "v", "cpu", "local", 1, 4, 2, "h")[0] not in (first, other)

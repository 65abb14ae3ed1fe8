"""Damaged stores: a store truncated, overwritten with garbage, zeroed, extended with junk, or not a
DuckDB file at all is never half-read into a traceback. Every command either answers from the
pages it can read (exit 0) or says `error: <store> is damaged (<what>): restore it or start a new
store` in one line with exit code 2 — and the file is left byte for byte as it was. `runs check`
and `sweep --resume` read every page, so both refuse every damaged file."""
import hashlib
import os
import shutil

import duckdb
import pytest
import yaml


from lazyrich.sweep import Store, from_dict, run_sweep

from .test_cli import _main
from .test_identity import StopAfter

PAGE = 256 * 1024  # DuckDB's block size


def _damage(data: bytes) -> dict[str, bytes]:
    n = len(data)
    junk = bytes(range(256)) * (PAGE // 256)
    return {
        "truncated to half": data[: n // 2],  # opens; the first query past the cut fails
        "truncated to 100 bytes": data[:100],
        "empty file": b"",
        "last page zeroed": data[: n - PAGE] + bytes(PAGE),  # opens; records fail their checksum
        "last page garbage": data[: n - PAGE] + junk,
        "catalog page garbage": data[:12288] + junk[:4096] + data[12288 + 4096:],
        "not a duckdb file": b"name: quick\nsteps: 200\n" * 500,
    }


@pytest.fixture(scope="module")
def stored(tmp_path_factory, ):
    """A store with one finished and one interrupted run, and the interrupted run's sweep file."""
    from .conftest import _tiny

    root = tmp_path_factory.mktemp("damaged")
    spec = root / "tiny.yaml"
    spec.write_text(yaml.safe_dump(_tiny(execution={"chunk_members": 1})))
    store = root / "good.duckdb"
    run_sweep(from_dict(_tiny(name="done")), store, progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, store, progress=False, runner=StopAfter(2))
    return spec, store




def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("case", list(_damage(b"x" * 4 * PAGE)))
def test_damaged_store_is_refused_in_one_line_and_left_untouched(case, stored, tmp_path, monkeypatch, capsys):
    spec, good = stored
    store = tmp_path / "s.duckdb"
    store.write_bytes(_damage(good.read_bytes())[case])
    sha = _sha(store)
    commands = [("runs", "list", "--store", store), ("runs", "show", "latest", "--store", store),
                ("runs", "export", "latest", "--out", tmp_path / "x.parquet", "--store", store),
                ("sweep", spec, "--store", store, "--resume", "--quiet"), ("sweep", spec, "--store", store, "--quiet"),
                ("runs", "check", store)]
    refused = []
    for args in commands:
        code, out, err = _main(monkeypatch, capsys, *args)
        assert "Traceback" not in err and code in (0, 2), (args, code, err)
        if code == 2:
            assert err.count("\n") == 1 and len(err) < 400, err
            assert err.startswith(f"error: {store} is damaged (") and err.endswith("): restore it or start a new store\n"), err
            refused.append(args[:2])
        assert _sha(store) == sha, f"{args} changed the file"
        assert not store.with_name(store.name + ".wal").exists()
    # the commands that read every page refuse every damaged file (and so compute nothing)
    assert {("runs", "check"), ("sweep", spec)} <= set(refused), refused
    assert not (tmp_path / "x.parquet").exists() or ("runs", "export") not in refused


def test_open_succeeds_but_queries_fail(stored, tmp_path):
    """The cases above include files that DuckDB opens and that fail only at the first query (the
    errors that used to escape as tracebacks)."""
    _, good = stored
    for case in ("truncated to half", "last page zeroed"):
        path = tmp_path / f"{case}.duckdb".replace(" ", "_")
        path.write_bytes(_damage(good.read_bytes())[case])
        con = duckdb.connect(str(path), read_only=True)
        with pytest.raises(duckdb.Error):
            con.execute('SELECT sum(hash(COLUMNS(*))) FROM records').fetchall()
        con.close()


def test_appended_junk_is_ignored_never_misread(stored, tmp_path, monkeypatch, capsys):
    """Bytes after the last page are not part of the database: the store reads exactly as before."""
    _, good = stored
    store = tmp_path / "s.duckdb"
    store.write_bytes(good.read_bytes() + os.urandom(5000))
    code, out, err = _main(monkeypatch, capsys, "runs", "check", store)
    assert code == 0 and out.rstrip().endswith(f"{store}: healthy"), err
    for run_id in Store(good).runs().run_id:
        assert Store(store).records(run_id).equals(Store(good).records(run_id))


def test_check_reports_runs_chunks_and_what_resume_recomputes(stored, tmp_path, monkeypatch, capsys):
    spec, good = stored
    store = tmp_path / "s.duckdb"
    shutil.copy(good, store)
    sha = _sha(store)
    code, out, err = _main(monkeypatch, capsys, "runs", "check", store)
    assert code == 0, err
    lines = out.splitlines()
    assert "table records: 288 rows, every page readable" in lines  # (4 + 2) members × 4 points × 12 rows
    runs = Store(good).runs()
    done, stopped = runs.run_id
    assert f"run {done} (done): 2/2 chunks intact" in lines
    assert f"run {stopped} (interrupted): 2/4 chunks intact; --resume computes 2" in lines
    # a member whose records were lost (rows deleted by hand) and a member edited by hand
    con = duckdb.connect(str(store))
    con.execute("DELETE FROM records WHERE run_id = ? AND member = 1 AND step = 30", [stopped])
    con.execute("UPDATE members SET lr = 0.5 WHERE run_id = ? AND member = 0", [done])
    con.close()
    sha = _sha(store)
    code, out, err = _main(monkeypatch, capsys, "runs", "check", store)
    assert code == 2 and _sha(store) == sha
    assert f"run {stopped} chunk 1: member 1 lacks records (planned points: 4)" in out
    assert f"run {done} chunk 0: member 0's digest is not its planned configuration's" in out
    assert f"run {stopped} (interrupted): 1/4 chunks intact, 1 damaged" in out.splitlines()
    assert "recoverable: the specs of 2 runs (lazyrich runs show RUN --spec: rerun them into a new store); 2 intact " \
           "chunks of 2 runs" in out
    assert err.startswith(f"error: {store} is damaged (run ")


class _CommitFails:
    """A write connection whose every commit fails as a full or failing disk makes it fail."""

    def __init__(self, con):
        self._con = con

    def commit(self):
        raise duckdb.IOException("IO Error: Could not fsync file: No space left on device")

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_write_and_commit_errors_take_the_same_path(tmp_path, tiny, monkeypatch):
    """A DuckDB error while writing (here at commit) is the same one-line refusal, not a traceback."""
    from lazyrich.sweep.store import StoreDamaged

    opened = Store._open
    monkeypatch.setattr(Store, "_open", lambda self, write: _CommitFails(opened(self, write)) if write else opened(self, write))
    store = tmp_path / "s.duckdb"
    with pytest.raises(StoreDamaged) as err:
        run_sweep(from_dict(tiny()), store, progress=False)
    assert str(err.value) == (f"{store} is damaged (IO Error: Could not fsync file: No space left on device): "
                              "restore it or start a new store")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.fixture(scope="module")
def reads(stored):
    """What the good store reads as: (name, read function, value)."""
    _, good = stored
    ref = Store(good)
    ids = list(ref.runs().run_id)
    fns = [("verify", lambda s: s.verify()), ("runs", lambda s: s.runs().drop(columns=["started_at", "ended_at"])),
           *[(f"members {r}", lambda s, r=r: s.members(r)) for r in ids],
           *[(f"records {r}", lambda s, r=r: s.records(r)) for r in ids]]
    return [(name, fn, fn(ref)) for name, fn in fns]


@settings(max_examples=5000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 8)
@given(kind=st.sampled_from(["truncate", "zero", "garbage", "flip a bit"]), where=st.floats(0, 1),
       length=st.integers(1, 2 * PAGE))
def test_random_damage_never_gives_a_wrong_number(stored, reads, tmp_path_factory, kind, where, length):
    """Whatever the damage, reading a store either gives exactly the numbers stored or refuses with
    `StoreDamaged`, and reading never changes the file. (HYPOTHESIS_PROFILE=long: 5000 damages.)"""
    from lazyrich.sweep.store import StoreDamaged

    _, good = stored
    data = good.read_bytes()
    at = int(where * (len(data) - 1))
    if kind == "truncate":
        bad = data[:at]
    elif kind == "flip a bit":
        bad = data[:at] + bytes([data[at] ^ (1 << (length % 8))]) + data[at + 1:]
    else:
        fill = bytes(length) if kind == "zero" else (bytes(range(256)) * (length // 256 + 1))[:length]
        bad = data[:at] + fill + data[at + length:]
    store = tmp_path_factory.mktemp("random") / "s.duckdb"
    store.write_bytes(bad)
    db = Store(store)
    for name, read, want in reads:
        try:
            got = read(db)
        except StoreDamaged:
            continue
        assert got == want if isinstance(want, dict) else got.equals(want), name
    assert store.read_bytes() == bad


def test_check_of_a_run_stored_before_digests_is_a_note_not_damage(stored, tmp_path, monkeypatch, capsys):
    _, good = stored
    store = tmp_path / "s.duckdb"
    shutil.copy(good, store)
    con = duckdb.connect(str(store))
    con.execute("UPDATE members SET digest = NULL")
    con.close()
    code, out, err = _main(monkeypatch, capsys, "runs", "check", store)
    assert code == 0, err
    assert out.count("was stored before member digests; its members are not verified") == 2

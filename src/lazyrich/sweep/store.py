"""The results store: one embedded DuckDB file (no server), written by one process at a time.

Tables
  runs     one row per sweep run: config (JSON), spec digest, digest of its member set, code version,
           device, backend, threads, sizes, status (running | done | failed | interrupted), times
  chunks   one row per finished chunk (its presence means the chunk is stored whole) and its digest
  members  one row per configuration: every member key as its own column, status, diverged_step and
           the digest of its full resolved configuration (identity.py)
  records  the long table: run_id, member, step, time, observable, layer, index, value

A chunk's members, records and chunks row are written in one transaction, so after a crash a
chunk is in the store whole or not at all, and a resumed run recomputes exactly the missing ones.
The file is opened only for the moment of a read or a write; a second process that finds it
locked waits up to `busy_timeout` seconds, then gets a "store is busy" error. Every other DuckDB
error, at open, read, write or commit, is `StoreDamaged`; read-only commands open the file
read-only, and a sweep reads the whole file (`verify`) before it opens it for writing, so a damaged
file is refused untouched.
"""
from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import duckdb

from ..errors import LazyrichError, require

if TYPE_CHECKING:
    import pandas as pd
from .keys import INT_KEYS, MEMBER_NAMES as MEMBER_KEYS, STR_KEYS

DEFAULT_STORE = Path("lazyrich-runs") / "lazyrich.duckdb"
SCHEMA_VERSION = 2
TABLES = ("meta", "runs", "chunks", "members", "records")
_TYPES = {k: "BIGINT" if k in INT_KEYS else "VARCHAR" if k in STR_KEYS else "DOUBLE" for k in MEMBER_KEYS}
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, name VARCHAR, spec_digest VARCHAR, config JSON, code_version VARCHAR,
        device VARCHAR, backend VARCHAR, threads INTEGER, n_members BIGINT, n_chunks INTEGER,
        status VARCHAR, started_at TIMESTAMP, ended_at TIMESTAMP, host VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS chunks (
        run_id VARCHAR, chunk INTEGER, n_members INTEGER, wall_s DOUBLE, worker VARCHAR, code VARCHAR,
        finished_at TIMESTAMP, PRIMARY KEY (run_id, chunk))""",
    "CREATE TABLE IF NOT EXISTS members (run_id VARCHAR, member BIGINT, chunk INTEGER, "
    + ", ".join(f'"{k}" {t}' for k, t in _TYPES.items())
    + ", status VARCHAR, diverged_step BIGINT, PRIMARY KEY (run_id, member))",
    """CREATE TABLE IF NOT EXISTS records (
        run_id VARCHAR, member BIGINT, step BIGINT, time DOUBLE, observable VARCHAR, layer VARCHAR,
        "index" BIGINT, value DOUBLE)""",
    # schema 2: identity digests (added to schema-1 stores in place)
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS members_digest VARCHAR",
    "ALTER TABLE chunks ADD COLUMN IF NOT EXISTS digest VARCHAR",
    "ALTER TABLE members ADD COLUMN IF NOT EXISTS digest VARCHAR",
]
MEMBER_COLUMNS = ["member", "chunk", *MEMBER_KEYS, "status", "diverged_step", "digest"]
# search trials (sweep/search.py): created by the first search batch, so stores without searches are unchanged
TRIALS_SCHEMA = ("CREATE TABLE IF NOT EXISTS trials (run_id VARCHAR, study INTEGER, batch INTEGER, trial INTEGER, "
                 "member BIGINT, state VARCHAR, objectives DOUBLE[], cost DOUBLE, params JSON, system_attrs JSON, "
                 "PRIMARY KEY (run_id, study, trial))")
TRIAL_COLUMNS = ["study", "batch", "trial", "member", "state", "objectives", "cost", "params", "system_attrs"]
RUN_COLUMNS = ["run_id", "name", "spec_digest", "config", "code_version", "device", "backend", "threads", "n_members",
               "n_chunks", "status", "started_at", "ended_at", "host", "members_digest"]



def _insert_chunk(con: "duckdb.DuckDBPyConnection", run_id: str, chunk: int, members: "pd.DataFrame",
                  records: "pd.DataFrame", wall_s: float, worker: str, code: str, digest: str | None) -> None:
    """One chunk's members, records and chunk row, inside the caller's transaction (the caller commits)."""
    con.register("_members", members[MEMBER_COLUMNS])
    con.register("_records", records)
    try:
        cols = ", ".join(f'"{c}"' for c in MEMBER_COLUMNS)
        con.execute(f"INSERT INTO members (run_id, {cols}) SELECT ?, {cols} FROM _members", [run_id])
        con.execute('INSERT INTO records SELECT ?, member, step, time, observable, layer, "index", value '
                    "FROM _records", [run_id])
        con.execute("INSERT INTO chunks (run_id, chunk, n_members, wall_s, worker, code, finished_at, digest) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [run_id, chunk, len(members), wall_s, worker, code, _now(), digest])
    finally:
        with contextlib.suppress(duckdb.Error, KeyError):
            con.unregister("_members")
            con.unregister("_records")

class StoreBusy(LazyrichError):
    """Another process holds the store longer than the busy timeout."""


class StoreDamaged(LazyrichError):
    """DuckDB cannot read or write the file: nothing of it is trusted, nothing is written to it."""

    def __init__(self, path: Path, what: str):
        self.what = what
        super().__init__(f"{path} is damaged ({what}): restore it or start a new store")


def damaged(path: Path, exc: BaseException | str) -> StoreDamaged:
    """`StoreDamaged` with DuckDB's first line (its file name dropped: the message names it once)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r'\s*"[^"]*(/|\.duckdb|\.wal)[^"]*"', "", text)  # 'the file "/x/y" exists' → 'the file exists'
    text = re.sub(r"computed checksum \d+ does not match (the filed|stored) checksum \d+", "checksum mismatch", text)
    return StoreDamaged(path, text if len(text) <= 160 else text[:159] + "…")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
                                      ).fetchall()}


class Store:
    """A DuckDB results file. Every method opens it, does one thing, and closes it."""

    def __init__(self, path: str | Path = DEFAULT_STORE, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.busy_timeout = busy_timeout

    # ------------------------------------------------------------ connection
    def _open(self, write: bool) -> duckdb.DuckDBPyConnection:
        deadline, wait = time.monotonic() + self.busy_timeout, 0.02
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=not write)
            except duckdb.IOException as exc:
                text = str(exc)
                if "lock" not in text.lower():
                    raise damaged(self.path, exc) from None
                if time.monotonic() >= deadline:
                    pid = re.search(r"PID (\d+)", text)
                    who = f"process {pid.group(1)}" if pid else "another process"
                    raise StoreBusy(f"store {self.path} is busy: {who} holds it; wait for it to finish or use another --store") from None
                time.sleep(wait)
                wait = min(wait * 2, 0.5)
            except duckdb.Error as exc:
                raise damaged(self.path, exc) from None

    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one operation (read-only unless `write`); DuckDB errors become `StoreDamaged`."""
        if not write:
            require(self.path.is_file(), f"no store at {self.path}: run a sweep first, or pass --store PATH")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open(write)
        try:
            if write:
                self._schema(con)
            yield con
        except duckdb.ConversionException:
            raise  # a frame lazyrich built does not fit its column: a bug, not damage (nothing was written)
        except duckdb.Error as exc:
            raise damaged(self.path, exc) from None
        finally:
            try:
                con.close()
            except duckdb.Error as exc:  # pragma: no cover - a failed checkpoint at close
                raise damaged(self.path, exc) from None

    def _schema(self, con: duckdb.DuckDBPyConnection) -> None:
        tables = _tables(con)
        if tables and "meta" not in tables:
            raise StoreDamaged(self.path, f"not a lazyrich store: it holds tables {', '.join(sorted(tables))}")
        if tables:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and row[0] == str(SCHEMA_VERSION):
                return
        con.begin()  # the whole schema or none of it
        for stmt in SCHEMA:
            con.execute(stmt)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.commit()

    def verify(self) -> dict[str, int]:
        """Read every column of every table (read-only); rows per table. Raises `StoreDamaged` on any
        unreadable page or missing table. An empty DuckDB file (a store being created) gives {}."""
        if not self.path.exists():
            return {}
        require(not self.path.is_dir(), f"--store {self.path} is a directory: give a file, e.g. {self.path / 'lazyrich.duckdb'}")
        with self.connect() as con:
            tables = _tables(con)
            if not tables:
                return {}
            missing = [t for t in TABLES if t not in tables]
            if missing:
                raise StoreDamaged(self.path, f"table {missing[0]} is missing")
            return {t: con.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {t}").fetchone()[0] for t in TABLES}

    # ------------------------------------------------------------ runs
    def find_runs(self, name: str, device: str) -> list[dict[str, Any]]:
        """Runs of sweep `name` on `device`, newest first, with their stored config and chunks done."""
        if not self.path.exists():
            return []
        with self.connect() as con:
            if "runs" not in _tables(con):  # an empty DuckDB file: a store being created
                return []
            cur = con.execute("SELECT r.*, coalesce(c.done, 0) AS chunks_done FROM runs r LEFT JOIN (SELECT run_id, "
                              "count(*) AS done FROM chunks GROUP BY run_id) c USING (run_id) WHERE r.name = ? AND "
                              "r.device = ? ORDER BY r.started_at DESC", [name, device])
            rows = [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
        for row in rows:
            row["config"] = json.loads(row["config"]) if row["config"] else {}
        return rows

    def begin_run(self, name: str, members_digest: str, resume: bool, config: dict[str, Any], code_version: str,
                  device: str, backend: str, threads: int, n_members: int, n_chunks: int, host: str,
                  spec_digest: str = "") -> tuple[str, str]:
        """(run_id, status before this call). With `resume`, the newest run of this name, device and
        member set if any (reopened unless done); otherwise a new run. One session: two processes
        resuming at once find or create the same run."""
        with self.connect(write=True) as con:
            if resume:
                row = con.execute("SELECT run_id, status FROM runs WHERE name = ? AND device = ? AND members_digest = ? "
                                  "ORDER BY started_at DESC LIMIT 1", [name, device, members_digest]).fetchone()
                if row is not None:
                    if row[1] != "done":
                        con.execute("UPDATE runs SET status = 'running', ended_at = NULL, backend = ? WHERE run_id = ?",
                                    [backend, row[0]])
                    return row[0], row[1]
            run_id = f"{name}-{_now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
            con.execute(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, "
                        "NULL, ?, ?)", [run_id, name, spec_digest, json.dumps(config), code_version, device, backend,
                                        threads, n_members, n_chunks, _now(), host, members_digest])
        return run_id, "new"

    def create_run(self, name: str, digest: str, config: dict[str, Any], code_version: str, device: str,
                   backend: str, threads: int, n_members: int, n_chunks: int, host: str) -> str:
        return self.begin_run(name, digest, False, config, code_version, device, backend, threads, n_members,
                              n_chunks, host)[0]

    def done_chunks(self, run_id: str) -> set[int]:
        return set(self.chunk_digests(run_id))

    def chunk_digests(self, run_id: str) -> dict[int, str | None]:
        """Stored chunks of a run and their digests."""
        with self.connect() as con:
            return {int(c): d for c, d in con.execute("SELECT chunk, digest FROM chunks WHERE run_id = ?", [run_id]).fetchall()}

    def member_digests(self, run_id: str) -> pd.DataFrame:
        """Stored members of a run: member, chunk, digest and every member key."""
        with self.connect() as con:
            return con.execute("SELECT * EXCLUDE (run_id) FROM members WHERE run_id = ? ORDER BY member", [run_id]).df()

    def finish(self, run_id: str, status: str) -> None:
        with self.connect(write=True) as con:
            con.execute("UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ?", [status, _now(), run_id])

    # ------------------------------------------------------------ chunks
    def write_chunks(self, run_id: str, items: list[tuple[Any, ...]]) -> int:
        """Write (chunk, members, records, wall_s, worker, code[, digest]) items, one transaction each; a
        chunk already stored with the same digest (e.g. by a concurrent resume) is skipped, one stored
        with a different digest is refused. Returns how many were written."""
        written = 0
        with self.connect(write=True) as con:
            for chunk, members, records, wall_s, worker, code, *rest in items:
                digest = rest[0] if rest else None
                if "digest" not in members:
                    members = members.assign(digest=None)
                con.begin()
                try:
                    row = con.execute("SELECT digest FROM chunks WHERE run_id = ? AND chunk = ?", [run_id, chunk]).fetchone()
                    if row is not None:
                        con.rollback()
                        if row[0] != digest and None not in (row[0], digest):
                            raise LazyrichError(f"chunk {chunk} of run {run_id} is stored with other members than "
                                                "this process planned; start a new run (drop --resume)")
                        continue
                    _insert_chunk(con, run_id, chunk, members, records, wall_s, worker, code, digest)
                    con.commit()
                    written += 1
                except BaseException:
                    with contextlib.suppress(duckdb.Error):
                        con.rollback()
                    raise
        return written

    # ------------------------------------------------------------ search batches
    def write_search_batch(self, run_id: str, batch: int, items: list[tuple[Any, ...]], trials: "pd.DataFrame") -> bool:
        """One batch of a search (sweep/search.py): its chunks (as `write_chunks` items, with digests) and
        its `trials` rows in ONE transaction, so a batch is stored whole or not at all. A batch already
        stored (a concurrent resume) is skipped: returns False."""
        with self.connect(write=True) as con:
            con.begin()
            try:
                con.execute(TRIALS_SCHEMA)
                if con.execute("SELECT count(*) FROM trials WHERE run_id = ? AND batch = ?", [run_id, batch]).fetchall()[0][0]:
                    con.rollback()
                    return False
                for chunk, members, records, wall_s, worker, code, digest in items:
                    _insert_chunk(con, run_id, chunk, members, records, wall_s, worker, code, digest)
                con.register("_trials", trials[TRIAL_COLUMNS])
                con.execute(f"INSERT INTO trials SELECT ?, {', '.join(TRIAL_COLUMNS)} FROM _trials", [run_id])
                con.commit()
                return True
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.rollback()
                raise
            finally:
                for name in ("_members", "_records", "_trials"):
                    with contextlib.suppress(duckdb.Error, KeyError):
                        con.unregister(name)

    def trials(self, run_id: str) -> "pd.DataFrame":
        """A search run's trials in order (study, batch, trial); empty for a sweep or a store without searches."""
        import pandas as pd

        with self.connect() as con:
            if "trials" not in _tables(con):
                return pd.DataFrame(columns=TRIAL_COLUMNS)
            return con.execute("SELECT * EXCLUDE (run_id) FROM trials WHERE run_id = ? ORDER BY study, batch, trial",
                               [run_id]).df()

    # ------------------------------------------------------------ reading
    def resolve(self, run: str) -> str:
        """A run id from an id, a unique prefix of one, or `latest`."""
        with self.connect() as con:
            if run == "latest":
                row = con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
                require(row is not None, f"store {self.path} holds no runs yet")
                return row[0]
            ids = [r[0] for r in con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [run]).fetchall()]
        require(len(ids) > 0, f"no run {run!r} in {self.path}: see `lazyrich runs list`")
        require(len(ids) == 1, f"{run!r} matches {len(ids)} runs ({', '.join(ids[:3])}, ...): give more of the id")
        return ids[0]

    def spec_of(self, run_id: str) -> dict[str, Any]:
        """The sweep a run was started with (its validated spec, as stored); reads the runs table only."""
        with self.connect() as con:
            row = con.execute("SELECT config FROM runs WHERE run_id = ?", [run_id]).fetchone()
        require(row is not None, f"no run {run_id!r} in {self.path}: see `lazyrich runs list`")
        config = json.loads(row[0])
        return {**config["spec"], "search": config["search"]} if "search" in config else config["spec"]

    _RUNS = ("SELECT r.run_id, r.status, r.n_members, r.n_chunks, coalesce(c.done, 0) AS chunks_done, r.device, "
             "r.backend, r.started_at, r.ended_at FROM runs r LEFT JOIN (SELECT run_id, count(*) AS done FROM chunks "
             "GROUP BY run_id) c USING (run_id) ORDER BY r.started_at")

    def runs(self) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(self._RUNS).df()

    def run_rows(self) -> list[dict[str, Any]]:
        """`runs()` as plain rows: no pandas, so `lazyrich runs list` answers without loading it."""
        with self.connect() as con:
            cur = con.execute(self._RUNS)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def run(self, run_id: str) -> dict[str, Any]:
        with self.connect() as con:
            cur = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
            row = cur.fetchone()
            require(row is not None, f"no run {run_id!r} in {self.path}: see `lazyrich runs list`")
            out = dict(zip([d[0] for d in cur.description], row))
            out["chunks_done"] = con.execute("SELECT count(*) FROM chunks WHERE run_id = ?", [run_id]).fetchone()[0]
            out["member_status"] = dict(con.execute("SELECT status, count(*) FROM members WHERE run_id = ? GROUP BY ALL "
                                                    "ORDER BY ALL", [run_id]).fetchall())
            out["observables"] = con.execute("SELECT observable, layer, count(*) AS rows, max(step) AS last_step FROM "
                                             "records WHERE run_id = ? GROUP BY ALL ORDER BY ALL", [run_id]).df()
        return out

    def members(self, run_id: str) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute("SELECT * EXCLUDE (run_id) FROM members WHERE run_id = ? ORDER BY member", [run_id]).df()

    def records(self, run_id: str) -> pd.DataFrame:
        """The run's records in a canonical order (member, step, observable, layer, index)."""
        with self.connect() as con:
            return con.execute('SELECT * EXCLUDE (run_id) FROM records WHERE run_id = ? '
                               'ORDER BY member, step, observable, layer, "index"', [run_id]).df()

    def export(self, run_id: str, path: str | Path, fmt: str) -> Path:
        """Records joined with the members' config columns, as Parquet or CSV."""
        require(fmt in ("parquet", "csv"), f"--format {fmt!r}: use parquet or csv")
        path = Path(path)
        require(not path.is_dir(), f"--out {path} is a directory: give a file name, e.g. {path / f'run.{fmt}'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        option = "(FORMAT parquet)" if fmt == "parquet" else "(FORMAT csv, HEADER true)"
        with self.connect() as con:
            digest = ", m.digest" if _has_column(con, "members", "digest") else ""  # schema-1 stores have none
            query = ("SELECT r.run_id, r.member, " + ", ".join(f'm."{k}"' for k in MEMBER_KEYS) +
                     f', m.status, m.diverged_step{digest}, r.step, r.time, r.observable, r.layer, r."index", r.value '
                     "FROM records r JOIN members m USING (run_id, member) WHERE r.run_id = $run "
                     'ORDER BY r.member, r.step, r.observable, r.layer, r."index"')
            try:
                con.execute(f"COPY ({query}) TO '{_sql_path(path)}' {option}", {"run": run_id})
            except duckdb.Error as exc:
                # the store's fault only if the rows cannot be read; otherwise the output path's
                con.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM ({query})", {"run": run_id}).fetchone()
                raise LazyrichError(f"cannot write {path}: {str(exc).splitlines()[0]}; choose another --out") from None
        return path


def _has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = ?",
                       [table, column]).fetchone()[0] > 0


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")

"""The results store: one embedded DuckDB file (no server), written by one process at a time.

Tables
  runs     one row per sweep run: config (JSON), spec digest, code version, device, backend,
           threads, sizes, status (running | done | failed | interrupted), start and end times
  chunks   one row per finished chunk (its presence means the chunk is stored whole)
  members  one row per configuration: every member key as its own column, status, diverged_step
  records  the long table: run_id, member, step, time, observable, layer, index, value

A chunk's members, records and chunks row are written in one transaction, so after a crash a
chunk is in the store whole or not at all, and a resumed run recomputes exactly the missing ones.
The file is opened only for the moment of a read or a write; a second process that finds it
locked waits up to `busy_timeout` seconds, then gets a "store is busy" error.
"""
from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pandas as pd

from ..errors import LazyrichError, require
from .planner import INT_KEYS, STR_KEYS
from .spec import MEMBER_KEYS

DEFAULT_STORE = Path("lazyrich-runs") / "lazyrich.duckdb"
SCHEMA_VERSION = 1
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
]
MEMBER_COLUMNS = ["member", "chunk", *MEMBER_KEYS, "status", "diverged_step"]


class StoreBusy(LazyrichError):
    """Another process holds the store longer than the busy timeout."""


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Store:
    """A DuckDB results file. Every method opens it, does one thing, and closes it."""

    def __init__(self, path: str | Path = DEFAULT_STORE, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.busy_timeout = busy_timeout

    # ------------------------------------------------------------ connection
    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not write:
            require(self.path.is_file(), f"no store at {self.path}: run a sweep first, or pass --store PATH")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline, wait = time.monotonic() + self.busy_timeout, 0.02
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=not write)
                break
            except duckdb.IOException as exc:
                text = str(exc)
                if "lock" not in text.lower():
                    raise LazyrichError(f"cannot open store {self.path}: {text.splitlines()[0]}") from None
                if time.monotonic() >= deadline:
                    pid = re.search(r"PID (\d+)", text)
                    who = f"process {pid.group(1)}" if pid else "another process"
                    raise StoreBusy(f"store {self.path} is busy: {who} holds it; wait for it to finish or use another --store") from None
                time.sleep(wait)
                wait = min(wait * 2, 0.5)
            except duckdb.Error as exc:
                raise LazyrichError(f"cannot open store {self.path}: {str(exc).splitlines()[0]}; is it a lazyrich DuckDB file?") from None
        try:
            if write:
                for stmt in SCHEMA:
                    con.execute(stmt)
                con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            yield con
        finally:
            con.close()

    # ------------------------------------------------------------ runs
    def open_run(self, name: str, digest: str, resume: bool, config: dict[str, Any], code_version: str, device: str,
                 backend: str, threads: int, n_members: int, n_chunks: int, host: str) -> tuple[str, str, str]:
        """(run_id, status before this call, its code version) of the run to fill. With `resume`, the
        newest run with this digest if any (reopened unless done); otherwise a new run. One session:
        two processes resuming at once find or create the same run."""
        with self.connect(write=True) as con:
            if resume:
                row = con.execute("SELECT run_id, status, code_version FROM runs WHERE spec_digest = ? "
                                  "ORDER BY started_at DESC LIMIT 1", [digest]).fetchone()
                if row is not None:
                    if row[1] != "done":
                        con.execute("UPDATE runs SET status = 'running', ended_at = NULL, backend = ? WHERE run_id = ?",
                                    [backend, row[0]])
                    return row[0], row[1], row[2]
            run_id = f"{name}-{_now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
            con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, NULL, ?)",
                        [run_id, name, digest, json.dumps(config), code_version, device, backend, threads,
                         n_members, n_chunks, _now(), host])
        return run_id, "new", code_version

    def create_run(self, name: str, digest: str, config: dict[str, Any], code_version: str, device: str,
                   backend: str, threads: int, n_members: int, n_chunks: int, host: str) -> str:
        return self.open_run(name, digest, False, config, code_version, device, backend, threads, n_members,
                             n_chunks, host)[0]

    def done_chunks(self, run_id: str) -> set[int]:
        with self.connect(write=True) as con:
            return {int(r[0]) for r in con.execute("SELECT chunk FROM chunks WHERE run_id = ?", [run_id]).fetchall()}

    def finish(self, run_id: str, status: str) -> None:
        with self.connect(write=True) as con:
            con.execute("UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ?", [status, _now(), run_id])

    # ------------------------------------------------------------ chunks
    def write_chunks(self, run_id: str, items: list[tuple[int, pd.DataFrame, pd.DataFrame, float, str, str]]) -> int:
        """Write (chunk, members, records, wall_s, worker, code) items, one transaction each; a chunk
        already stored (e.g. by a concurrent resume) is skipped. Returns how many were written."""
        written = 0
        with self.connect(write=True) as con:
            for chunk, members, records, wall_s, worker, code in items:
                con.begin()
                try:
                    if con.execute("SELECT 1 FROM chunks WHERE run_id = ? AND chunk = ?", [run_id, chunk]).fetchone():
                        con.rollback()
                        continue
                    con.register("_members", members[MEMBER_COLUMNS])
                    con.register("_records", records)
                    cols = ", ".join(f'"{c}"' for c in MEMBER_COLUMNS)
                    con.execute(f"INSERT INTO members (run_id, {cols}) SELECT ?, {cols} FROM _members", [run_id])
                    con.execute('INSERT INTO records SELECT ?, member, step, time, observable, layer, "index", value '
                                "FROM _records", [run_id])
                    con.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                                [run_id, chunk, len(members), wall_s, worker, code, _now()])
                    con.commit()
                    written += 1
                except BaseException:
                    con.rollback()
                    raise
                finally:
                    con.unregister("_members")
                    con.unregister("_records")
        return written

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

    def runs(self) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(
                "SELECT r.run_id, r.status, r.n_members, r.n_chunks, coalesce(c.done, 0) AS chunks_done, r.device, "
                "r.backend, r.started_at, r.ended_at FROM runs r LEFT JOIN (SELECT run_id, count(*) AS done FROM chunks "
                "GROUP BY run_id) c USING (run_id) ORDER BY r.started_at").df()

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
        path.parent.mkdir(parents=True, exist_ok=True)
        option = "(FORMAT parquet)" if fmt == "parquet" else "(FORMAT csv, HEADER true)"
        query = ("SELECT r.run_id, r.member, " + ", ".join(f'm."{k}"' for k in MEMBER_KEYS) +
                 ', m.status, m.diverged_step, r.step, r.time, r.observable, r.layer, r."index", r.value '
                 "FROM records r JOIN members m USING (run_id, member) WHERE r.run_id = $run "
                 'ORDER BY r.member, r.step, r.observable, r.layer, r."index"')
        with self.connect() as con:
            con.execute(f"COPY ({query}) TO '{_sql_path(path)}' {option}", {"run": run_id})
        return path


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")

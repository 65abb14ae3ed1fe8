"""`lazyrich runs check STORE`: is every page readable, is every stored member the one its run
planned (digests), are its records complete — and what can be recovered from a damaged file.

The file is opened read-only and never written. A chunk is *intact* when its members' digests
are the planned ones, its chunk digest matches, and every member has a record at every planned
point with as many rows as the other members of its chunk. Unfinished runs are not damage: their
missing chunks are what `--resume` computes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ..errors import LazyrichError
from .store import TABLES, Store, StoreDamaged, damaged


@dataclass
class CheckReport:
    lines: list[str] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)  # one entry per problem; empty when healthy
    intact: dict[str, int] = field(default_factory=dict)  # run → intact chunks

    @property
    def healthy(self) -> bool:
        return not self.damage

    def bad(self, text: str) -> None:
        self.damage.append(text)
        self.lines.append(f"  DAMAGED {text}")


def _scan(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple[Any, str | None]:
    try:
        return con.execute(sql, params or []).fetchall(), None
    except duckdb.Error as exc:
        return None, damaged(Path("store"), exc).what


def _planned(config: dict[str, Any]) -> tuple[Any, Any, int]:
    """(spec, member digests, record points) of a stored run, re-planned from its own spec."""
    from .identity import member_digests
    from .planner import plan
    from .validate import from_dict

    the_plan = plan(from_dict(config["spec"], "stored spec"))
    return the_plan, member_digests(the_plan, config["device"], config["threads"]), len(the_plan.spec.record_points())


def _search_planned(con: duckdb.DuckDBPyConnection, config: dict[str, Any], run_id: str) -> tuple[Any, Any, dict, int]:
    """A search (sweep/search.py) proposes its members as it runs, so nothing re-plans them: each stored
    member must carry the digest of its own stored row, and each chunk the digest of its members."""
    from types import SimpleNamespace

    from .identity import set_digest
    from .validate import from_dict

    spec = from_dict(config["spec"], "stored spec")
    digests = _recomputed(con, spec, config, run_id)
    chunks = con.execute("SELECT chunk, member FROM members WHERE run_id = ?", [run_id]).df()
    planned = {int(c): set_digest(digests.loc[g["member"]]) for c, g in chunks.groupby("chunk")}
    return SimpleNamespace(spec=spec), digests, planned, len(spec.record_points())


def _recomputed(con: duckdb.DuckDBPyConnection, spec: Any, config: dict[str, Any], run_id: str) -> Any:
    """Digests recomputed from the stored member rows (their keys as stored) and the run's context."""
    from .identity import digests_of

    frame = con.execute("SELECT * FROM members WHERE run_id = ? ORDER BY member", [run_id]).df().set_index("member")
    return digests_of(spec, frame, config["device"], config["threads"])


def _check_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any], readable: set[str], report: CheckReport) -> None:
    import json

    from .identity import chunk_digests, set_digest

    run_id = run["run_id"]
    config = json.loads(run["config"]) if run["config"] else {}
    try:
        if "search" in config:
            the_plan, digests, planned_chunks, points = _search_planned(con, config, run_id)
        else:
            the_plan, digests, points = _planned(config)
            planned_chunks = chunk_digests(the_plan, digests)
    except (LazyrichError, KeyError, TypeError, ValueError, duckdb.Error) as exc:
        the_plan = digests = planned_chunks = None
        points = None
        report.lines.append(f"  note: run {run_id} cannot be re-planned by this lazyrich ({str(exc).splitlines()[0][:100]}); "
                            "digests not verified")
    stored_chunks: dict[int, tuple[int, str | None]] = {}
    if "chunks" in readable:
        rows, _ = _scan(con, "SELECT chunk, n_members, digest FROM chunks WHERE run_id = ?", [run_id])
        stored_chunks = {int(c): (int(n), d) for c, n, d in rows or []}
    members: dict[int, list[tuple[int, str | None]]] = {}
    from_rows = None
    if "members" in readable and the_plan is not None:
        from_rows = _recomputed(con, the_plan.spec, config, run_id)
    if "members" in readable:
        rows, _ = _scan(con, "SELECT chunk, member, digest FROM members WHERE run_id = ? ORDER BY member", [run_id])
        for c, m, d in rows or []:
            members.setdefault(int(c), []).append((int(m), d))
    if members and all(d is None for ms in members.values() for _, d in ms):  # schema 1: no digests yet
        report.lines.append(f"  note: run {run_id} was stored before member digests; its members are not verified")
        digests = None
    planned_by_id = {} if digests is None else digests.to_dict()
    by_rows = {} if from_rows is None else from_rows.to_dict()
    counts_sql = ('SELECT member, count(*), count(DISTINCT step), sum(hash(step, time, observable, layer, "index", '
                  'value)) FROM records WHERE run_id = ? {} GROUP BY member')
    whole, _ = _scan(con, counts_sql.format(""), [run_id])  # one query; per chunk only if it fails
    whole = None if whole is None else {int(m): (int(r), int(s)) for m, r, s, _ in whole}
    intact, bad = 0, 0
    for chunk, (n, digest) in sorted(stored_chunks.items()):
        problems = []
        mine = members.get(chunk, [])
        if "members" in readable and len(mine) != n:
            problems.append(f"{len(mine)} of its {n} members stored")
        if digests is not None and mine:
            wrong = [m for m, d in mine if planned_by_id.get(m) != d or by_rows.get(m) != d]
            if wrong:
                problems.append(f"member {wrong[0]}'s digest is not its planned configuration's")
            elif digest != set_digest(d for _, d in mine) or digest not in planned_chunks.values():
                problems.append("its digest does not match its members")
        if mine:  # one query per chunk: a damaged table may still give up the chunks on intact pages
            rows, err = (None, None) if whole is not None else _scan(
                con, counts_sql.format("AND member BETWEEN ? AND ?"), [run_id, mine[0][0], mine[-1][0]])
            if err:
                problems.append(f"records unreadable ({err})")
            else:
                counts = whole if whole is not None else {int(m): (int(r), int(s)) for m, r, s, _ in rows}
                got = {m: counts[m] for m, _ in mine if m in counts}
                short = [m for m, _ in mine if m not in got or (points is not None and got[m][1] != points)]
                if short:
                    problems.append(f"member {short[0]} lacks records (planned points: {points})")
                elif len({r for r, _ in got.values()}) > 1:
                    problems.append("its members hold different numbers of records")
        if problems:
            bad += 1
            report.bad(f"run {run_id} chunk {chunk}: {'; '.join(problems)}")
        else:
            intact += 1
    missing = int(run["n_chunks"]) - len(stored_chunks)
    resume = f"; --resume computes {missing}" if missing and not report.damage else ""
    report.lines.append(f"run {run_id} ({run['status']}): {intact}/{run['n_chunks']} chunks intact"
                        f"{f', {bad} damaged' if bad else ''}{resume}")
    report.intact[run_id] = intact


def check_store(path: str | Path) -> CheckReport:
    """Verify a store read-only; `report.damage` lists every problem found."""
    store = Store(path, busy_timeout=30.0)
    report = CheckReport()
    try:
        with store.connect() as con:
            readable: set[str] = set()
            for table in TABLES:
                rows, err = _scan(con, f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {table}")
                if err:
                    report.bad(f"table {table}: {err}")
                else:
                    readable.add(table)
                    report.lines.append(f"table {table}: {rows[0][0]} rows, every page readable")
            if "runs" in readable:
                cur = con.execute("SELECT * FROM runs ORDER BY started_at")
                names = [d[0] for d in cur.description]
                for row in cur.fetchall():
                    _check_run(con, dict(zip(names, row)), readable, report)
    except StoreDamaged as exc:
        report.bad(f"the file cannot be opened: {exc.what}")
    if report.damage:
        chunks = sum(report.intact.values())
        runs = [r for r, c in report.intact.items() if c]
        report.lines.append(
            f"recoverable: the specs of {len(report.intact)} runs (lazyrich runs show RUN --spec: rerun them into a new "
            f"store); {chunks} intact chunks of {len(runs)} runs (copy them with the DuckDB CLI, docs/guarantees.md)"
            if report.intact else "recoverable: nothing through DuckDB: restore the file from a copy")
    return report

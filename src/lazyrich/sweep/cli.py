"""`lazyrich sweep CONFIG.yaml` and `lazyrich runs list | show | export | check`. Heavy modules (torch,
pandas, duckdb) are imported inside the commands, never at import time."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from .. import cli_options as opts

# store.DEFAULT_STORE, repeated so this module needs no duckdb (tests/test_imports.py checks they agree)
DEFAULT_STORE = Path("lazyrich-runs") / "lazyrich.duckdb"

STORE_HELP = "DuckDB results file"


def sweep_cmd(
    config: Path = typer.Argument(..., help="sweep file (YAML), e.g. examples/quick.yaml", exists=True, dir_okay=False),
    store: Path = typer.Option(DEFAULT_STORE, "--store", help=STORE_HELP, dir_okay=False),
    resume: bool = typer.Option(False, "--resume", help="continue the newest unfinished run of this sweep"),
    backend: Literal["local", "dask"] = typer.Option("local", "--backend", help="local (in-process) or dask"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="join a Dask cluster, e.g. tcp://host:8786"),
    workers: Optional[int] = typer.Option(None, "--workers", help="start a Dask LocalCluster with N workers", min=1, max=4096),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N", callback=opts.device),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per chunk (default 1)", min=1, max=1024),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Run a sweep: every member trained, every chunk stored as it finishes. A file with a search:
    section runs a search instead: batches of proposals, one ensemble each (docs/sweeps.md)."""
    from .search_spec import is_search
    from .yamlsafe import read_yaml

    if is_search(read_yaml(config)):
        from ..errors import require
        from .search import run_search

        require(backend == "local" and scheduler is None and workers is None,
                "--backend dask: a search runs its batches in this process (each batch is one ensemble); drop "
                "--backend, --scheduler and --workers")
        found = run_search(config, store, resume=resume, device=device, threads=threads, progress=not quiet)
        status = ", ".join(f"{n} {s}" for s, n in sorted(found.member_status.items()))
        typer.echo(f"search {found.run_id}: {found.studies} studies × {found.batches} batches, {found.members} members "
                   f"({found.computed} batches computed, {found.skipped} already stored); {status}; {found.wall_s:.1f} s")
        typer.echo(f"store {found.store}: lazyrich runs show {found.run_id} --store {found.store}")
        return
    from .run import run_sweep

    # run_sweep validates the file whole before anything is computed or written
    out = run_sweep(config, store, resume=resume, backend=backend, scheduler=scheduler, workers=workers,
                    device=device, threads=threads, progress=not quiet)
    status = ", ".join(f"{n} {s}" for s, n in sorted(out.member_status.items()))
    if out.computed == 0 and out.skipped == out.chunks:
        typer.echo(f"run {out.run_id} was already complete ({out.members} members: {status}); nothing to do")
        return
    resumed = f", {out.skipped} already stored" if out.skipped else ""
    typer.echo(f"run {out.run_id}: {out.members} members in {out.chunks} chunks ({out.computed} computed{resumed}); "
               f"{status}; {out.wall_s:.1f} s, {out.steps_per_s:,.0f} config-steps/s")
    typer.echo(f"store {out.store}: lazyrich runs show {out.run_id} --store {out.store}")


runs_app = typer.Typer(no_args_is_help=True, help="Inspect and export stored sweep runs.")


@runs_app.command("list")
def runs_list(store: Path = typer.Option(DEFAULT_STORE, "--store", help=STORE_HELP, dir_okay=False)) -> None:
    """One line per run: id, status, members, chunks done, device, backend, start."""
    from rich.console import Console
    from rich.table import Table

    from .store import Store

    rows = Store(store).run_rows()
    if not rows:
        typer.echo(f"no runs in {store}")
        return
    table = Table(title=str(store))
    for col in ("run_id", "status", "members", "chunks", "device", "backend", "started (UTC)"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["run_id"], r["status"], str(r["n_members"]), f"{r['chunks_done']}/{r['n_chunks']}", r["device"],
                      r["backend"], f"{r['started_at']:%Y-%m-%d %H:%M:%S}")
    Console(width=160).print(table)


@runs_app.command("show")
def runs_show(run: str = typer.Argument(..., help="run id, a unique prefix of one, or 'latest'"),
              store: Path = typer.Option(DEFAULT_STORE, "--store", help=STORE_HELP, dir_okay=False),
              spec: bool = typer.Option(False, "--spec", help="print the run's sweep file (YAML) instead, e.g. to resume it")) -> None:
    """A run's metadata, member status and recorded observables."""
    from .store import Store

    db = Store(store)
    run_id = db.resolve(run)
    if spec:  # from the runs table alone: works on a store whose records are damaged
        import yaml

        typer.echo(yaml.safe_dump(db.spec_of(run_id), sort_keys=False, allow_unicode=True).rstrip())
        return
    info = db.run(run_id)
    for key in ("run_id", "name", "status", "code_version", "device", "backend", "threads", "host", "started_at", "ended_at"):
        typer.echo(f"{key:>13}: {info[key]}")
    typer.echo(f"{'members':>13}: {info['n_members']} ({', '.join(f'{n} {s}' for s, n in info['member_status'].items())})")
    typer.echo(f"{'chunks':>13}: {info['chunks_done']}/{info['n_chunks']} stored")
    obs = info["observables"]
    if len(obs):
        typer.echo(f"{'observables':>13}:")
        typer.echo(obs.to_string(index=False))


@runs_app.command("export")
def runs_export(run: str = typer.Argument(..., help="run id, a unique prefix of one, or 'latest'"),
                fmt: Literal["parquet", "csv"] = typer.Option("parquet", "--format", help="parquet or csv"),
                out: Optional[Path] = typer.Option(None, "--out", help="output file (default: next to the store)", dir_okay=False),
                store: Path = typer.Option(DEFAULT_STORE, "--store", help=STORE_HELP, dir_okay=False)) -> None:
    """Write a run's records, joined with each member's configuration, as Parquet or CSV."""
    from ..errors import require
    from .store import Store

    require(fmt in ("parquet", "csv"), f"--format {fmt!r}: use parquet or csv")
    db = Store(store)
    run_id = db.resolve(run)
    path = db.export(run_id, out or store.parent / f"{run_id}.{fmt}", fmt)
    typer.echo(f"wrote {path}")


@runs_app.command("check")
def runs_check(store: Path = typer.Argument(..., help="the DuckDB results file to verify (opened read-only)", dir_okay=False)) -> None:
    """Verify a store: every page readable, every member's digest and records complete; what is recoverable."""
    from .check import check_store
    from .store import StoreDamaged

    report = check_store(store)
    for line in report.lines:
        typer.echo(line)
    if not report.healthy:
        raise StoreDamaged(store, report.damage[0] if len(report.damage) == 1 else
                           f"{report.damage[0]}; and {len(report.damage) - 1} more problems above")
    typer.echo(f"{store}: healthy")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_cmd)
    app.add_typer(runs_app, name="runs")

"""`lazyrich reproduce NAME [--quick] [--out DIR] [--device cpu|cuda]` and `lazyrich reproduce --list`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, Optional

import typer

from ..errors import require


def register(app: typer.Typer) -> None:
    @app.command("reproduce")
    def reproduce_cmd(
        name: Optional[str] = typer.Argument(None, help="reproduction name (see --list)"),
        quick: bool = typer.Option(False, "--quick", help="the small size CI runs (about a minute or less on 2 CPU cores)"),
        out: Optional[Path] = typer.Option(None, "--out", help="output folder (default ./lazyrich-out/NAME/)", file_okay=False),
        device: Literal["cpu", "cuda"] = typer.Option("cpu", "--device", help="cpu or cuda"),
        list_: bool = typer.Option(False, "--list", help="list reproductions with expected runtimes"),
        sensitivity: bool = typer.Option(False, "--sensitivity", help="also map the decisive claims over every checkpoint "
                                         "and the reproduction's size knobs (extra quick runs)"),
    ) -> None:
        """Reproduce a source paper's headline result: claims.json, figures, report.html; exit 1 if a claim fails
        (inconclusive claims are listed but do not fail the run)."""
        if list_:  # read from the sources (catalog), so listing imports no torch
            from .catalog import catalog

            for exp in sorted(catalog().values(), key=lambda e: e.name):
                typer.echo(f"{exp.name:24s} {exp.description}")
                typer.echo(f"{'':24s} quick: {exp.runtime.get('quick', '?')}; full: {exp.runtime.get('full', '?')}")
            return
        from . import reproduce

        require(name is not None, "give a reproduction NAME or --list, e.g. `lazyrich reproduce kunin-fig1 --quick`")
        from ..progress import ExpectedBar, seconds
        from .catalog import catalog

        entry = catalog().get(name)  # full size: a bar against the measured runtime, on a terminal only
        with ExpectedBar(f"reproduce {name}", seconds(entry.runtime.get("full", "")) if entry else None, enabled=not quick):
            outcome = reproduce(name, quick=quick, out=out, device=device, sensitivity=sensitivity)
        label = {"pass": "pass", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}
        for c in outcome.claims:
            unc = f"; {c.uncertainty}" if c.uncertainty else ""
            typer.echo(f"{label[c.verdict]:12s} {c.id}: measured {c.measured:.4g}{unc}, expected {c.expected:.4g} ({c.relation})")
        n = len(outcome.claims)
        typer.echo(f"{n - len(outcome.failed) - len(outcome.inconclusive)}/{n} claims passed, {len(outcome.failed)} failed, "
                   f"{len(outcome.inconclusive)} inconclusive in {outcome.runtime_s:.1f} s; report: {outcome.out / 'report.html'}")
        if outcome.inconclusive:
            typer.echo(f"inconclusive (interval straddles the threshold; more seeds needed): {', '.join(outcome.inconclusive)}", err=True)
        if outcome.exit_code:
            typer.echo(f"failed: {', '.join(outcome.failed)}", err=True)
            sys.exit(outcome.exit_code)

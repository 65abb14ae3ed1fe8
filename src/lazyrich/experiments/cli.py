"""`lazyrich reproduce NAME [--quick] [--out DIR] [--device cpu|cuda]` and `lazyrich reproduce --list`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import require


def register(app: typer.Typer) -> None:
    @app.command("reproduce")
    def reproduce_cmd(
        name: Optional[str] = typer.Argument(None, help="reproduction name (see --list)"),
        quick: bool = typer.Option(False, "--quick", help="the small size CI runs (≤ 45 s on 2 CPU cores)"),
        out: Optional[Path] = typer.Option(None, "--out", help="output folder (default ./lazyrich-out/NAME/)"),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
        list_: bool = typer.Option(False, "--list", help="list reproductions with expected runtimes"),
    ) -> None:
        """Reproduce a source paper's headline result: claims.json, figures, report.html; exit 1 if a claim fails."""
        from . import REGISTRY, reproduce

        if list_:
            for exp in sorted(REGISTRY.values(), key=lambda e: e.name):
                typer.echo(f"{exp.name:24s} {exp.description}")
                typer.echo(f"{'':24s} quick: {exp.runtime['quick']}; full: {exp.runtime['full']}")
            return
        require(name is not None, "give a reproduction NAME or --list, e.g. `lazyrich reproduce kunin-fig1 --quick`")
        outcome = reproduce(name, quick=quick, out=out, device=device)
        for c in outcome.claims:
            typer.echo(f"{'pass' if c.passed else 'FAIL'}  {c.id}: measured {c.measured:.4g}, expected {c.expected:.4g} ({c.relation})")
        typer.echo(f"{len(outcome.claims) - len(outcome.failed)}/{len(outcome.claims)} claims passed in {outcome.runtime_s:.1f} s; "
                   f"report: {outcome.out / 'report.html'}")
        if outcome.exit_code:
            typer.echo(f"failed: {', '.join(outcome.failed)}", err=True)
            sys.exit(outcome.exit_code)

"""The `lazyrich` command line. Bad input → one line on stderr and exit code 2, never a traceback.

Rooms add their own commands through `register(app)` in `<room>/cli.py` (listed in `_ROOMS`).
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import cli_options as opts
from .errors import LazyrichError

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="lazyrich: set, measure and predict lazy vs rich feature learning.")

# rooms that contribute commands (each module defines register(app)); missing ones are skipped
_ROOMS = ("lazyrich.sweep.cli", "lazyrich.experiments.cli", "lazyrich.usermodels.cli", "lazyrich.theory.cli")


@app.command("inspect")
def inspect_cmd(
    param: opts.Scheme = typer.Option("mup", "--param", help="parametrization"),
    optimizer: opts.Family = typer.Option("sgd", "--optimizer", help="optimizer family"),
    widths: str = typer.Option(..., "--widths", help="d,n1,...,c e.g. 10,256,256,1", callback=opts.widths()),
    gamma: float = typer.Option(1.0, "--gamma", help="richness dial γ (readout multiplier 1/γ)",
                                callback=opts.finite(1e-12, 1e12, positive=True)),
    gamma_lr: Optional[bool] = typer.Option(None, "--gamma-lr/--no-gamma-lr", help="rescale lr by g(γ) (default: on for sgd)"),
    bias: bool = typer.Option(False, "--bias", help="include hidden biases"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list of rows, input layer first"),
) -> None:
    """Print the effective per-layer table (init std, multiplier, lr and wd scales, invariants c_init, c_lr)."""
    from .param.schemes import layer_table

    table = layer_table(opts.ints(widths, "widths", 1, opts.MAX_TABLE_WIDTH), param, optimizer, gamma, gamma_lr, bias)
    rows = table.records()
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    typer.echo(str(table))  # the same plain table as print(lazyrich.layer_table(...))


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("lazyrich-out"), "--out", help="output directory", file_okay=False),
    quick: bool = typer.Option(False, "--quick", help="a smaller grid (for tests)"),
) -> None:
    """A τ×δ sweep of two-layer ReLU students on a teacher-student task, as one ensemble."""
    from .demo import run_demo

    for line in run_demo(out, quick=quick):
        typer.echo(line)


@app.command("view")
def view_cmd(
    store: Path = typer.Argument(..., help="DuckDB results file of `lazyrich sweep`", exists=True, dir_okay=False),
    run: str = typer.Argument("latest", help="run id, a unique prefix of one, or 'latest'"),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: RUN_ID.html next to the store)",
                                       dir_okay=False),
    observable: Optional[List[str]] = typer.Option(None, "--observable", help="only these observables (repeat the option)"),
) -> None:
    """Write an interactive HTML page of a stored sweep: heatmaps over any two swept axes at any step,
    trajectories on click, exact theory where it exists, the run's configuration. Opens offline."""
    from .view import write_view

    path = write_view(store, run, out, list(observable) if observable else None)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained): open it in a browser")


for _room in _ROOMS:
    try:
        importlib.import_module(_room).register(app)
    except ModuleNotFoundError as exc:  # room not built yet
        if not (exc.name or "").startswith("lazyrich"):
            raise


def main(argv: Optional[List[str]] = None) -> None:
    """Run the command line; bad input (ours or click's) → `error: <one line>` on stderr and exit 2."""
    try:
        app(args=argv, prog_name="lazyrich", standalone_mode=False)
    except LazyrichError as exc:
        typer.echo(f"error: {_one_line(str(exc))}", err=True)
        sys.exit(2)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors (typer vendors click) arrive here in non-standalone mode
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            typer.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        raise


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.replace("Value error, ", "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    main()

"""The `lazyrich` command line. Bad input → one line on stderr and exit code 2, never a traceback.

Rooms add their own commands through `register(app)` in `<room>/cli.py` (listed in `_ROOMS`).
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import LazyrichError

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="lazyrich: set, measure and predict lazy vs rich feature learning.")

# rooms that contribute commands (each module defines register(app)); missing ones are skipped
_ROOMS = ("lazyrich.sweep.cli", "lazyrich.experiments.cli", "lazyrich.usermodels.cli", "lazyrich.theory.cli")


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise LazyrichError(f"--widths {text!r} must be comma-separated integers, e.g. 10,64,64,1") from None
    return widths


@app.command("inspect")
def inspect_cmd(
    param: str = typer.Option("mup", "--param", help="parametrization: sp, ntp, mup, mf, spectral"),
    optimizer: str = typer.Option("sgd", "--optimizer", help="optimizer family: sgd, adam, muon"),
    widths: str = typer.Option(..., "--widths", help="d,n1,...,c e.g. 10,256,256,1"),
    gamma: float = typer.Option(1.0, "--gamma", help="richness dial γ (readout multiplier 1/γ)"),
    gamma_lr: Optional[bool] = typer.Option(None, "--gamma-lr/--no-gamma-lr", help="rescale lr by g(γ) (default: on for sgd)"),
    bias: bool = typer.Option(False, "--bias", help="include hidden biases"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list of rows, input layer first"),
) -> None:
    """Print the effective per-layer table (init std, multiplier, lr scale, wd scale)."""
    from .param.schemes import layer_table, table_dicts

    rows = table_dicts(layer_table(_widths(widths), param, optimizer, gamma, gamma_lr, bias))
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{param} × {optimizer}, widths {widths}, γ={gamma}")
    for col in ("name", "role", "fan_in", "fan_out", "init_std", "multiplier", "lr_scale", "wd_scale"):
        t.add_column(col, justify="right" if col not in ("name", "role") else "left")
    for r in rows:
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()])
    Console().print(t)


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("lazyrich-out"), "--out", help="output directory"),
    quick: bool = typer.Option(False, "--quick", help="a smaller grid (for tests)"),
) -> None:
    """A τ×δ sweep of two-layer ReLU students on a teacher-student task, as one ensemble."""
    from .demo import run_demo

    for line in run_demo(out, quick=quick):
        typer.echo(line)


for _room in _ROOMS:
    try:
        importlib.import_module(_room).register(app)
    except ModuleNotFoundError as exc:  # room not built yet
        if not (exc.name or "").startswith("lazyrich"):
            raise


def main() -> None:
    try:
        app(standalone_mode=False)
    except LazyrichError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors (typer vendors click) arrive here in non-standalone mode
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(2)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()

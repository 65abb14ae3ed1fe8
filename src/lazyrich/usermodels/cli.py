"""CLI for users' models: `lazyrich inspect-model MODULE:FACTORY` and `lazyrich coord-check`."""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import typer

from .. import cli_options as opts
from ..errors import LazyrichError, require


def load_factory(spec: str) -> Callable[..., Any]:
    """`package.module:attr` or `path/to/file.py:attr` → the callable (a model class or factory)."""
    require(":" in spec, f"{spec!r} must look like MODULE:FACTORY, e.g. mypkg.models:make_net or net.py:Net")
    where, attr = spec.rsplit(":", 1)
    try:
        if where.endswith(".py"):
            path = Path(where)
            require(path.is_file(), f"no file {where}: give an existing .py file or an importable module")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
            sys.modules[path.stem] = module
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(where)
    except ImportError as exc:
        raise LazyrichError(f"cannot import {where!r} ({exc}): check the module path") from None
    factory = getattr(module, attr, None)
    require(callable(factory), f"{where} has no callable {attr!r}: name a function or class that builds the model")
    return factory


def _build(factory: Callable[..., Any], width: Optional[int]) -> Any:
    from torch import nn

    try:
        model = factory(width) if width is not None else factory()
    except TypeError as exc:
        raise LazyrichError(f"calling the factory failed ({exc}): it must take the width as its only argument "
                            "(or none, without --width)") from None
    require(isinstance(model, nn.Module), f"the factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def register(app: typer.Typer) -> None:
    @app.command("inspect-model")
    def inspect_model(
        spec: str = typer.Argument(..., help="MODULE:FACTORY (or file.py:FACTORY) building the model"),
        scheme: opts.Scheme = typer.Option("mup", "--param", help="parametrization"),
        optimizer: opts.Family = typer.Option("sgd", "--optimizer", help="optimizer family"),
        width: Optional[int] = typer.Option(None, "--width", help="width passed to the factory",
                                            min=1, max=opts.MAX_MODEL_WIDTH),
        base_width: Optional[int] = typer.Option(None, "--base-width", help="build the base (width reference) with this width",
                                                 min=1, max=opts.MAX_MODEL_WIDTH),
        gamma: float = typer.Option(1.0, "--gamma", help="richness dial γ (readout multiplier 1/γ)",
                                    callback=opts.finite(1e-12, 1e12, positive=True)),
        as_json: bool = typer.Option(False, "--json", help="print a JSON list of rows"),
    ) -> None:
        """Print the per-tensor table (role, init std, multiplier, lr and wd scales) a parametrization
        would give a model of yours; widths are found by comparing with --base-width."""
        from .groups import inspect

        factory = load_factory(spec)
        require(base_width is None or width is not None, "--base-width needs --width (the factory takes the width)")
        model = _build(factory, width)
        base = _build(factory, base_width) if base_width is not None else None
        df = inspect(model, scheme, base, optimizer, gamma=gamma).drop(columns=["module", "std_now"])
        if as_json:
            typer.echo(json.dumps(df.to_dict(orient="records"), indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        how = f"widths from base width {base_width}" if base is not None else "roles from layer order (pass --base-width)"
        t = Table(title=f"{spec}: {scheme} × {optimizer}, γ={gamma} ({how})")
        cols = ["name", "kind", "role", "shape", "init_std", "multiplier", "lr_scale", "wd_scale", "c_init", "c_lr"]
        for c in cols:
            t.add_column(c, justify="left" if c in ("name", "kind", "role", "shape") else "right")
        for _, r in df.iterrows():
            t.add_row(*[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols])
        Console().print(t)

    @app.command("coord-check")
    def coord_check_cmd(
        model: Optional[str] = typer.Option(None, "--model", help="MODULE:FACTORY taking the width (default: a ReLU MLP 32→w→w→10)"),
        widths: str = typer.Option("128,256,512,1024", "--widths", help=f"2 to 16 comma-separated widths, each ≤ {opts.MAX_MODEL_WIDTH}",
                                   callback=opts.widths(1, opts.MAX_MODEL_WIDTH, (2, 16))),
        schemes: str = typer.Option("sp,mup", "--schemes", help="comma-separated parametrizations",
                                    callback=opts.names(opts.SCHEMES, "parametrization")),
        ladder: bool = typer.Option(False, "--ladder", help="add the SP → μP ablation ladder"),
        optimizer: Literal["sgd", "adam"] = typer.Option("sgd", "--optimizer", help="optimizer"),
        lr: float = typer.Option(0.005, "--lr", help="base learning rate", callback=opts.finite(0, 1e3, positive=True)),
        steps: int = typer.Option(3, "--steps", help="training steps", min=1, max=1000),
        seeds: int = typer.Option(2, "--seeds", help="number of seeds", min=1, max=64),
        out: Path = typer.Option(Path("lazyrich-out/coord-check"), "--out", help="output directory", file_okay=False),
    ) -> None:
        """Activation and update sizes vs width over the first steps (flat under μP, growing under SP).
        Writes records.csv, slopes.csv and update.png / activation.png to --out."""
        from .coord import coord_check, mlp

        factory = load_factory(model) if model else mlp()
        cc = coord_check(lambda w: _build(factory, w), list(opts.ints(widths, "widths", 1, opts.MAX_MODEL_WIDTH, (2, 16))),
                         [s.strip() for s in schemes.split(",")],
                         ladder=ladder, optimizer=optimizer, lr=lr, steps=steps, seeds=tuple(range(seeds)))
        out.mkdir(parents=True, exist_ok=True)
        cc.records.to_csv(out / "records.csv", index=False)
        slopes = cc.slopes()
        slopes.to_csv(out / "slopes.csv", index=False)
        for q in ("update", "activation"):
            cc.plot(out / f"{q}.png", q)
        last = slopes[(slopes.step == steps) & (slopes.quantity == "update")]
        typer.echo(f"width slope of the update size at step {steps} (0 = width-stable):")
        for label, part in last.groupby("label", sort=False):
            cells = ", ".join(f"{m} ({r}) {s:+.2f}" for m, r, s in zip(part.module, part.role, part.slope))
            typer.echo(f"  {label}: {cells}")
        typer.echo(f"wrote {out}/records.csv, slopes.csv, update.png, activation.png")

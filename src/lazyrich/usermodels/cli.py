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


def _build(factory: Callable[..., Any], width: Optional[int], depth: Optional[int] = None) -> Any:
    from torch import nn

    try:
        if depth is not None:
            model = factory(width, depth)
        else:
            model = factory(width) if width is not None else factory()
    except TypeError as exc:
        raise LazyrichError(f"calling the factory failed ({exc}): it must take the width as its only argument "
                            "(or none, without --width; width and depth with --depth/--depths)") from None
    require(isinstance(model, nn.Module), f"the factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


MAX_DEPTH = 256  # residual blocks a CLI-built model may have


def _alpha(text: str) -> float:
    from ..param.depth import alpha_of

    try:
        return alpha_of(float(text))
    except ValueError:
        return alpha_of(text)


def _depth_scheme(text: str) -> str:
    try:
        _alpha(text)
    except LazyrichError as exc:
        raise typer.BadParameter(str(exc)) from None
    return text


def _labels(text: str) -> str:
    for item in (s.strip() for s in text.split(",")):
        scheme, _, depth = item.partition("+")
        if scheme not in opts.SCHEMES:
            raise typer.BadParameter(f"unknown parametrization {scheme!r}: choose from {', '.join(opts.SCHEMES)} "
                                     "(optionally +completep, +depth-mup or +α)")
        if depth:
            _depth_scheme(depth)
    return text


def _depths(text: Optional[str]) -> Optional[str]:
    if text is not None:
        opts.ints(text, "depths", 1, MAX_DEPTH, (2, 16))
    return text


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
        depth: Optional[int] = typer.Option(None, "--depth", help="number of residual blocks passed to the factory (factory(width, depth))",
                                            min=1, max=MAX_DEPTH),
        base_depth: Optional[int] = typer.Option(None, "--base-depth", help="blocks of the base (default: --depth)",
                                                 min=1, max=MAX_DEPTH),
        depth_scheme: str = typer.Option("none", "--depth-scheme", help="none, depth-mup (α=½), completep (α=1) or a number α in [0, 1]",
                                         callback=_depth_scheme),
        as_json: bool = typer.Option(False, "--json", help="print a JSON list of rows"),
    ) -> None:
        """Print the per-tensor table (role, init std, multiplier, lr and wd scales, width and depth
        exponents) a parametrization would give a model of yours; widths are found by comparing with
        --base-width, the depth ratio with --base-depth."""
        from .groups import inspect

        factory = load_factory(spec)
        require(base_width is None or width is not None, "--base-width needs --width (the factory takes the width)")
        require(base_depth is None or depth is not None, "--base-depth needs --depth (the factory takes width and depth)")
        require(depth is None or width is not None, "--depth needs --width (the factory takes width and depth)")
        model = _build(factory, width, depth)
        base = None
        if base_width is not None or base_depth is not None:
            base = _build(factory, base_width or width, base_depth or depth)
        d = _alpha(depth_scheme)
        df = inspect(model, scheme, base, optimizer, gamma=gamma, depth=d).drop(columns=["module", "std_now"])
        if as_json:
            typer.echo(json.dumps(df.to_dict(orient="records"), indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        how = f"widths from base width {base_width}" if base is not None else "roles from layer order (pass --base-width)"
        if d:
            how += f"; depth α={d:g}, blocks {depth} vs base {base_depth or 1}"
        t = Table(title=f"{spec}: {scheme} × {optimizer}, γ={gamma} ({how}); *_exp: c ∝ width^exp, lr ∝ m_L^lr_depth_exp")
        cols = ["name", "kind", "role", "shape", "init_std", "multiplier", "lr_scale", "wd_scale", "c_init", "c_lr",
                "c_init_exp", "c_lr_exp", "lr_depth_exp", "branch_depth_exp"]
        for c in cols:
            t.add_column(c, justify="left" if c in ("name", "kind", "role", "shape") else "right")
        for _, r in df.iterrows():
            t.add_row(*[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols])
        Console().print(t)

    @app.command("coord-check")
    def coord_check_cmd(
        model: Optional[str] = typer.Option(None, "--model", help="MODULE:FACTORY taking the width (default: a ReLU MLP 32→w→w→10)"),
        widths: str = typer.Option("128,256,512,1024", "--widths", help=f"2 to 16 comma-separated widths, each ≤ {opts.MAX_MODEL_WIDTH} (one with --depths)",
                                   callback=opts.widths(1, opts.MAX_MODEL_WIDTH, (1, 16))),
        depths: Optional[str] = typer.Option(None, "--depths", help=f"2 to 16 comma-separated block counts, each ≤ {MAX_DEPTH}: "
                                             "the factory takes (width, depth) (default model: a pre-LN residual MLP)",
                                             callback=_depths),
        schemes: str = typer.Option("sp,mup", "--schemes", help="comma-separated parametrizations, each optionally "
                                    "+depth scheme: sp,mup,mup+completep,mup+depth-mup", callback=_labels),
        ladder: bool = typer.Option(False, "--ladder", help="add the SP → μP ablation ladder"),
        optimizer: Literal["sgd", "adam"] = typer.Option("sgd", "--optimizer", help="optimizer"),
        lr: float = typer.Option(0.005, "--lr", help="base learning rate", callback=opts.finite(0, 1e3, positive=True)),
        steps: int = typer.Option(3, "--steps", help="training steps", min=1, max=1000),
        seeds: int = typer.Option(2, "--seeds", help="number of seeds", min=1, max=64),
        out: Path = typer.Option(Path("lazyrich-out/coord-check"), "--out", help="output directory", file_okay=False),
    ) -> None:
        """Activation and update sizes vs width (and depth, with --depths) over the first steps (flat
        under μP in width, under CompleteP in depth). Writes records.csv, slopes.csv (slopes_depth.csv)
        and update.png / activation.png (update_depth.png) to --out."""
        from .coord import coord_check, mlp, resmlp

        w_list = list(opts.ints(widths, "widths", 1, opts.MAX_MODEL_WIDTH, (1, 16)))
        d_list = list(opts.ints(depths, "depths", 1, MAX_DEPTH, (2, 16))) if depths else None
        require(d_list is not None or len(w_list) >= 2, f"give at least two widths (or --depths), got {len(w_list)}")
        factory = load_factory(model) if model else (resmlp() if d_list else mlp())
        build = (lambda w, L: _build(factory, w, L)) if d_list else (lambda w: _build(factory, w))
        cc = coord_check(build, w_list, [s.strip() for s in schemes.split(",")], depths=d_list,
                         ladder=ladder, optimizer=optimizer, lr=lr, steps=steps, seeds=tuple(range(seeds)))
        out.mkdir(parents=True, exist_ok=True)
        cc.records.to_csv(out / "records.csv", index=False)
        written = ["records.csv"]
        for over, suffix in (("width", ""), ("depth", "_depth")):
            if cc.records[over].nunique() < 2:
                continue
            slopes = cc.slopes(over)
            slopes.to_csv(out / f"slopes{suffix}.csv", index=False)
            for q in ("update", "activation"):
                cc.plot(out / f"{q}{suffix}.png", q, over)
            written += [f"slopes{suffix}.csv", f"update{suffix}.png", f"activation{suffix}.png"]
            last = slopes[(slopes.step == steps) & (slopes.quantity == "update")]
            if over == "depth":  # the block sites common to every depth, and the readout
                last = last[(last.n == len(d_list or ())) & last.role.isin(["block", "output"])]
            typer.echo(f"{over} slope of the update size at step {steps} (0 = {over}-stable):")
            for key, part in last.groupby(["label"] + (["width"] if over == "depth" else []), sort=False):
                cells = ", ".join(f"{m} ({r}) {s:+.2f}" for m, r, s in zip(part.module, part.role, part.slope))
                typer.echo(f"  {key[0] if isinstance(key, tuple) else key}: {cells}")
        typer.echo(f"wrote {', '.join(f'{out}/{w}' for w in written)}")

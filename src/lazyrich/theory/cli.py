"""`lazyrich predict`: the a-priori regime of a two-layer configuration, with the numbers behind it."""
from __future__ import annotations

import json
from typing import Optional

import typer

from .. import cli_options as opts
from ..errors import LazyrichError

POS = opts.finite(0, 1e12, positive=True)


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        widths: str = typer.Option(..., "--widths", help="d,m,c of a two-layer net, e.g. 10,256,1",
                                   callback=opts.widths(count=(3, 3))),
        tau: Optional[float] = typer.Option(None, "--tau", help="per-neuron scale τ (|a|·||w|| = τ²); with --delta", callback=POS),
        delta: Optional[float] = typer.Option(None, "--delta", help="Kunin's δ = η_w a² − η_a||w||²; with --tau",
                                              callback=opts.finite(-1e12, 1e12)),
        param: opts.Scheme = typer.Option("mup", "--param", help="parametrization when τ/δ are not given"),
        optimizer: opts.Family = typer.Option("sgd", "--optimizer", help="optimizer family of the parametrization"),
        gamma: float = typer.Option(1.0, "--gamma", help="richness dial γ (readout multiplier 1/γ)", callback=POS),
        lr: float = typer.Option(1.0, "--lr", help="base learning rate", callback=POS),
        std_scale: float = typer.Option(1.0, "--std-scale", help="multiplies every init std", callback=POS),
        lr_a: float = typer.Option(1.0, "--lr-a", help="readout rate (with --tau/--delta)", callback=POS),
        lr_w: float = typer.Option(1.0, "--lr-w", help="first-layer rate (with --tau/--delta)", callback=POS),
        y_scale: float = typer.Option(1.0, "--y-scale", help="rms norm of the targets", callback=POS),
        x_scale: float = typer.Option(1.0, "--x-scale", help="rms norm of the inputs", callback=POS),
        activation: opts.Activation = typer.Option("relu", "--activation", help="hidden activation"),
        balance: bool = typer.Option(False, "--balance", help="also print the balance predictions (λ, ||Q||_op)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Predict lazy / mixed / rich / ultra-rich from the configuration alone (lazyrich.theory.regime)."""
        from .balance import predict_balance
        from .regime import predict_regime, predict_regime_from_table

        w = opts.ints(widths, "widths", 1, opts.MAX_TABLE_WIDTH, (3, 3))
        if (tau is None) != (delta is None):
            raise LazyrichError("give --tau and --delta together, or neither (then --param sets the init)")
        if tau is not None and delta is not None:
            pred = predict_regime(w, tau, delta, y_scale, x_scale, lr_a, lr_w, activation)  # type: ignore[arg-type]
        else:
            pred = predict_regime_from_table(w, param, optimizer, gamma, lr, std_scale, y_scale, x_scale,  # type: ignore[arg-type]
                                             activation)
        out: dict = pred.as_dict()
        if balance:
            out["balance"] = [b.__dict__ for b in predict_balance(w, param, optimizer, gamma, None, lr, std_scale)]
        if as_json:
            typer.echo(json.dumps(out, indent=1))
            return
        typer.echo(f"regime: {pred.regime}  (richness R = {pred.richness:.3g}; {pred.boundary})")
        typer.echo(f"fit-to-scale B = {pred.fit_ratio:.3g}, laziness χ = {pred.chi:.3g}, "
                   f"first-layer share f_w = {pred.first_layer_share:.3g}, NTK ratio ≈ {pred.ntk_ratio:.3g}, "
                   f"δ/τ² = {pred.delta_over_tau2:.3g}")
        for b in out.get("balance", []):
            typer.echo(f"{b['layer']}: λ = {b['lam']:.4g} ± {b['lam_std']:.2g}, ||Q||_op ≈ {b['q_op']:.4g} ± "
                       f"{b['q_op_std']:.2g} (wide limit {b['q_op_limit']:.4g}), median per-neuron imbalance "
                       f"{b['imbalance_median']:.3g}")

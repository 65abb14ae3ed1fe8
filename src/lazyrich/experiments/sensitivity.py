"""`lazyrich reproduce NAME --sensitivity`: where the decisive claims hold.

The reproduction runs once more per declared knob value (its quick configuration with that knob set) with
`Context.sensitivity` on, so each run also re-evaluates the decisive claims at every recorded checkpoint
(`Context.at_checkpoints`). The result is a map per decisive claim — rows: configurations (the run itself,
then each knob value), columns: checkpoints and "reported" (the claim as the run reports it) — of
pass / inconclusive / fail, drawn with matplotlib into the report and written to sensitivity.json.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .base import Claim, Context, Experiment, _lookup, with_knob

COLOURS = {"pass": "#4caf50", "inconclusive": "#f2c14e", "fail": "#d9453b", "error": "#9e9e9e"}


@dataclass
class SensitivityMap:
    """verdicts[claim_id][row][column] = verdict (missing: not evaluated there); rows are configuration
    labels, columns "step N" and "reported"."""

    rows: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    verdicts: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    values: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def add(self, row: str, column: str, claims: Sequence[Claim], decisive: Sequence[str]) -> None:
        if row not in self.rows:
            self.rows.append(row)
        if column not in self.columns:
            self.columns.append(column)
        for c in claims:
            if c.id in decisive:
                self.verdicts.setdefault(c.id, {}).setdefault(row, {})[column] = c.verdict
                v = c.support if c.method == "ordering" else c.measured
                self.values.setdefault(c.id, {}).setdefault(row, {})[column] = (
                    "" if v is None or not math.isfinite(v) else f"{v:.3g}")

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": self.columns, "verdicts": self.verdicts, "values": self.values,
                "errors": self.errors}


def _columns_sorted(cols: list[str]) -> list[str]:
    steps = sorted((c for c in cols if c.startswith("step ")), key=lambda c: int(c.split()[1]))
    return steps + [c for c in cols if not c.startswith("step ")]


def _record(m: SensitivityMap, row: str, ctx: Context, decisive: Sequence[str]) -> None:
    for step, claims in sorted(ctx.checkpoint_claims.items()):
        m.add(row, f"step {step}", claims, decisive)
    m.add(row, "reported", ctx.claims, decisive)


def sensitivity_map(exp: Experiment, ctx: Context, out: Path) -> SensitivityMap:
    """The map for `exp` given its main run `ctx` (run with sensitivity on): one extra quick run per knob value."""
    decisive = exp.decisive or tuple(c.id for c in ctx.claims if c.method != "control")
    m = SensitivityMap()
    _record(m, f"as run ({ctx.size})", ctx, decisive)
    quick = exp.sizes["quick"]
    for key, vals in exp.knobs.items():
        for val in vals:
            if ctx.size == "quick" and _lookup(quick, key) == val:
                continue  # the main run is this row
            label = f"{key} = {len(val)} seeds" if key.endswith("seeds") and isinstance(val, list) else f"{key} = {val}"
            sub = out / "sensitivity" / label.replace(" ", "").replace("/", "_")
            sub.mkdir(parents=True, exist_ok=True)
            vctx = Context(exp.name, "quick", with_knob(quick, key, val), sub, ctx.device, sensitivity=True)
            try:
                exp.run(vctx)
            except Exception as err:  # noqa: BLE001 - a size where the pipeline breaks is a finding, shown grey
                ctx.note(f"--sensitivity: the run at {label} stopped: {type(err).__name__}: {err}")
                m.errors[label] = f"{type(err).__name__}: {err}"
                for cid in decisive:
                    m.verdicts.setdefault(cid, {}).setdefault(label, {})["reported"] = "error"
                    m.values.setdefault(cid, {}).setdefault(label, {})["reported"] = "error"
                m.rows.append(label)
                continue
            _record(m, label, vctx, decisive)
    m.columns = _columns_sorted(m.columns)
    (out / "sensitivity.json").write_text(json.dumps({"experiment": exp.name, "knobs": exp.knobs, **m.to_dict()},
                                                     indent=1, default=str, ensure_ascii=False))
    return m


def draw(m: SensitivityMap, ctx: Context) -> None:
    """One panel per decisive claim: rows configurations, columns checkpoints + reported, cells coloured by verdict."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb
    import numpy as np

    if "reported" not in m.columns:
        m.columns.append("reported")
    ids = list(m.verdicts)
    if not ids:
        return
    ncol = min(3, len(ids))
    nrow = math.ceil(len(ids) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(1.2 + 1.1 * len(m.columns) * ncol, 0.6 + 0.45 * len(m.rows) * nrow + 0.6 * nrow),
                             squeeze=False)
    for ax, cid in zip(axes.flat, ids):
        img = np.ones((len(m.rows), len(m.columns), 3))
        for i, r in enumerate(m.rows):
            for j, c in enumerate(m.columns):
                v = m.verdicts[cid].get(r, {}).get(c)
                if v:
                    img[i, j] = to_rgb(COLOURS[v])
                    ax.text(j, i, m.values[cid][r][c], ha="center", va="center", fontsize=7)
        ax.imshow(img, aspect="auto")
        ax.set_xticks(range(len(m.columns)), m.columns, rotation=30, fontsize=7)
        ax.set_yticks(range(len(m.rows)), m.rows, fontsize=7)
        ax.set_title(cid, fontsize=8)
    for ax in list(axes.flat)[len(ids):]:
        ax.axis("off")
    fig.tight_layout()
    ctx.figure(fig, "sensitivity", "Sensitivity (--sensitivity): decisive claims re-evaluated at every recorded checkpoint "
               "(columns; 'reported' = as the run reports it) and at quick size with each declared knob changed (rows). "
               "Green holds, yellow inconclusive, red fails, grey: the run stopped with an error (see notes), blank not "
               "evaluated; numbers are the measured value "
               "(orderings: share of bootstrap resamples where the ordering holds).")

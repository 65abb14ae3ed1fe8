"""Run a registered reproduction: claims.json, figures (PNG + PDF) and a self-contained report.html."""
from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import require
from .base import SIZES, VERDICTS, Claim, Context, get


@dataclass(frozen=True)
class Outcome:
    """What one reproduction produced; `exit_code` is 1 when any claim fails, else 0 (inconclusive claims
    do not fail the run: they are listed in `inconclusive` and reported prominently)."""

    name: str
    size: str
    claims: list[Claim]
    runtime_s: float
    out: Path

    @property
    def verdicts(self) -> dict[str, str]:
        return {c.id: c.verdict for c in self.claims}

    @property
    def passed(self) -> bool:
        """Every claim passed (none failed, none inconclusive)."""
        return all(c.passed for c in self.claims)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    @property
    def failed(self) -> list[str]:
        return [c.id for c in self.claims if c.verdict == "fail"]

    @property
    def inconclusive(self) -> list[str]:
        return [c.id for c in self.claims if c.verdict == "inconclusive"]


def code_version() -> str:
    """`git describe --always --dirty` of the source tree when it is a checkout, else the package version."""
    from .. import __version__

    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=here, capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"lazyrich {__version__} (git {out.stdout.strip()})"
    except (OSError, subprocess.SubprocessError):
        pass
    return f"lazyrich {__version__}"


def check_device(device: str) -> str:
    require(device in ("cpu", "cuda"), f"--device {device!r} must be cpu or cuda")
    require(device == "cpu" or torch.cuda.is_available(), "--device cuda asked but no CUDA device is visible: use --device cpu")
    return device


def claims_document(name: str, size: str, claims: list[Claim]) -> dict[str, Any]:
    """The claims.json content: experiment, size, verdict counts, and every claim with its computed
    `verdict` (and `passed` = verdict == "pass"), interval or support where it is a statistic over seeds."""
    counts = {v: sum(c.verdict == v for c in claims) for v in VERDICTS}
    return {"experiment": name, "size": size, "verdicts": counts, "claims": [c.to_dict() for c in claims]}


def reproduce(name: str, quick: bool = False, out: Path | str | None = None, device: str = "cpu",
              sensitivity: bool = False) -> Outcome:
    """Run reproduction `name` at quick or full size, write claims.json, figures and report.html into
    `out` (default ./lazyrich-out/NAME/) and return the outcome. `sensitivity`: also re-evaluate the
    decisive claims at every checkpoint and over the declared knobs at quick size, and draw the map
    (sensitivity.png, sensitivity.json; one extra quick run per knob value)."""
    exp = get(name)
    size = SIZES[0] if quick else SIZES[1]
    device = check_device(device)
    out = Path(out) if out is not None else Path("lazyrich-out") / name
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(name, size, dict(exp.sizes[size]), out, device, sensitivity=sensitivity)
    t0 = time.perf_counter()
    exp.run(ctx)
    if sensitivity:
        from .sensitivity import draw, sensitivity_map

        draw(sensitivity_map(exp, ctx, out), ctx)
    runtime = time.perf_counter() - t0
    require(len(ctx.claims) > 0, f"reproduction {name} made no claims")
    (out / "claims.json").write_text(json.dumps(claims_document(name, size, ctx.claims), indent=1, ensure_ascii=False))
    from ..report.html import write_report

    env = {"code version": code_version(), "size": size, "device": device, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "python": platform.python_version(), "runtime": f"{runtime:.1f} s"}
    write_report(out / "report.html", f"lazyrich reproduce {name} ({size})", claims=ctx.claims,
                 figures=[(f.png, f.caption) for f in ctx.figures], config=ctx.cfg, runtime=runtime,
                 environment=env, summary=exp.description, notes=ctx.notes, source=exp.source)
    return Outcome(name, size, list(ctx.claims), runtime, out)

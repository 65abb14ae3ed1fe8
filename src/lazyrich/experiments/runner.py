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
from .base import SIZES, Claim, Context, get


@dataclass(frozen=True)
class Outcome:
    """What one reproduction produced; `exit_code` is 0 when every claim passed, else 1."""

    name: str
    size: str
    claims: list[Claim]
    runtime_s: float
    out: Path

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.claims)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def failed(self) -> list[str]:
        return [c.id for c in self.claims if not c.passed]


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
    """The claims.json content: experiment, size, and every claim with its computed `passed`."""
    return {"experiment": name, "size": size, "claims": [c.to_dict() for c in claims]}


def reproduce(name: str, quick: bool = False, out: Path | str | None = None, device: str = "cpu") -> Outcome:
    """Run reproduction `name` at quick or full size, write claims.json, figures and report.html into
    `out` (default ./lazyrich-out/NAME/) and return the outcome."""
    exp = get(name)
    size = SIZES[0] if quick else SIZES[1]
    device = check_device(device)
    out = Path(out) if out is not None else Path("lazyrich-out") / name
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(name, size, dict(exp.sizes[size]), out, device)
    t0 = time.perf_counter()
    exp.run(ctx)
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

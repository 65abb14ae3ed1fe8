"""Reproductions as data: a registry of named experiments, numeric claims and negative controls.

A reproduction is one function decorated with `@reproduction(...)`; it receives a `Context` (size,
configuration, device, output folder) and adds claims and figures to it. A `Claim` compares one
measured number with one number from a paper or from theory; `passed` is computed from the numbers,
never stored by hand. A negative control runs the same pipeline with the decisive ingredient
switched and must fail its claims; `Context.control` records that outcome as a claim of its own.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from ..errors import LazyrichError, require

Provenance = Literal["paper", "derived", "inferred"]
Comparison = Literal["within", "at_most", "at_least"]
PROVENANCE: tuple[str, ...] = ("paper", "derived", "inferred")
COMPARISONS: tuple[str, ...] = ("within", "at_most", "at_least")
SIZES: tuple[str, ...] = ("quick", "full")


@dataclass(frozen=True)
class Claim:
    """One number checked against another.

    `comparison`: ``within`` |measured − expected| ≤ tolerance (× |expected| when `relative`),
    ``at_most`` measured ≤ expected + tolerance, ``at_least`` measured ≥ expected − tolerance.
    A non-finite measurement never passes. `details` holds sub-claims (negative controls)."""

    id: str
    statement: str
    source: str
    provenance: Provenance
    measured: float
    expected: float
    tolerance: float = 0.0
    comparison: Comparison = "within"
    relative: bool = False
    details: tuple["Claim", ...] = ()

    def __post_init__(self) -> None:
        require(self.provenance in PROVENANCE, f"claim {self.id}: provenance {self.provenance!r} must be one of {PROVENANCE}")
        require(self.comparison in COMPARISONS, f"claim {self.id}: comparison {self.comparison!r} must be one of {COMPARISONS}")
        require(self.tolerance >= 0, f"claim {self.id}: tolerance must be non-negative")
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "expected", float(self.expected))
        object.__setattr__(self, "tolerance", float(self.tolerance))

    @property
    def passed(self) -> bool:
        m, e = self.measured, self.expected
        if not math.isfinite(m):
            return False
        tol = self.tolerance * (abs(e) if self.relative else 1.0)
        if self.comparison == "within":
            return abs(m - e) <= tol
        if self.comparison == "at_most":
            return m <= e + tol
        return m >= e - tol

    @property
    def relation(self) -> str:
        """The test in symbols, e.g. ``|m − e| ≤ 0.1`` (for tables)."""
        tol = f"{self.tolerance:.3g}" + ("·|e|" if self.relative else "")
        return {"within": f"|m − e| ≤ {tol}", "at_most": f"m ≤ e + {tol}", "at_least": f"m ≥ e − {tol}"}[self.comparison]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["details"] = [c.to_dict() for c in self.details]
        if not d["details"]:
            del d["details"]
        d["passed"] = self.passed
        for k in ("measured", "expected"):  # JSON has no NaN/inf
            d[k] = d[k] if math.isfinite(d[k]) else None
        return d


def control(id: str, statement: str, source: str, claims: Sequence[Claim], provenance: Provenance = "derived") -> Claim:
    """A negative control as a claim: `claims` are the reproduction's claims evaluated on the
    pipeline with its decisive ingredient switched; the control passes when every one of them fails.
    measured = number of failed claims, expected = number of claims."""
    require(len(claims) > 0, f"control {id}: give the claims the switched pipeline must fail")
    failed = sum(not c.passed for c in claims)
    return Claim(id, statement, source, provenance, failed, len(claims), 0.0, "at_least", details=tuple(claims))


@dataclass(frozen=True)
class Figure:
    """A saved figure: PNG and PDF paths and a caption."""

    png: Path
    pdf: Path
    caption: str


@dataclass
class Context:
    """What a reproduction sees and fills: `cfg` is the chosen size's configuration (recorded in the
    report as the exact configuration); add claims with `claim`/`control`, figures with `figure`."""

    name: str
    size: str
    cfg: dict[str, Any]
    out: Path
    device: str = "cpu"
    claims: list[Claim] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def quick(self) -> bool:
        return self.size == "quick"

    def claim(self, id: str, statement: str, source: str, provenance: Provenance, measured: float, expected: float,
              tolerance: float = 0.0, comparison: Comparison = "within", relative: bool = False) -> Claim:
        c = Claim(id, statement, source, provenance, measured, expected, tolerance, comparison, relative)
        self.add(c)
        return c

    def control(self, id: str, statement: str, source: str, claims: Sequence[Claim],
                provenance: Provenance = "derived") -> Claim:
        c = control(id, statement, source, claims, provenance)
        self.add(c)
        return c

    def add(self, claim: Claim) -> None:
        require(all(c.id != claim.id for c in self.claims), f"duplicate claim id {claim.id!r} in {self.name}")
        self.claims.append(claim)

    def figure(self, fig: Any, stem: str, caption: str) -> Figure:
        """Save a matplotlib figure as `<out>/<stem>.png` and `.pdf` and close it."""
        import matplotlib.pyplot as plt

        png, pdf = self.out / f"{stem}.png", self.out / f"{stem}.pdf"
        fig.savefig(png, dpi=110, bbox_inches="tight")
        fig.savefig(pdf, bbox_inches="tight")
        plt.close(fig)
        f = Figure(png, pdf, caption)
        self.figures.append(f)
        return f

    def note(self, text: str) -> None:
        """A line for the report (what was reused, what differs from the paper)."""
        self.notes.append(text)


Runner = Callable[[Context], None]


@dataclass(frozen=True)
class Experiment:
    """A registered reproduction: its name (part of the CLI), one-line description, configurations
    per size, expected runtimes per size, and the function that runs it."""

    name: str
    description: str
    sizes: dict[str, dict[str, Any]]
    runtime: dict[str, str]
    source: str
    run: Runner


REGISTRY: dict[str, Experiment] = {}


def reproduction(name: str, description: str, *, quick: dict[str, Any], full: dict[str, Any],
                 runtime: dict[str, str], source: str) -> Callable[[Runner], Runner]:
    """Register `fn(ctx)` as the reproduction `name` (``lazyrich reproduce NAME``). `runtime` gives the
    measured wall time per size, e.g. ``{"quick": "20 s (2 CPU cores)", "full": "40 min CPU, 3 min GPU"}``."""
    require(set(runtime) == set(SIZES), f"{name}: runtime needs exactly the keys {SIZES}")

    def wrap(fn: Runner) -> Runner:
        if name in REGISTRY and REGISTRY[name].run.__module__ != fn.__module__:
            raise LazyrichError(f"reproduction {name!r} is registered twice ({REGISTRY[name].run.__module__}, {fn.__module__})")
        REGISTRY[name] = Experiment(name, description, {"quick": dict(quick), "full": dict(full)}, dict(runtime), source, fn)
        return fn
    return wrap


def get(name: str) -> Experiment:
    require(name in REGISTRY, f"unknown reproduction {name!r}: `lazyrich reproduce --list` shows {', '.join(sorted(REGISTRY)) or 'none'}")
    return REGISTRY[name]

"""Reproductions as data: a registry of named experiments, numeric claims and negative controls.

A reproduction is one function decorated with `@reproduction(...)`; it receives a `Context` (size,
configuration, device, output folder) and adds claims and figures to it. A `Claim` compares one
measured number with one number from a paper or from theory; its `verdict` (pass | fail | inconclusive)
is computed from the numbers, never stored by hand:
- exact claims (a theory error, a conservation residual): the tolerance test, pass or fail;
- statistics over seeds (`over_seeds`, `over_resamples`, `k_of_n`): pass when the whole confidence interval satisfies the
  test, fail when the whole interval violates it, inconclusive when it straddles (never a pass on the
  point estimate alone);
- orderings over seeds (`ordering`): pass when the ordering holds in ≥ `confidence` of bootstrap
  resamples of the seeds, fail when in ≤ 1 − `confidence`, else inconclusive;
- power: a bootstrap or ordering claim over fewer seeds than it needs (`seeds_needed`: Student t from the
  spread for a mean; the exact binomial count for a median, where it is the sign test, and for an
  ordering, where 6 agreeing seeds are the fewest that show "most seeds" at 95 %) is inconclusive, never
  a pass: resamples of 3 agreeing seeds all agree, whatever the fourth would do.
A negative control runs the same pipeline with the decisive ingredient switched and must fail its
claims; `Context.control` records that outcome as a claim of its own. `passed` is `verdict == "pass"`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from ..errors import LazyrichError, require
from . import intervals

Provenance = Literal["paper", "derived", "inferred"]
Comparison = Literal["within", "at_most", "at_least"]
Verdict = Literal["pass", "fail", "inconclusive"]
PROVENANCE: tuple[str, ...] = ("paper", "derived", "inferred")
COMPARISONS: tuple[str, ...] = ("within", "at_most", "at_least")
METHODS: tuple[str, ...] = ("exact", "bootstrap", "clopper-pearson", "ordering", "control")
VERDICTS: tuple[str, ...] = ("pass", "fail", "inconclusive")
SIZES: tuple[str, ...] = ("quick", "full")


@dataclass(frozen=True)
class Claim:
    """One number checked against another.

    `comparison`: ``within`` |measured − expected| ≤ tolerance (× |expected| when `relative`),
    ``at_most`` measured ≤ expected + tolerance, ``at_least`` measured ≥ expected − tolerance.
    A non-finite measurement never passes. `details` holds sub-claims (negative controls).
    `method` says how the verdict is reached (module docstring): ``exact`` (tolerance test),
    ``bootstrap`` / ``clopper-pearson`` (`interval` at `confidence` against the test), ``ordering``
    (`support`: share of bootstrap resamples where the ordering holds), ``control`` (every detail fails).
    `samples` are the per-seed values the measurement is a statistic of; `seeds_needed` the seed count
    the claim needs (module docstring, "power"; `intervals.seeds_needed`, `intervals.seeds_needed_share`):
    a bootstrap or ordering claim over fewer seeds is inconclusive (`underpowered`)."""

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
    method: str = "exact"
    samples: tuple[float, ...] = ()
    interval: tuple[float, float] | None = None
    confidence: float = 0.95
    support: float | None = None
    statistic: str = ""
    seeds_needed: int | None = None
    n: int = 0  # seeds behind a statistic (default: len(samples))

    def __post_init__(self) -> None:
        require(self.provenance in PROVENANCE, f"claim {self.id}: provenance {self.provenance!r} must be one of {PROVENANCE}")
        require(self.comparison in COMPARISONS, f"claim {self.id}: comparison {self.comparison!r} must be one of {COMPARISONS}")
        require(self.method in METHODS, f"claim {self.id}: method {self.method!r} must be one of {METHODS}")
        require(self.tolerance >= 0, f"claim {self.id}: tolerance must be non-negative")
        require(0.5 < self.confidence < 1, f"claim {self.id}: confidence must lie in (0.5, 1), e.g. 0.95")
        require(self.method not in ("bootstrap", "clopper-pearson") or self.interval is not None,
                f"claim {self.id}: method {self.method} needs an interval (use over_seeds / k_of_n)")
        require(self.method != "ordering" or self.support is not None, f"claim {self.id}: an ordering needs its support")
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "expected", float(self.expected))
        object.__setattr__(self, "tolerance", float(self.tolerance))
        object.__setattr__(self, "samples", tuple(float(v) for v in self.samples))
        object.__setattr__(self, "n", int(self.n or len(self.samples)))
        if self.interval is not None:
            object.__setattr__(self, "interval", (float(self.interval[0]), float(self.interval[1])))

    def _holds(self, m: float) -> bool:
        e = self.expected
        tol = self.tolerance * (abs(e) if self.relative else 1.0)
        if self.comparison == "within":
            return abs(m - e) <= tol
        if self.comparison == "at_most":
            return m <= e + tol
        return m >= e - tol

    @property
    def verdict(self) -> str:
        """pass | fail | inconclusive, by `method` (module docstring)."""
        if self.method == "control":
            v = [d.verdict for d in self.details]
            return "fail" if "pass" in v else ("pass" if all(x == "fail" for x in v) else "inconclusive")
        if not math.isfinite(self.measured):
            return "fail"
        if self.method == "exact":
            return "pass" if self._holds(self.measured) else "fail"
        if self.method == "ordering":
            s = self.support
            if s is None or not math.isfinite(s):
                return "inconclusive"
            if s >= self.confidence:
                return "inconclusive" if self.underpowered else "pass"
            return "fail" if s <= 1 - self.confidence else "inconclusive"
        lo, hi = self.interval  # type: ignore[misc]
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return "inconclusive"
        if self._holds(lo) and self._holds(hi):  # the accepted set is an interval: both ends in, all in
            return "inconclusive" if self.underpowered else "pass"
        e, tol = self.expected, self.tolerance * (abs(self.expected) if self.relative else 1.0)
        clear_fail = {"within": hi < e - tol or lo > e + tol, "at_most": lo > e + tol, "at_least": hi < e - tol}
        return "fail" if clear_fail[self.comparison] else "inconclusive"

    @property
    def underpowered(self) -> bool:
        """A bootstrap or ordering claim over fewer seeds than it needs (`seeds_needed`): it cannot pass.
        Clopper–Pearson claims are exact at any n and carry `seeds_needed` for information only."""
        return self.method in ("bootstrap", "ordering") and self.seeds_needed is not None and self.n < self.seeds_needed

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def relation(self) -> str:
        """The test in symbols, e.g. ``|m − e| ≤ 0.1`` (for tables)."""
        tol = f"{self.tolerance:.3g}" + ("·|e|" if self.relative else "")
        return {"within": f"|m − e| ≤ {tol}", "at_most": f"m ≤ e + {tol}", "at_least": f"m ≥ e − {tol}"}[self.comparison]

    @property
    def uncertainty(self) -> str:
        """The interval or support in words, e.g. ``95% CI [0.1, 0.3] (bootstrap BCa, n = 5)``; '' for exact claims."""
        n = self.n
        if self.method in ("bootstrap", "clopper-pearson"):
            lo, hi = self.interval  # type: ignore[misc]
            if not (math.isfinite(lo) and math.isfinite(hi)):
                return f"no interval (n = {n} < {intervals.MIN_SAMPLES})"
            how = {"bootstrap": "bootstrap BCa", "clopper-pearson": "Clopper–Pearson"}[self.method]
            how = "bootstrap percentile" if self.statistic == "resampled" else how
            return f"{self.confidence:.0%} CI [{lo:.4g}, {hi:.4g}] ({how}, n = {n}){self._power}"
        if self.method == "ordering":
            s = self.support
            if s is None or not math.isfinite(s):
                return f"no support (n = {n} < {intervals.MIN_SAMPLES} seeds)"
            return f"holds in {s:.0%} of bootstrap resamples (n = {n}; pass ≥ {self.confidence:.0%}){self._power}"
        return ""

    @property
    def _power(self) -> str:
        return f"; needs {self.seeds_needed} seeds" if self.underpowered else ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["details"] = [c.to_dict() for c in self.details]
        if not d["details"]:
            del d["details"]
        d["verdict"] = self.verdict
        d["passed"] = self.passed
        fin = lambda x: x if x is not None and math.isfinite(x) else None  # noqa: E731  JSON has no NaN/inf
        for k in ("measured", "expected", "support"):
            d[k] = fin(d[k])
        d["samples"] = [fin(x) for x in self.samples]
        d["interval"] = None if self.interval is None else [fin(x) for x in self.interval]
        if self.method == "exact":
            for k in ("samples", "interval", "support", "confidence", "statistic", "seeds_needed", "n"):
                d.pop(k)
        return d


def _threshold(expected: float, tolerance: float, comparison: str, relative: bool, m: float) -> float:
    tol = tolerance * (abs(expected) if relative else 1.0)
    if comparison == "at_least":
        return expected - tol
    if comparison == "at_most":
        return expected + tol
    return expected - tol if m < expected else expected + tol


def over_seeds(id: str, statement: str, source: str, provenance: Provenance, samples: Sequence[float], expected: float,
               tolerance: float = 0.0, comparison: Comparison = "within", relative: bool = False,
               statistic: str = "mean", confidence: float = 0.95) -> Claim:
    """A claim on the mean (or median) over seeds of per-seed `samples`, with its bootstrap interval."""
    require(statistic in ("mean", "median"), f"claim {id}: statistic {statistic!r} must be mean or median")
    x = np.asarray(list(samples), float)
    require(len(x) > 0, f"claim {id}: give at least one per-seed value")
    m = float(np.mean(x) if statistic == "mean" else np.median(x))
    ci = intervals.bootstrap_interval(x, statistic, confidence)
    if statistic == "mean":
        need = intervals.seeds_needed(x, _threshold(expected, tolerance, comparison, relative, m), confidence)
    else:  # a median clears its threshold when most seeds do: the sign test, i.e. the exact share interval
        probe = Claim(id, statement, source, provenance, m, expected, tolerance, comparison, relative)
        on_side = np.mean([probe._holds(v) for v in x]) if probe._holds(m) else np.mean([not probe._holds(v) for v in x])
        need = intervals.seeds_needed_share(float(on_side), 0.5, confidence)
    return Claim(id, statement, source, provenance, m, expected, tolerance, comparison, relative, method="bootstrap",
                 samples=tuple(x), interval=ci, confidence=confidence, statistic=statistic, seeds_needed=need)


def over_resamples(id: str, statement: str, source: str, provenance: Provenance, n_seeds: int,
                   statistic: Callable[[np.ndarray], float], expected: float, tolerance: float = 0.0,
                   comparison: Comparison = "within", relative: bool = False, confidence: float = 0.95) -> Claim:
    """A claim on any statistic of the seed set (e.g. a slope fitted to seed-averaged values): measured =
    `statistic(all seeds)`, interval = percentile bootstrap of `statistic(idx)` over resamples of the seeds."""
    m = float(statistic(np.arange(n_seeds)))
    return Claim(id, statement, source, provenance, m, expected, tolerance, comparison, relative, method="bootstrap",
                 interval=intervals.resample_interval(n_seeds, statistic, confidence), confidence=confidence,
                 statistic="resampled", n=n_seeds)


def k_of_n(id: str, statement: str, source: str, provenance: Provenance, outcomes: Sequence[bool], rate: float,
           comparison: Comparison = "at_least", confidence: float = 0.95) -> Claim:
    """A claim that the property holds for a share ≥ `rate` (or ≤, with ``at_most``) of seeds, from the
    per-seed `outcomes`, with the exact Clopper–Pearson interval of that share."""
    o = [bool(v) for v in outcomes]
    require(len(o) > 0, f"claim {id}: give at least one per-seed outcome")
    k, n = sum(o), len(o)
    share, clear = (k / n, rate) if comparison != "at_most" else (1 - k / n, 1 - rate)
    return Claim(id, statement, source, provenance, k / n, rate, 0.0, comparison, method="clopper-pearson",
                 samples=tuple(float(v) for v in o), interval=intervals.clopper_pearson(k, n, confidence),
                 confidence=confidence, statistic="share of seeds",
                 seeds_needed=intervals.seeds_needed_share(share, clear, confidence))


def ordering(id: str, statement: str, source: str, provenance: Provenance, measured: float, expected: float,
             tolerance: float, comparison: Comparison, n_seeds: int, holds: Callable[[np.ndarray], bool],
             samples: Sequence[float] = (), confidence: float = 0.95) -> Claim:
    """An ordering claim over seeds: `measured` is the point statistic on all seeds (e.g. δ of the best
    cell), shown against `expected`; the verdict is by `holds(idx)` over bootstrap resamples `idx` of the
    n_seeds seeds (index arrays with replacement). It needs at least the seeds that show "most seeds" when
    every seed agrees (6 at 95 %): below that every resample of agreeing seeds agrees, so support 1 says nothing."""
    return Claim(id, statement, source, provenance, measured, expected, tolerance, comparison, method="ordering",
                 samples=tuple(samples), support=intervals.ordering_support(n_seeds, holds), confidence=confidence,
                 statistic="ordering", n=n_seeds, seeds_needed=intervals.seeds_needed_share(1.0, 0.5, confidence))


def control(id: str, statement: str, source: str, claims: Sequence[Claim], provenance: Provenance = "derived") -> Claim:
    """A negative control as a claim: `claims` are the reproduction's claims evaluated on the
    pipeline with its decisive ingredient switched; the control passes when every one of them fails,
    fails when any passes, and is inconclusive otherwise. measured = number of failed claims, expected = number of claims."""
    require(len(claims) > 0, f"control {id}: give the claims the switched pipeline must fail")
    failed = sum(c.verdict == "fail" for c in claims)
    return Claim(id, statement, source, provenance, failed, len(claims), 0.0, "at_least", details=tuple(claims),
                 method="control")


@dataclass(frozen=True)
class Figure:
    """A saved figure: PNG and PDF paths and a caption."""

    png: Path
    pdf: Path
    caption: str


@dataclass
class Context:
    """What a reproduction sees and fills: `cfg` is the chosen size's configuration (recorded in the
    report as the exact configuration); add claims with `claim` (exact), `over_seeds`, `k_of_n`,
    `ordering`, `control`, figures with `figure`. Under ``--sensitivity`` (`sensitivity` true) the
    reproduction re-evaluates its decisive claims at every recorded checkpoint with `at_checkpoints`."""

    name: str
    size: str
    cfg: dict[str, Any]
    out: Path
    device: str = "cpu"
    claims: list[Claim] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sensitivity: bool = False
    checkpoint_claims: dict[int, list[Claim]] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return self.size == "quick"

    def claim(self, id: str, statement: str, source: str, provenance: Provenance, measured: float, expected: float,
              tolerance: float = 0.0, comparison: Comparison = "within", relative: bool = False) -> Claim:
        c = Claim(id, statement, source, provenance, measured, expected, tolerance, comparison, relative)
        self.add(c)
        return c

    def over_seeds(self, id: str, statement: str, source: str, provenance: Provenance, samples: Sequence[float],
                   expected: float, tolerance: float = 0.0, comparison: Comparison = "within", relative: bool = False,
                   statistic: str = "mean", confidence: float = 0.95) -> Claim:
        c = over_seeds(id, statement, source, provenance, samples, expected, tolerance, comparison, relative, statistic,
                       confidence)
        self.add(c)
        return c

    def over_resamples(self, id: str, statement: str, source: str, provenance: Provenance, n_seeds: int,
                       statistic: Callable[[np.ndarray], float], expected: float, tolerance: float = 0.0,
                       comparison: Comparison = "within", relative: bool = False, confidence: float = 0.95) -> Claim:
        c = over_resamples(id, statement, source, provenance, n_seeds, statistic, expected, tolerance, comparison, relative,
                           confidence)
        self.add(c)
        return c

    def k_of_n(self, id: str, statement: str, source: str, provenance: Provenance, outcomes: Sequence[bool],
               rate: float, comparison: Comparison = "at_least", confidence: float = 0.95) -> Claim:
        c = k_of_n(id, statement, source, provenance, outcomes, rate, comparison, confidence)
        self.add(c)
        return c

    def ordering(self, id: str, statement: str, source: str, provenance: Provenance, measured: float, expected: float,
                 tolerance: float, comparison: Comparison, n_seeds: int, holds: Callable[[np.ndarray], bool],
                 samples: Sequence[float] = (), confidence: float = 0.95) -> Claim:
        c = ordering(id, statement, source, provenance, measured, expected, tolerance, comparison, n_seeds, holds,
                     samples, confidence)
        self.add(c)
        return c

    def control(self, id: str, statement: str, source: str, claims: Sequence[Claim],
                provenance: Provenance = "derived") -> Claim:
        c = control(id, statement, source, claims, provenance)
        self.add(c)
        return c

    def at_checkpoints(self, steps: Sequence[int], evaluate: Callable[[int], Sequence[Claim]]) -> None:
        """Under --sensitivity: evaluate the decisive claims on the records at each checkpoint `step`
        (`evaluate(step)` returns claims with the reproduction's ids); a no-op otherwise, so it costs
        nothing in ordinary runs. Calls merge: a reproduction may call it once per arm (balance-deep: per
        activation) with distinct claim ids; an id evaluated twice at one step is an error, never an overwrite."""
        if self.sensitivity:
            for step in dict.fromkeys(int(s) for s in steps):  # each checkpoint once, in the given order
                have = self.checkpoint_claims.setdefault(step, [])
                seen = {c.id for c in have}
                for c in evaluate(step):
                    require(c.id not in seen, f"{self.name}: claim {c.id!r} is evaluated twice at checkpoint {step}; "
                            "give each at_checkpoints call its own claim ids")
                    seen.add(c.id)
                    have.append(c)

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
    per size, expected runtimes per size, and the function that runs it. `knobs` are the size knobs
    ``--sensitivity`` varies at quick cost (configuration key, dotted for nested keys → values) and
    `decisive` the claim ids it maps."""

    name: str
    description: str
    sizes: dict[str, dict[str, Any]]
    runtime: dict[str, str]
    source: str
    run: Runner
    knobs: dict[str, list[Any]] = field(default_factory=dict)
    decisive: tuple[str, ...] = ()


REGISTRY: dict[str, Experiment] = {}


def reproduction(name: str, description: str, *, quick: dict[str, Any], full: dict[str, Any],
                 runtime: dict[str, str], source: str, knobs: dict[str, list[Any]] | None = None,
                 decisive: Sequence[str] = ()) -> Callable[[Runner], Runner]:
    """Register `fn(ctx)` as the reproduction `name` (``lazyrich reproduce NAME``). `runtime` gives the
    measured wall time per size, e.g. ``{"quick": "20 s (2 CPU cores)", "full": "40 min CPU, 3 min GPU"}``.
    `knobs` (≤ 2 keys of the quick configuration, dotted for nested, → values to try) and `decisive`
    (claim ids) declare what ``lazyrich reproduce NAME --sensitivity`` maps."""
    require(set(runtime) == set(SIZES), f"{name}: runtime needs exactly the keys {SIZES}")
    knobs = dict(knobs or {})
    require(len(knobs) <= 2, f"{name}: declare at most two sensitivity knobs (each costs quick runs)")
    for key in knobs:
        _lookup(quick, key, name)

    def wrap(fn: Runner) -> Runner:
        if name in REGISTRY and REGISTRY[name].run.__module__ != fn.__module__:
            raise LazyrichError(f"reproduction {name!r} is registered twice ({REGISTRY[name].run.__module__}, {fn.__module__})")
        REGISTRY[name] = Experiment(name, description, {"quick": dict(quick), "full": dict(full)}, dict(runtime), source, fn,
                                    knobs, tuple(decisive))
        return fn
    return wrap


def get(name: str) -> Experiment:
    if name not in REGISTRY:  # the package imports its reproductions lazily (lazyrich.experiments._load_all)
        from . import _load_all

        _load_all()
    require(name in REGISTRY, f"unknown reproduction {name!r}: `lazyrich reproduce --list` shows {', '.join(sorted(REGISTRY)) or 'none'}")
    return REGISTRY[name]


def _lookup(cfg: dict[str, Any], key: str, name: str = "") -> Any:
    """cfg["a"]["b"] for key "a.b" (a clear error when the key is missing)."""
    node: Any = cfg
    for part in key.split("."):
        require(isinstance(node, dict) and part in node, f"{name}: sensitivity knob {key!r} is not a key of the quick configuration")
        node = node[part]
    return node


def with_knob(cfg: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of `cfg` with the (dotted) `key` set to `value`."""
    _lookup(cfg, key)
    head, _, rest = key.partition(".")
    out = dict(cfg)
    out[head] = with_knob(cfg[head], rest, value) if rest else value
    return out

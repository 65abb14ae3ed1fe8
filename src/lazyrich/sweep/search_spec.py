"""The `search:` section of a sweep file: instead of a full grid, a search space over member keys, the
objectives (loss at the horizon, cost) and a budget of batches × batch size (docs/sweeps.md, "Search").

The rest of the file is an ordinary sweep whose axes are the *fixed* axes: every member they expand to
is one independent search (a *study*, e.g. one per width and seed). `search_from_dict` validates the
whole file before anything runs: the sweep as `validate.from_dict` does, the section's types and
ranges, and the checks across both (searchable keys, objectives the observables record, the memory
of one batch); every problem is one line of a `SpecError` naming `search.<key>` and the fix.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, ValidationError

from . import limits as L
from .spec import (Choice, Dist, Integers, LogUniform, Seed, SpecError, SweepSpec, Uniform, _Strict,
                   check_value, short_repr)

if TYPE_CHECKING:
    import pandas as pd

# keys a batch may vary inside one ensemble (the shape keys planner.GROUP_KEYS may not: one batch is one ensemble)
SEARCHABLE = ("scheme", "gamma", "lr", "weight_decay", "tau", "delta", "lam", "std_scale")
SHAPE_KEYS = ("task", "task_seed", "width", "depth", "activation", "optimizer")
OBJECTIVES = ("loss", "test_loss", "cost")
COSTS = ("config_steps", "flops", "wall_s")
SAMPLERS = ("tpe", "nsga2", "random")
MAX_BATCHES = 10_000
MAX_BATCH_SIZE = 100_000


class Budget(_Strict):
    """`batches` iterations of `batch_size` proposals per study; one batch is one ensemble."""

    batches: int = Field(gt=0, le=MAX_BATCHES)
    batch_size: int = Field(gt=0, le=MAX_BATCH_SIZE)


class SamplerSpec(_Strict):
    """Optuna's multi-objective TPE (multivariate, constant liar within a batch), NSGA-II (population =
    batch size) or random search; `seed` seeds every batch's sampler (with the study and batch index)."""

    kind: Literal[SAMPLERS] = "tpe"  # type: ignore[valid-type]
    seed: Seed = 0


class SearchSpec(_Strict):
    space: Annotated[dict[str, Dist], Field(min_length=1)]
    objectives: Annotated[list[Literal[OBJECTIVES]], Field(min_length=1, max_length=3)] = ["loss", "cost"]  # type: ignore[valid-type]
    cost: Literal[COSTS] = "config_steps"  # type: ignore[valid-type]
    budget: Budget
    seeds: Annotated[list[Seed], Field(min_length=1, max_length=1000)] | None = None  # each trial on these init seeds
    sampler: SamplerSpec = SamplerSpec()


@dataclass(frozen=True)
class Search:
    """A validated search: `sweep` (its axes are the fixed axes), the `search` section, and `fixed`, one
    row per study (every member key; index = study id)."""

    sweep: SweepSpec
    search: SearchSpec
    fixed: "pd.DataFrame"

    @property
    def name(self) -> str:
        return self.sweep.name

    @property
    def seeds(self) -> list[int] | None:
        return None if self.search.seeds is None else list(self.search.seeds)

    def to_dict(self) -> dict[str, Any]:
        """The file as validated (what `lazyrich runs show RUN --spec` prints back)."""
        return {**self.sweep.model_dump(mode="json"), "search": self.search.model_dump(mode="json")}


def _bounds(dist: Any) -> list[Any]:
    if isinstance(dist, Choice):
        return list(dist.choice)
    if isinstance(dist, Integers):
        return [dist.integers[0], dist.integers[1] - 1]
    return list(dist.loguniform if isinstance(dist, LogUniform) else dist.uniform)


def _space_problems(sweep: SweepSpec, search: SearchSpec) -> list[str]:
    problems: list[str] = []
    swept = {k: i for i, a in enumerate(sweep.axes) for k in a.keys}
    for key, dist in search.space.items():
        where = f"search.space.{key}"
        if key in SHAPE_KEYS:
            problems.append(f"{where}: {key} changes the ensemble's shape and one batch is one ensemble; sweep it in "
                            "axes: instead (one search per value)")
            continue
        if key in ("seed",):
            problems.append(f"{where}: seeds are not searched; list them in search.seeds (every trial runs on each)")
            continue
        if key not in SEARCHABLE:
            problems.append(f"{where}: unknown key; searchable keys are {', '.join(SEARCHABLE)}")
            continue
        if key in swept:
            problems.append(f"{where}: {key} is also swept in axes[{swept[key]}]; search it or sweep it, not both")
        if key in sweep.derived:
            problems.append(f"{where}: {key} is also derived; drop it from derived: or from the search space")
        if isinstance(dist, (Uniform, LogUniform)) and not _bounds(dist)[0] < _bounds(dist)[1]:
            lo, hi = _bounds(dist)
            problems.append(f"{where}: empty range [{lo:g}, {hi:g}]; give lo < hi (a fixed value belongs in its section)")
            continue
        for v in _bounds(dist):
            try:
                check_value(key, v)
            except ValidationError as exc:
                problems.append(f"{where}: {short_repr(v)} is not a valid {key} ({exc.errors()[0]['msg'].lower()}); "
                                "change the range")
                break
    for dkey, text in sweep.derived.items():
        used = [k for k in search.space if re.search(rf"\b{re.escape(k)}\b", text)]
        if used:
            problems.append(f"derived.{dkey}: uses {used[0]}, which search.space searches (derived keys are fixed per "
                            "study); drop the expression or the search key")
    return problems


def _objective_problems(sweep: SweepSpec, search: SearchSpec) -> list[str]:
    problems: list[str] = []
    objs = search.objectives
    dup = next((o for i, o in enumerate(objs) if o in objs[:i]), None)
    if dup:
        problems.append(f"search.objectives: {dup} is listed twice; list each objective once")
    names = {o if isinstance(o, str) else next(iter(o)) for o in sweep.observables}
    if {"loss", "test_loss"} & set(objs) and "loss" not in names:
        problems.append("observables: the objectives read the loss at the horizon; add loss to observables")
    if "test_loss" in objs:
        lacking = [label for label, t in sweep.tasks.items() if not getattr(t, "n_test", 0)]
        if lacking:
            problems.append(f"search.objectives: test_loss needs test data, which task {lacking[0]} lacks; set its "
                            "n_test or use loss")
    if not any(o != "cost" for o in objs):
        problems.append("search.objectives: cost alone has no optimum; add loss or test_loss")
    if search.sampler.kind == "nsga2" and search.budget.batch_size < 2:
        problems.append("search.budget.batch_size: NSGA-II's population is the batch; use batch_size ≥ 2")
    return problems


def _size_problems(sweep: SweepSpec, search: SearchSpec, fixed: "pd.DataFrame") -> list[str]:
    from .planner import GROUP_KEYS

    b = search.budget
    seeds = len(search.seeds or [0])
    total = len(fixed) * b.batches * b.batch_size * seeds
    if total > L.MAX_MEMBERS:
        return [f"search.budget: {len(fixed)} studies × {b.batches} batches × {b.batch_size} trials × {seeds} seeds = "
                f"{total:.3g} members (> {L.MAX_MEMBERS:.0e}); lower batches or batch_size"]
    avail = L.available_bytes()
    for _, group in fixed.groupby(list(GROUP_KEYS), sort=False):
        row = group.iloc[0].to_dict()
        one, rec, shared = L.one_member_bytes(sweep, row)
        count = len(group) * b.batch_size * seeds  # one batch of every study of this shape: one ensemble
        need = shared + count * (one + rec)
        if need > avail:
            return [f"search.budget.batch_size: one batch ({count} members of width {row['width']}, depth {row['depth']}) "
                    f"needs ~{L.human(need)}, more than the {L.human(avail)} available; use a smaller batch_size"]
    return []


def search_from_dict(data: Any, source: str = "search spec") -> Search:
    """Validate a sweep file with a `search:` section (the parsed YAML); raises `SpecError` naming every
    problem, before anything runs or is written."""
    from .planner import expand
    from .validate import _errors, from_dict

    if not isinstance(data, dict) or not isinstance(data.get("search"), dict):
        raise SpecError(source, ["search: give a mapping with space:, objectives:, budget: (docs/sweeps.md, Search)"])
    problems: list[str] = []
    search: SearchSpec | None = None
    try:
        search = SearchSpec.model_validate(data["search"])
    except ValidationError as exc:
        problems += [("search." + p) if not p.startswith("(top level)") else "search" + p[len("(top level)"):]
                     for p in _errors(exc)]
    try:
        sweep = from_dict({k: v for k, v in data.items() if k != "search"}, source)
    except SpecError as exc:
        raise SpecError(source, problems + exc.problems) from None
    if search is None:
        raise SpecError(source, problems)
    problems += _space_problems(sweep, search) + _objective_problems(sweep, search)
    if search.seeds is not None and (any("seed" in a.keys for a in sweep.axes) or "seed" in sweep.derived):
        problems.append("search.seeds: seed is also swept in axes: or derived:; give the seeds in one place")
    if problems:
        raise SpecError(source, problems)
    fixed = expand(sweep)
    problems = _size_problems(sweep, search, fixed)
    if problems:
        raise SpecError(source, problems)
    return Search(sweep, search, fixed)


def load_search(path: Any) -> Search:
    """Read and validate a YAML sweep file with a `search:` section (bounded as `validate.load_spec`)."""
    from pathlib import Path

    from .yamlsafe import read_yaml

    return search_from_dict(read_yaml(Path(path)), L.one_line(str(path), 120))


def is_search(data: Any) -> bool:
    """Whether parsed YAML (or a dict) describes a search (has a top-level `search:` key)."""
    return isinstance(data, dict) and "search" in data

"""Validation of sweeps, complete before anything runs, allocates or writes.

**The one entry point is `validate_spec(spec)`**: it raises `SpecError` (a `LazyrichError`, one
line: "key: what is wrong; the fix") or returns None, and must be called before a store file or
run row is created. `from_dict` (structure, via pydantic) and `load_spec` (file: size, UTF-8, YAML
with bounded alias expansion) call it. Order, so that nothing proportional to a requested size runs
before it is bounded: field types and ranges (pydantic, in `spec.py`) → cross-section checks →
sizes from arithmetic alone (`limits.py`: member count, record points, members table, lower bounds
of one member) → the members table is expanded → derived values, init constraints and the exact
memory and record volume of every ensemble against this machine's available memory.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..errors import LazyrichError
from . import limits as L
from .expr import check_expression
from .spec import (MEMBER_KEYS, NUMERIC_KEYS, Axis, Choice, Integers, LogUniform, SpecError, SweepSpec, block_count,
                   check_value, one_line, short_repr, value_count)

_LIST_ADAPTERS = {k: TypeAdapter(list[t]) for k, t in MEMBER_KEYS.items()}  # type: ignore[valid-type]


def _loc(loc: tuple) -> str:
    out = ""
    for i, part in enumerate(loc):
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("one", "many", "list", "teacher_student", "whitened_regression") or "[" in part or part == nxt:
            continue  # union branch tags, not keys
        else:
            out += ("." if out else "") + one_line(str(part), 40)
    return out or "(top level)"


def _line(err: dict[str, Any]) -> str:
    key, kind, msg = _loc(err["loc"]), err["type"], err["msg"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key; remove it or fix its spelling"
    if kind == "missing":
        return f"{key}: required; add it"
    if kind == "string_pattern_mismatch":
        return f"{key}: use only letters, digits, '_', '.' and '-' (got {short_repr(err.get('input'))})"
    if kind in ("too_short", "list_type") and "at least 1 item" in msg:
        return f"{key}: empty; give at least one entry"
    if kind == "finite_number":
        return f"{key}: must be a finite number (got {short_repr(err.get('input'))}); give a number such as 0.1"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {short_repr(got)})"
    return f"{key}: {msg[0].lower() + msg[1:]}{shown}"


def _errors(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        line = _line(err)
        # a union reports every branch; keep one line per key
        if not any(l.split(":")[0] == line.split(":")[0] for l in lines):
            lines.append(line)
    return lines


def _where(spec: SweepSpec, key: str) -> str:
    """The path that sets member key `key`: its axis, `derived.key`, or its section."""
    for i, axis in enumerate(spec.axes):
        if key in axis.keys:
            kind = "grid" if axis.grid is not None else "zip" if axis.zip is not None else "random.dists"
            return f"axes[{i}].{kind}.{key}"
    if key in spec.derived:
        return f"derived.{key}"
    return {"width": "model.width", "depth": "model.depth"}.get(key, key)


def semantic_problems(spec: SweepSpec) -> list[str]:
    """Checks across sections that need no expansion (axes keys and values, observables, flow,
    tasks, derived expressions); [] when valid."""
    from ..observe import REGISTRY

    problems: list[str] = []
    if spec.flow is None and spec.steps is None:
        problems.append("steps: required for discrete training; add steps: N (or a flow: section)")
    if spec.flow is not None:
        problems += _flow_problems(spec)
    elif isinstance(spec.record, list) and spec.steps is not None and not any(k <= spec.steps for k in spec.record):
        problems.append(f"record: no listed step is within 0..{spec.steps} (steps); list steps ≤ {spec.steps}")
    for j, item in enumerate(spec.observables):
        if isinstance(item, dict) and len(item) != 1:
            problems.append(f"observables[{j}]: give one observable per entry, e.g. {{kernel_distance: {{weights: unit}}}}")
            continue
        name, opts = (item, {}) if isinstance(item, str) else next(iter(item.items()))
        if name not in REGISTRY:
            problems.append(f"observables[{j}]: unknown observable {short_repr(name)}; choose from {', '.join(sorted(REGISTRY))}")
            continue
        try:
            REGISTRY[name](**opts)
        except Exception as exc:  # any failure of the factory is a bad option of the user's
            problems.append(f"observables[{j}].{name}: bad options ({one_line(str(exc), 80)}); see the observer's docstring")
    for label, task in spec.tasks.items():
        rank, n, d = getattr(task, "rank", None), task.n or max(2 * task.dims[0], task.dims[0] + 1), task.dims[0]
        where = "task" if not isinstance(spec.task, dict) else f"task.{label}"
        if rank is not None and rank > min(n, d):
            problems.append(f"{where}.rank: {rank} must be ≤ min(n, d) = {min(n, d)}; lower rank or raise n and d")
        batch = spec.optimizer.batch_size
        if batch is not None and batch > n:
            problems.append(f"optimizer.batch_size: {batch} exceeds the {n} training samples of {where}; "
                            f"use batch_size ≤ {n}")
    labels = list(spec.tasks)
    seen: dict[str, int] = {}
    for i, axis in enumerate(spec.axes):
        kind = "grid" if axis.grid is not None else "zip" if axis.zip is not None else "random"
        for key in axis.keys:
            where = f"axes[{i}].{kind}{'.dists' if kind == 'random' else ''}.{one_line(key, 40)}"
            if key not in MEMBER_KEYS:
                problems.append(f"{where}: unknown axis key; sweepable keys are {', '.join(MEMBER_KEYS)}")
                continue
            if key in seen:
                problems.append(f"{where}: {key} is already swept in axes[{seen[key]}]; sweep each key in one block")
            seen[key] = i
            if key in spec.derived:
                problems.append(f"{where}: {key} is also derived; drop it from derived: or from the axes")
            values = _axis_values(axis, key)
            try:
                _LIST_ADAPTERS[key].validate_python(values)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                j = err["loc"][0] if err["loc"] else 0
                problems.append(f"{where}[{j}]: {err['msg'].lower()} (got {short_repr(err.get('input'))})")
                continue
            if key == "task":
                bad = next((j for j, v in enumerate(values) if v not in labels), None)
                if bad is not None:
                    problems.append(f"{where}[{bad}]: unknown task {short_repr(values[bad])}; name one of the tasks: "
                                    f"{', '.join(labels)}")
            if key == "optimizer" and spec.flow is not None:
                problems.append(f"{where}: optimizer cannot be swept under flow:; remove the axis or the flow: section")
    for key, text in spec.derived.items():
        if key not in NUMERIC_KEYS:
            problems.append(f"derived.{one_line(key, 40)}: only numeric keys can be derived ({', '.join(NUMERIC_KEYS)})")
            continue
        err = check_expression(text, set(NUMERIC_KEYS) - {key})
        if err:
            problems.append(f"derived.{key}: {err}")
    return problems


def _flow_problems(spec: SweepSpec) -> list[str]:
    problems = []
    flow = spec.flow
    assert flow is not None
    t = flow.times
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in t):
        problems.append("flow.times: must be numbers, e.g. {linspace: [0, 10, 21]}")
    elif not (t[0] == 0.0 and all(b > a for a, b in zip(t, t[1:])) and t[-1] < float("inf")):
        problems.append("flow.times: must start at 0, increase strictly and stay finite, e.g. {linspace: [0, 10, 21]}")
    if spec.optimizer.kind != "gd":
        problems.append("optimizer.kind: gradient flow (flow:) needs kind gd; remove the flow: section or the kind")
    from torchdiffeq._impl.odeint import SOLVERS
    if flow.method not in SOLVERS:
        problems.append(f"flow.method: unknown solver {short_repr(flow.method)}; choose from {', '.join(SOLVERS)}")
    return problems


def _axis_values(axis: Axis, key: str) -> list[Any]:
    if axis.grid is not None:
        return axis.grid[key]
    if axis.zip is not None:
        return axis.zip[key]
    dist = axis.random.dists[key]  # type: ignore[union-attr]
    if isinstance(dist, Choice):
        return dist.choice
    if isinstance(dist, Integers):
        lo, hi = dist.integers
        return [lo, hi - 1]
    if isinstance(dist, LogUniform):
        return list(dist.loguniform)
    return list(dist.uniform)


def _candidates(spec: SweepSpec, key: str) -> list[Any] | None:
    """Every value member key `key` takes, before expansion (None when it is derived)."""
    if key in spec.derived:
        return None
    for axis in spec.axes:
        if key in axis.keys:
            return _axis_values(axis, key)
    return [spec.base_member()[key]]


def size_problems(spec: SweepSpec) -> list[str]:
    """Sizes from arithmetic alone, before anything is expanded or allocated: member count, record
    points, the members table, and lower bounds on one member's memory. [] when within limits."""
    n, points = L.member_count(spec), L.record_point_count(spec)
    if n > L.MAX_MEMBERS:
        i = max(range(len(spec.axes)), key=lambda j: L.axis_length(spec.axes[j]))
        return [f"axes: the axes expand to {n:.3g} members (> {L.MAX_MEMBERS:.0e}; axes[{i}] alone gives "
                f"{L.axis_length(spec.axes[i]):.3g}); use fewer values or split the sweep into several files"]
    if points > L.MAX_RECORD_POINTS:
        key = "flow.times" if spec.flow is not None else "record"
        return [f"{key}: {points:.3g} recorded points per member (> {L.MAX_RECORD_POINTS:.0e}); record fewer, "
                "e.g. record: {log: 50}"]
    widths, depths = _candidates(spec, "width"), _candidates(spec, "depth")
    tasks, kinds = _candidates(spec, "task") or list(spec.tasks), _candidates(spec, "optimizer")
    if widths is None or depths is None or kinds is None:
        shapes = []  # derived shapes: bounded after expansion
    else:  # a member with the largest width has at least the smallest depth (and vice versa): lower bounds
        shapes = [{"task": t, "width": w, "depth": d, "optimizer": o} for t in tasks for o in kinds
                  for w, d in ((max(widths), min(depths)), (min(widths), max(depths)))]
    est = (L.estimate(spec, shapes, [1] * len(shapes)) if shapes
           else L.Estimate(n, points, n * L.PLAN_BYTES_PER_MEMBER, {}, 0, 0, 0, 0, 0))  # the members table alone
    return _memory_problems(spec, est, lower=True)


def _memory_problems(spec: SweepSpec, est: L.Estimate, lower: bool = False) -> list[str]:
    """The estimate against the record-volume limit and this machine's available memory."""
    if not lower and est.record_rows > L.MAX_RECORD_ROWS:
        key = "flow.times" if spec.flow is not None else "record"
        return [f"{key}: the run would write ~{est.record_rows:.3g} record rows ({est.members} members × "
                f"{est.record_points} points × their observables' values; > {L.MAX_RECORD_ROWS:.0e}); record fewer "
                "points or observables, or split the sweep"]
    avail = L.available_bytes()
    if est.peak_bytes <= avail:
        return []
    need = (f"needs ~{L.human(est.peak_bytes)} of memory ({L.human(est.plan_bytes)} to plan {est.members:.3g} members"
            + (f", {L.human(est.chunk_bytes)} for a chunk of {est.chunk_members} member(s) of width "
               f"{est.row['width']}, depth {est.row['depth']}" if est.row else "")
            + f"), more than the {L.human(avail)} available")
    if est.plan_bytes >= est.chunk_bytes:
        return [f"axes: the sweep {need}; use fewer members or split the sweep into several files"]
    if est.chunk_members > 1:
        return [f"execution.memory_mb: the sweep {need}; lower execution.memory_mb (now {spec.execution.memory_mb:g}) "
                "or set execution.chunk_members"]
    return [f"{_blame(spec, est.row)}: the sweep {need}; use a smaller value"]


def _blame(spec: SweepSpec, row: dict[str, Any]) -> str:
    """The size field whose reduction to 1 shrinks one member's memory the most (its path)."""
    label = str(row["task"])
    task = spec.tasks[label]
    tpath = "task" if not isinstance(spec.task, dict) else f"task.{label}"

    def cost(s: SweepSpec, r: dict[str, Any]) -> int:
        one, rec, shared = L.one_member_bytes(s, r)
        return one + rec + shared

    def with_task(**change: int) -> SweepSpec:
        t = task.model_copy(update=change)
        return spec.model_copy(update={"task": {**spec.tasks, label: t} if isinstance(spec.task, dict) else t})

    one, rec, shared = L.one_member_bytes(spec, row)
    options = {_where(spec, "width"): cost(spec, {**row, "width": 1}), _where(spec, "depth"): cost(spec, {**row, "depth": 1}),
               "flow.times" if spec.flow is not None else "record": one + rec // max(L.record_point_count(spec), 1) + shared}
    for field in ("n", "d", "k", "c", "n_test"):
        if getattr(task, field, None):
            options[f"{tpath}.{field}"] = cost(with_task(**{field: 1}), row)
    return min(options, key=options.__getitem__)


def _expanded_problems(spec: SweepSpec) -> list[str]:
    """Checks that need the members table (bounded by `size_problems`): derived values, init
    constraints, and the exact memory and record volume of every ensemble."""
    from .planner import GROUP_KEYS, expand

    try:
        members = expand(spec)
    except LazyrichError as exc:
        return [str(exc)]
    problems: list[str] = []
    for key, text in spec.derived.items():
        col = members[key]
        try:
            for v in col.unique():
                check_value(key, int(v) if key in ("task_seed", "width", "depth", "seed") and float(v).is_integer() else v)
        except (ValidationError, ValueError, OverflowError) as exc:
            msg = exc.errors()[0]["msg"].lower() if isinstance(exc, ValidationError) else str(exc)
            problems.append(f"derived.{key}: {text!r} gives {msg}; change the expression or the axes")
    if problems:
        return problems
    groups = members.groupby(list(GROUP_KEYS), sort=False).size()
    shapes = [dict(zip(GROUP_KEYS, g)) for g in groups.index]
    problems += _memory_problems(spec, L.estimate(spec, shapes, [int(s) for s in groups]))
    if problems:
        return problems
    kind = spec.init.kind
    if kind in ("kunin", "lambda_balanced") and not members.depth.eq(2).all():
        problems.append(f"init.kind: {kind} needs a two-layer net; set model.depth: 2")
    if kind == "kunin":
        if spec.model.bias:
            problems.append("model.bias: kunin init assumes no biases; set bias: false")
        if not (members.width % 2 == 0).all():
            problems.append("model.width: kunin init duplicates neurons with flipped readouts; use even widths")
    if kind == "balanced_chain" and spec.model.activation != "linear":
        problems.append("init.kind: balanced_chain balances a deep *linear* chain; set model.activation: linear")
    if spec.parametrization.overrides:
        problems += _override_problems(spec, members)
    if kind in ("lambda_balanced", "balanced_chain") and not problems:
        problems += _dry_build(spec, members)
    if spec.dtype == "float32" and spec.flow is not None:
        problems.append("dtype: gradient flow runs in float64 to meet its tolerances; set dtype: float64")
    return problems


def _override_problems(spec: SweepSpec, members: Any) -> list[str]:
    """Overrides name tensors (W1, ..., b1, ...) and fields of the layer table: check them per depth."""
    from ..param.schemes import layer_table
    from .planner import widths

    for _, row in members.drop_duplicates(["task", "depth"]).head(64).iterrows():
        try:
            layer_table(widths(spec, row), spec.parametrization.scheme, "sgd", bias=spec.model.bias,
                        overrides=spec.parametrization.overrides)
        except LazyrichError as exc:
            return [f"parametrization.overrides: {exc}"]
    return []


def _dry_build(spec: SweepSpec, members: Any) -> list[str]:
    """Build one member per (shape, λ) pair: the balanced inits reject some widths and signs of λ."""
    from ..ensemble import build
    from ..models import MLP
    from .planner import widths

    for _, row in members.drop_duplicates(["task", "width", "depth", "lam"]).head(64).iterrows():
        try:
            build(MLP(widths(spec, row), spec.model.activation, spec.model.bias), [{"lam": row["lam"], "seed": 0}],
                  init=spec.init.kind, std_scale=spec.init.std_scale)
        except LazyrichError as exc:
            return [f"init.kind: {spec.init.kind} fails for width {row['width']}, lam {row['lam']}: {exc}"]
    return []


def validate_spec(spec: SweepSpec, source: str = "sweep spec") -> None:
    """Everything a parsed spec must satisfy before any work: raises `SpecError` (one line, naming
    the key and the fix) or returns None. Call it before creating a store or a run row; what it
    expands and allocates is bounded by the limits it checks first (`limits.py`)."""
    for stage in (semantic_problems, size_problems, _expanded_problems):
        problems = stage(spec)
        if problems:
            raise SpecError(source, problems)


def _count_problem(axes: Any) -> str | None:
    """The member count of raw axes, by arithmetic, before any value is made; names the largest
    block (and its largest key) when the product passes `MAX_MEMBERS`."""
    counts = [block_count(b) for b in axes] if isinstance(axes, list) else []
    if not counts or None in counts or math.prod(counts) <= L.MAX_MEMBERS:  # type: ignore[arg-type]
        return None
    i = max(range(len(counts)), key=counts.__getitem__)
    (kind, body), = axes[i].items()
    where = f"axes[{i}].{kind}" + (".n" if kind == "random" else "")
    if kind != "random":
        key = max(body, key=lambda k: value_count(body[k]) or 0)
        where += f".{one_line(str(key), 40)}" if value_count(body[key]) == counts[i] else ""
    return (f"{where}: the axes expand to {math.prod(counts):.3g} members (> {L.MAX_MEMBERS:.0e}; "  # type: ignore[arg-type]
            f"axes[{i}] gives {counts[i]:.3g}); use fewer values or split the sweep into several files")


def from_dict(data: Any, source: str = "sweep spec") -> SweepSpec:
    """Validate a sweep given as a dict (the parsed YAML); raises `SpecError` naming every problem."""
    if not isinstance(data, dict):
        raise SpecError(source, ["(top level): a sweep is a mapping of keys (name:, task:, model:, ...)"])
    if "search" in data:  # a search file is run by sweep/search.py (`lazyrich sweep` routes it there)
        raise SpecError(source, ["search: this file is a search; run it with `lazyrich sweep FILE` or "
                                 "lazyrich.sweep.run_search (docs/sweeps.md, Search)"])
    too_many = _count_problem(data.get("axes"))
    if too_many:
        raise SpecError(source, [too_many])
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, _errors(exc)) from None
    except RecursionError:
        raise SpecError(source, ["(top level): nested too deeply; a sweep is a few levels of mappings"]) from None
    validate_spec(spec, source)
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML sweep file (at most 8 MiB of UTF-8; aliases may not expand past
    10⁶ nodes)."""
    from .yamlsafe import read_yaml

    return from_dict(read_yaml(Path(path)), one_line(str(path), 120))

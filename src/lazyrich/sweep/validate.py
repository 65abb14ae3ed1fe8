"""Validation of sweep files: pydantic's structural errors and the cross-section checks become one
line per problem, "key: what is wrong; the fix" (`SpecError`), before anything runs or is written."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import LazyrichError
from .expr import check_expression
from .spec import MEMBER_KEYS, NUMERIC_KEYS, Axis, Choice, Integers, LogUniform, SpecError, SweepSpec, check_value


def _loc(loc: tuple) -> str:
    out = ""
    for i, part in enumerate(loc):
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("one", "many", "list", "teacher_student", "whitened_regression") or "[" in part or part == nxt:
            continue  # union branch tags, not keys
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _line(err: dict[str, Any]) -> str:
    key, kind, msg = _loc(err["loc"]), err["type"], err["msg"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key; remove it or fix its spelling"
    if kind == "missing":
        return f"{key}: required; add it"
    if kind == "string_pattern_mismatch":
        return f"{key}: use only letters, digits, '_', '.' and '-' (got {err.get('input')!r})"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{key}: {msg[0].lower() + msg[1:]}{shown}"


def _errors(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        line = _line(err)
        # a union reports every branch; keep one line per key
        if not any(l.split(":")[0] == line.split(":")[0] for l in lines):
            lines.append(line)
    return lines


def semantic_problems(spec: SweepSpec) -> list[str]:
    """Checks across sections (axes keys and values, observables, init constraints); [] when valid."""
    from ..observe import REGISTRY

    problems: list[str] = []
    if spec.flow is None and spec.steps is None:
        problems.append("steps: required for discrete training; add steps: N (or a flow: section)")
    if spec.flow is not None:
        t = [float(x) for x in spec.flow.times]
        if not (t and t[0] == 0.0 and all(b > a for a, b in zip(t, t[1:]))):
            problems.append("flow.times: must start at 0 and increase strictly, e.g. {linspace: [0, 10, 21]}")
        if spec.optimizer.kind != "gd":
            problems.append("optimizer.kind: gradient flow (flow:) needs kind gd; remove the flow: section or the kind")
    for j, item in enumerate(spec.observables):
        if isinstance(item, dict) and len(item) != 1:
            problems.append(f"observables[{j}]: give one observable per entry, e.g. {{kernel_distance: {{weights: unit}}}}")
            continue
        name, opts = (item, {}) if isinstance(item, str) else next(iter(item.items()))
        if name not in REGISTRY:
            problems.append(f"observables[{j}]: unknown observable {name!r}; choose from {', '.join(sorted(REGISTRY))}")
            continue
        try:
            REGISTRY[name](**opts)
        except (TypeError, ValueError, LazyrichError) as exc:
            problems.append(f"observables[{j}].{name}: bad options {opts} ({exc}); see the observer's docstring")
    labels = list(spec.tasks)
    seen: dict[str, int] = {}
    for i, axis in enumerate(spec.axes):
        kind = "grid" if axis.grid is not None else "zip" if axis.zip is not None else "random"
        for key in axis.keys:
            where = f"axes[{i}].{kind}{'.dists' if kind == 'random' else ''}.{key}"
            if key not in MEMBER_KEYS:
                problems.append(f"{where}: unknown axis key; sweepable keys are {', '.join(MEMBER_KEYS)}")
                continue
            if key in seen:
                problems.append(f"{where}: {key} is already swept in axes[{seen[key]}]; sweep each key in one block")
            seen[key] = i
            if key in spec.derived:
                problems.append(f"{where}: {key} is also derived; drop it from derived: or from the axes")
            values = _axis_values(axis, key)
            for j, v in enumerate(values):
                try:
                    check_value(key, v)
                except ValidationError as exc:
                    problems.append(f"{where}[{j}]: {exc.errors()[0]['msg'].lower()} (got {v!r})")
                    break
                if key == "task" and v not in labels:
                    problems.append(f"{where}[{j}]: unknown task {v!r}; name one of the tasks: {', '.join(labels)}")
                    break
            if key == "optimizer" and spec.flow is not None:
                problems.append(f"{where}: optimizer cannot be swept under flow:; remove the axis or the flow: section")
    for key, text in spec.derived.items():
        if key not in NUMERIC_KEYS:
            problems.append(f"derived.{key}: only numeric keys can be derived ({', '.join(NUMERIC_KEYS)})")
            continue
        err = check_expression(text, set(NUMERIC_KEYS) - {key})
        if err:
            problems.append(f"derived.{key}: {err}")
    if problems:
        return problems
    problems += _init_problems(spec)
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
        return [lo, hi - 1] if hi > lo else [lo, hi]
    if isinstance(dist, LogUniform):
        return list(dist.loguniform)
    return list(dist.uniform)


def _init_problems(spec: SweepSpec) -> list[str]:
    """Constraints that need the expanded members (run on the whole table, one line per key)."""
    from .planner import expand

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
    if kind in ("lambda_balanced", "balanced_chain"):
        problems += _dry_build(spec, members)
    if spec.dtype == "float32" and spec.flow is not None:
        problems.append("dtype: gradient flow runs in float64 to meet its tolerances; set dtype: float64")
    return problems


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


def from_dict(data: Any, source: str = "sweep spec") -> SweepSpec:
    """Validate a sweep given as a dict (the parsed YAML); raises `SpecError` listing every problem."""
    if not isinstance(data, dict):
        raise SpecError(source, ["(top level): a sweep is a mapping of keys (name:, task:, model:, ...)"])
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, _errors(exc)) from None
    problems = semantic_problems(spec)
    if problems:
        raise SpecError(source, problems)
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML sweep file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise LazyrichError(f"sweep file {path} does not exist: check the path (examples/ holds ready sweeps)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise SpecError(str(path), [f"(yaml) {where}: {getattr(exc, 'problem', exc)}; fix the YAML syntax"]) from None
    return from_dict(data, str(path))


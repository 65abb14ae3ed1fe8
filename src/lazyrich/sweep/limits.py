"""Size limits of a sweep and the one estimate of what it costs, computed from the spec alone.

Everything here is arithmetic on the spec: member counts of grid/linspace/range/random/product axes,
record points and the working memory are computed without materializing anything, so a request
for 10¹² members is refused in microseconds. `validate.validate_spec` applies them before any
expansion, allocation or store write. Error lines are bounded here too (`one_line`, `short_repr`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spec import Axis, SweepSpec

INT64_MAX = 2**63 - 1  # seeds are stored as BIGINT and seed torch/numpy generators: refused above, never wrapped
MAX_SIZE = 2**31 - 1  # widths, sample counts, dimensions: int32 keeps every product of two in int64
MAX_DEPTH = 1000  # weight layers; every layer is a Python-level step of the batched forward/backward
MAX_STEPS = 10**9  # optimizer steps (also warmup, schedule totals and recorded steps)
MAX_RECORD_POINTS = 10**6  # recorded steps or flow times per member
MAX_MEMBERS = 10**7  # as planner.MAX_MEMBERS: split larger sweeps into several files
MAX_RECORD_ROWS = 10**10  # rows of the records table one run may write (≈ 100 GB of DuckDB)
MAX_FILE_BYTES = 8 * 2**20  # a sweep file (YAML) is read whole: larger files are refused unread
MAX_YAML_NODES = 10**6  # nodes of the YAML document *after* aliases expand (alias bombs)
MAX_MESSAGE = 300  # characters of one error line

PLAN_BYTES_PER_MEMBER = 1024  # members table while planning: measured 906 B/member peak (2·10⁵ members)
RECORD_ROW_BYTES = 128  # one records row in memory (7 columns, plus the copies made while tidying)


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` on one line of at most `limit` characters (control characters become spaces, the middle
    is elided): no input can make an error message long or multi-line."""
    flat = "".join(" " if not ch.isprintable() else ch for ch in text)
    return flat if len(flat) <= limit else flat[: limit - 21] + " … " + flat[-18:]


def short_repr(value: Any, limit: int = 40) -> str:
    """repr of a value from the input, elided to `limit` characters (containers are summarized)."""
    if isinstance(value, (dict, list, tuple, set)):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {math.ceil(value.bit_length() * math.log10(2))} digits"  # repr() of a huge int raises
    if isinstance(value, str) and len(value) > 4 * limit:
        value = value[: 4 * limit]
    return one_line(repr(value), limit)


def value_count(v: Any) -> int | None:
    """How many values `v` (a list or {linspace|logspace|geomspace|range: ...}) gives, by arithmetic
    on the raw input; None when malformed (its validation says why)."""
    if isinstance(v, (list, tuple)):
        return len(v)
    try:
        (kind, args), = v.items()
        if kind == "range":
            return len(range(*(int(a) for a in args)))
        return int(args[2]) if kind in ("linspace", "logspace", "geomspace") else None
    except (AttributeError, TypeError, ValueError, IndexError, OverflowError):
        return None


def block_count(block: Any) -> int | None:
    """Members of one raw axes entry ({grid|zip|random: ...}), by arithmetic; None when malformed."""
    if not isinstance(block, dict) or len(block) != 1:
        return None
    (kind, body), = block.items()
    if kind == "random":
        n = body.get("n") if isinstance(body, dict) else None
        return n if isinstance(n, int) and not isinstance(n, bool) else None
    if kind not in ("grid", "zip") or not isinstance(body, dict) or not body:
        return None
    counts = [value_count(v) for v in body.values()]
    if any(c is None for c in counts):
        return None
    return math.prod(counts) if kind == "grid" else min(counts)  # type: ignore[arg-type]


def values_per_point(spec: "SweepSpec", width: int, depth: int) -> int:
    """Upper bound on the values one member records at one point, over all observables: at most 8
    per layer and one per hidden unit per layer for each observable (measured on every registered
    observable at widths 6 and 12, depths 2 and 3: the largest, conserved, records 4 + width·(depth−1))."""
    return len(spec.observables) * (8 * (depth + 1) + depth * width)


def record_point_count(spec: "SweepSpec") -> int:
    """len(spec.record_points()), by arithmetic where their number is not bounded by a field's type."""
    from .spec import RecordEvery, RecordLog

    if spec.flow is not None:
        return len(spec.flow.times)
    steps = int(spec.steps or 0)
    if isinstance(spec.record, RecordLog):  # log ≤ MAX_RECORD_POINTS by its type: computing them is bounded
        from ..records import log_steps
        return len(log_steps(steps, spec.record.log))
    if isinstance(spec.record, RecordEvery):
        return steps // spec.record.every + 1 + (steps % spec.record.every != 0)
    return len({k for k in spec.record if k <= steps})


def axis_length(axis: "Axis") -> int:
    if axis.grid is not None:
        return math.prod(len(v) for v in axis.grid.values())
    if axis.zip is not None:
        return len(next(iter(axis.zip.values())))
    return axis.random.n  # type: ignore[union-attr]


def member_count(spec: "SweepSpec") -> int:
    """How many members the axes expand to (a Python int: exact at any size)."""
    return math.prod(axis_length(a) for a in spec.axes)


def available_bytes() -> int:
    """Memory this machine can give now (psutil's `available`; total pages when psutil is missing)."""
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with dask
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EB"  # pragma: no cover


@dataclass(frozen=True)
class Estimate:
    """What running a sweep costs, from the spec: the members table while planning, and the largest
    chunk (`chunk_members` members of shape `row`: `member` bytes each, `records` bytes of records
    each, `shared` bytes of data); `peak_bytes` is the largest working set, `record_rows` the rows written."""

    members: int
    record_points: int
    plan_bytes: int
    row: dict[str, Any]
    chunk_members: int
    member: int
    records: int
    shared: int
    record_rows: int

    @property
    def chunk_bytes(self) -> int:
        return self.shared + self.chunk_members * (self.member + self.records)

    @property
    def peak_bytes(self) -> int:
        return self.plan_bytes + self.chunk_bytes


def _chunk_cap(spec: "SweepSpec", one: int, shared: int) -> int:
    """Members per chunk as `planner.plan` chooses them (budget / bytes per member, chunk_members)."""
    cap = max(1, int((spec.execution.memory_mb * 2**20 - shared) // max(one, 1)))
    return min(cap, spec.execution.chunk_members) if spec.execution.chunk_members else cap


def one_member_bytes(spec: "SweepSpec", row: dict[str, Any]) -> tuple[int, int, int]:
    """(working memory, records in memory, shared data) of one member of shape `row` (task, width,
    depth, optimizer): `planner.member_bytes` and `shared_bytes` plus the teacher and the records."""
    from .planner import member_bytes, shared_bytes

    per_member = record_point_count(spec) * values_per_point(spec, int(row["width"]), int(row["depth"]))
    shared = shared_bytes(spec, str(row["task"])) + _task_bytes(spec, str(row["task"]))
    return member_bytes(spec, row), per_member * RECORD_ROW_BYTES, shared


def estimate(spec: "SweepSpec", shapes: list[dict[str, Any]], group_sizes: list[int] | None = None) -> Estimate:
    """The cost of `spec` whose ensembles have the given `shapes` and `group_sizes` members each
    (after expansion: every group; before: bounds, each shape taken as holding every member)."""
    n = member_count(spec)
    points = record_point_count(spec)
    worst: tuple[int, ...] = (-1,)
    rows = 0
    for i, row in enumerate(shapes):
        size = n if group_sizes is None else group_sizes[i]
        one, rec, shared = one_member_bytes(spec, row)
        k = min(size, _chunk_cap(spec, one, shared))
        if shared + k * (one + rec) > worst[0]:
            worst = (shared + k * (one + rec), i, k, one, rec, shared)
        per = rec // RECORD_ROW_BYTES * size
        rows = max(rows, per) if group_sizes is None else rows + per
    _, i, k, one, rec, shared = worst
    return Estimate(n, points, n * PLAN_BYTES_PER_MEMBER, dict(shapes[i]), k, one, rec, shared, rows)


def _task_bytes(spec: "SweepSpec", task: str) -> int:
    """What `shared_bytes` leaves out: the teacher of teacher_student (k units, evaluated on every input)."""
    t = spec.tasks[task]
    k, n_test = getattr(t, "k", 0), max(getattr(t, "n_test", 0), 1)
    return 8 * k * (t.dims[0] + (t.n or 2 * t.dims[0]) + n_test + 1)

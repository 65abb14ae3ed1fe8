"""A sweep, described once: task, model, parametrization, init, optimizer, schedule, steps, the
recording schedule, observables and the axes to sweep. The same object comes from YAML
(`load_spec`) or Python (`from_dict` / `SweepSpec(...)`), and is validated before anything runs:
every problem becomes one line naming the key and the fix (`SpecError`).

Validation lives in `validate.py` (`validate_spec`); the size limits and the cost estimate in
`limits.py`. Every number is finite (`allow_inf_nan=False` on every section) and every size is
bounded by the types below, so nothing proportional to a requested size runs before the checks.
A *member* is one configuration: a value for every key of `MEMBER_KEYS`. Its base values come
from the sections below; the axes override them (grid = product, zip = side by side, random = n
draws); `derived` keys are computed last from the others (e.g. ``lr: "5e-3 / tau**2"``).
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, TypeAdapter, field_validator,
                      model_validator)

from ..dynamics.optim import OptimizerSpec
from ..dynamics.schedules import Schedule
from .limits import (INT64_MAX, MAX_DEPTH, MAX_MEMBERS, MAX_MESSAGE, MAX_RECORD_POINTS, MAX_SIZE, MAX_STEPS,
                     block_count, one_line, short_repr, value_count)
from ..ensemble import INITS
from ..errors import LazyrichError
from .keys import MEMBER_NAMES
from ..models.activations import NAMES as ACTIVATIONS
from ..observe.base import Data
from ..param.schemes import SCHEMES

OPTIMIZER_KINDS = ("gd", "sgd", "momentum", "adam", "muon", "spectral")


class SpecError(LazyrichError):
    """An invalid sweep: `problems` holds one line per problem ("key: what is wrong; the fix"); the
    message is one line: the source, the first problem and the keys of the others."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = [one_line(p) for p in problems]
        more = ""
        if len(problems) > 1:
            keys = ", ".join(p.split(": ")[0] for p in self.problems[1:])
            more = f" [{len(problems) - 1} more: {one_line(keys, 100)}]"
        head = f"{one_line(source, 120)}: {self.problems[0]}"
        super().__init__(one_line(head, MAX_MESSAGE - len(more) - 17) + more + " (nothing was run)")


class _Strict(BaseModel):
    # every float of a spec is finite: inf/nan would run and be flagged "diverged" instead of refused
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Seed = Annotated[int, Field(ge=0, le=INT64_MAX)]
Size = Annotated[int, Field(gt=0, le=MAX_SIZE)]
Steps = Annotated[int, Field(ge=0, le=MAX_STEPS)]


# ---------------------------------------------------------------- values of an axis

def _expand_values(v: Any) -> Any:
    """A list, or one of {linspace: [a, b, k]}, {logspace: [a, b, k]} (10^a..10^b), {geomspace: [a, b, k]},
    {range: [start, stop(, step)]} expanded to a list."""
    if isinstance(v, dict):
        if len(v) != 1 or next(iter(v)) not in ("linspace", "logspace", "geomspace", "range"):
            raise ValueError("give a list or one of {linspace: [a, b, k]}, {logspace: [a, b, k]}, "
                             "{geomspace: [a, b, k]}, {range: [start, stop, step]}")
        (kind, args), = v.items()
        if not isinstance(args, (list, tuple)) or not all(isinstance(a, (int, float)) and not isinstance(a, bool)
                                                          and math.isfinite(a) for a in args):
            raise ValueError(f"{kind} takes a list of finite numbers, e.g. {{{kind}: [0, 1, 5]}}")
        if kind == "range":
            if not (2 <= len(args) <= 3 and all(float(a).is_integer() for a in args)) or (len(args) == 3 and args[2] == 0):
                raise ValueError("range takes integers [start, stop] or [start, stop, step] with step ≠ 0")
            values = range(*(int(a) for a in args))  # len() is arithmetic: nothing materialized yet
            if len(values) == 0:
                raise ValueError(f"range {list(args)} is empty (reversed?); use start < stop, or a negative step")
            if len(values) > MAX_MEMBERS:
                raise ValueError(f"range {list(args)} has {len(values):.3g} values (> {MAX_MEMBERS:.0e}); use a larger step")
            return list(values)
        if len(args) != 3 or not float(args[2]).is_integer() or args[2] < 1:
            raise ValueError(f"{kind} takes [a, b, k] with an integer count k ≥ 1")
        if args[2] > MAX_MEMBERS:
            raise ValueError(f"{kind} asks for {args[2]:.3g} values (> {MAX_MEMBERS:.0e}); use a smaller count k")
        if kind == "geomspace" and (args[0] == 0 or args[1] == 0 or (args[0] < 0) != (args[1] < 0)):
            raise ValueError("geomspace takes [a, b, k] with a and b nonzero and of the same sign")
        fn = {"linspace": np.linspace, "logspace": np.logspace, "geomspace": np.geomspace}[kind]
        with np.errstate(over="ignore"):  # 10^400 becomes inf, refused by the key's type
            return [float(x) for x in fn(args[0], args[1], int(args[2]))]
    if isinstance(v, (list, tuple)):
        if len(v) == 0:
            raise ValueError("an axis needs at least one value")
        return list(v)
    raise ValueError("give a list of values, e.g. [0.1, 1.0], or {linspace: [a, b, k]}")


Values = Annotated[list[Any], BeforeValidator(_expand_values)]


def _ordered(lo: Any, hi: Any, strict: bool, kind: str) -> None:
    if lo > hi or (strict and lo == hi):
        raise ValueError(f"{kind} takes [lo, hi] with lo {'<' if strict else '≤'} hi (got [{lo}, {hi}]); swap them")


class Uniform(_Strict):
    uniform: tuple[float, float]

    @field_validator("uniform")
    @classmethod
    def _no_negative_zero(cls, v: tuple[float, float]) -> tuple[float, float]:
        return (v[0] + 0.0, v[1] + 0.0)  # numpy refuses uniform(0.0, -0.0): "high - low < 0"

    @model_validator(mode="after")
    def _order(self) -> "Uniform":
        _ordered(*self.uniform, False, "uniform")
        return self


class LogUniform(_Strict):
    loguniform: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]

    @model_validator(mode="after")
    def _order(self) -> "LogUniform":
        _ordered(*self.loguniform, False, "loguniform")
        return self


class Integers(_Strict):
    integers: tuple[Annotated[int, Field(ge=-INT64_MAX)], Annotated[int, Field(le=INT64_MAX)]]  # [low, high)

    @model_validator(mode="after")
    def _order(self) -> "Integers":
        _ordered(*self.integers, True, "integers")
        return self


class Choice(_Strict):
    choice: Annotated[list[Any], Field(min_length=1)]


def _tag(options: tuple[str, ...]) -> Any:
    """Discriminate a union of one-key mappings by that key (clear errors instead of one per branch)."""
    def tag(v: Any) -> str | None:
        if isinstance(v, BaseModel):
            return next(k for k in options if getattr(v, k, None) is not None)
        if isinstance(v, list):
            return "list" if "list" in options else None
        if isinstance(v, dict) and len(v) == 1 and next(iter(v)) in options:
            return next(iter(v))
        return None
    return tag


Dist = Annotated[Union[Annotated[Uniform, Tag("uniform")], Annotated[LogUniform, Tag("loguniform")],
                       Annotated[Integers, Tag("integers")], Annotated[Choice, Tag("choice")]],
                 Discriminator(_tag(("uniform", "loguniform", "integers", "choice")), custom_error_type="dist",
                               custom_error_message="give one of {uniform: [lo, hi]}, {loguniform: [lo, hi]}, "
                                                    "{integers: [lo, hi]}, {choice: [a, b, ...]}")]


class RandomBlock(_Strict):
    n: int = Field(gt=0, le=MAX_MEMBERS)
    seed: Seed = 0
    dists: dict[str, Dist] = Field(min_length=1)


class Axis(_Strict):
    """One block of axes: `grid` (all combinations), `zip` (equal-length lists side by side) or `random`."""

    grid: Annotated[dict[str, Values], Field(min_length=1)] | None = None  # an empty grid is refused, not one member
    zip: Annotated[dict[str, Values], Field(min_length=1)] | None = None
    random: RandomBlock | None = None

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        """A grid's product is counted before any of its values is made (10⁶ × 10⁶ never materializes)."""
        n = block_count(data)
        if n is not None and n > MAX_MEMBERS:
            raise ValueError(f"this block expands to {n:.3g} members (> {MAX_MEMBERS:.0e}); use fewer values")
        return data

    @model_validator(mode="after")
    def _one(self) -> "Axis":
        given = [k for k in ("grid", "zip", "random") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("each axes entry holds exactly one of grid:, zip:, random:")
        if self.zip is not None and len({len(v) for v in self.zip.values()}) > 1:
            raise ValueError("zip lists must have equal lengths: "
                             + ", ".join(f"{k} has {len(v)}" for k, v in self.zip.items()))
        return self

    @property
    def keys(self) -> list[str]:
        block = self.grid or self.zip or (self.random.dists if self.random else {})
        return list(block)


# ---------------------------------------------------------------- sections

class TeacherStudent(_Strict):
    """Kunin et al. Fig. 1 task (lazyrich.tasks.teacher_student)."""

    name: Literal["teacher_student"]
    d: Size = 100
    k: Size = 3
    n: Size = 1000
    n_test: Annotated[int, Field(ge=0, le=MAX_SIZE)] = 0
    seed: Seed = 0

    @property
    def dims(self) -> tuple[int, int]:
        return self.d, 1

    def load(self, seed: int, dtype: Any) -> Data:
        from ..tasks import teacher_student
        data = teacher_student(self.d, self.k, self.n, max(self.n_test, 1), seed, dtype)
        if self.n_test == 0:
            data.x_test = data.y_test = None
        return data


class WhitenedRegression(_Strict):
    """Linear regression with exactly whitened inputs (lazyrich.tasks.whitened_regression)."""

    name: Literal["whitened_regression"]
    d: Size
    c: Size = 1
    n: Size | None = None
    rank: Size | None = None
    noise: float = Field(0.0, ge=0)
    seed: Seed = 0

    @property
    def dims(self) -> tuple[int, int]:
        return self.d, self.c

    def load(self, seed: int, dtype: Any) -> Data:
        from ..tasks import whitened_regression
        return whitened_regression(self.d, self.c, self.n, seed, self.rank, self.noise, dtype)


Task = Annotated[Union[TeacherStudent, WhitenedRegression], Field(discriminator="name")]
# `task:` is one task (a mapping with a name) or several by label (for a `task` axis)
Tasks = Annotated[Union[Annotated[Task, Tag("one")], Annotated[dict[str, Task], Tag("many")]],
                  Discriminator(lambda v: "one" if not isinstance(v, dict) or "name" in v else "many")]


class ModelSpec(_Strict):
    """An MLP of `depth` weight layers, every hidden layer `width` wide (input and output from the task)."""

    width: Size
    depth: int = Field(2, ge=1, le=MAX_DEPTH)
    activation: Literal[ACTIVATIONS] = "relu"  # type: ignore[valid-type]
    bias: bool = False


class ParamSpec(_Strict):
    scheme: Literal[SCHEMES] = "sp"  # type: ignore[valid-type]
    gamma: float = Field(1.0, gt=0)
    gamma_lr: bool | None = None
    overrides: dict[str, dict[str, float]] | None = None


class InitSpec(_Strict):
    """`gaussian` (the scheme's stds × std_scale), `kunin` (scale tau, per-neuron delta),
    `lambda_balanced` / `balanced_chain` (λ = lam)."""

    kind: Literal[INITS] = "gaussian"  # type: ignore[valid-type]
    std_scale: float = Field(1.0, ge=0)
    tau: float = Field(1.0, gt=0)
    delta: float = 0.0
    lam: float = 0.0


_Beta = Annotated[float, Field(ge=0, lt=1)]  # as torch.optim.Adam: 0 ≤ β < 1


class TrainSpec(OptimizerSpec):
    """The optimizer (every field of `OptimizerSpec`) plus the base learning rate and weight decay.
    Ranges as torch.optim checks them (0 ≤ β < 1, eps > 0), every float finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    batch_size: Size | None = None
    betas: tuple[_Beta, _Beta] = (0.9, 0.999)
    ns_eps: float = Field(1e-7, gt=0)  # Newton-Schulz divides by ||G|| + eps
    lr: float = Field(0.1, gt=0)
    weight_decay: float = Field(0.0, ge=0)

    def optimizer(self, kind: str) -> OptimizerSpec:
        return OptimizerSpec(**{**self.model_dump(exclude={"lr", "weight_decay"}), "kind": kind})


class ScheduleSpec(Schedule):
    """`Schedule` with finite factors and step counts within the step limit."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    warmup: Steps = 0
    total: Annotated[int, Field(gt=0, le=MAX_STEPS)] | None = None
    step_every: Annotated[int, Field(gt=0, le=MAX_STEPS)] = 1000


class FlowSpec(_Strict):
    """Gradient flow instead of discrete steps, recorded at `times` (starting at 0)."""

    times: Values
    rtol: float = Field(1e-10, gt=0)
    atol: float = Field(1e-12, gt=0)
    method: str = "dopri8"


class RecordLog(_Strict):
    log: int = Field(20, gt=0, le=MAX_RECORD_POINTS)  # ~log points between 1 and steps, plus 0 and steps


class RecordEvery(_Strict):
    every: int = Field(gt=0, le=MAX_STEPS)


Record = Annotated[Union[Annotated[RecordLog, Tag("log")], Annotated[RecordEvery, Tag("every")],
                         Annotated[list[Steps], Tag("list")]],
                   Discriminator(_tag(("log", "every", "list")), custom_error_type="record",
                                 custom_error_message="give {log: N} (log-spaced), {every: K} or a list of steps")]


class Execution(_Strict):
    """How members are packed: at most `chunk_members` per ensemble and `memory_mb` of working memory."""

    memory_mb: float = Field(1024.0, gt=0)
    chunk_members: Size | None = None
    data_seed: Seed = 0  # minibatch order (shared by all members)


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)
    description: str = ""
    task: Tasks
    model: ModelSpec
    parametrization: ParamSpec = ParamSpec()
    init: InitSpec = InitSpec()
    optimizer: TrainSpec = TrainSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    steps: Steps | None = None
    flow: FlowSpec | None = None
    record: Record = RecordLog()
    observables: list[Union[str, dict[str, dict[str, Any]]]] = ["loss", "conserved"]  # name or {name: {option: value}}
    loss_scale: float = Field(0.5, gt=0)
    dtype: Literal["float64", "float32"] = "float64"
    seed: Seed = 0
    axes: list[Axis] = []
    derived: dict[str, str] = {}
    execution: Execution = Execution()

    @property
    def tasks(self) -> dict[str, TeacherStudent | WhitenedRegression]:
        """Tasks by label (a single task is labelled by its name)."""
        return dict(self.task) if isinstance(self.task, dict) else {self.task.name: self.task}

    def base_member(self) -> dict[str, Any]:
        """Every member key's value before the axes apply."""
        p, i, o, m = self.parametrization, self.init, self.optimizer, self.model
        return {"task": next(iter(self.tasks)), "task_seed": next(iter(self.tasks.values())).seed,
                "width": m.width, "depth": m.depth, "activation": m.activation, "scheme": p.scheme,
                "optimizer": o.kind, "gamma": p.gamma, "lr": o.lr, "weight_decay": o.weight_decay,
                "seed": self.seed, "tau": i.tau, "delta": i.delta, "lam": i.lam, "std_scale": i.std_scale}

    def observers(self) -> list[Any]:
        """Observer instances from the registry (options passed to the factory)."""
        from ..observe import REGISTRY
        out = []
        for item in self.observables:
            name, opts = (item, {}) if isinstance(item, str) else next(iter(item.items()))
            out.append(REGISTRY[name](**opts))
        return out

    def record_points(self) -> list[int] | list[float]:
        """Recorded steps (discrete) or times (flow)."""
        from ..records import linear_steps, log_steps
        if self.flow is not None:
            return [float(t) for t in self.flow.times]
        steps = int(self.steps or 0)
        if isinstance(self.record, RecordLog):
            return log_steps(steps, self.record.log)
        if isinstance(self.record, RecordEvery):
            return linear_steps(steps, self.record.every)
        return sorted({k for k in self.record if k <= steps})

    def digest(self) -> str:
        """A short hash of everything that determines the results (a resumed run must match it)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- member keys and their types

_Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Finite = Annotated[float, Field(allow_inf_nan=False)]
_Seed = Annotated[int, Field(ge=0, le=INT64_MAX, strict=True)]
MEMBER_KEYS: dict[str, Any] = {
    "task": str, "task_seed": _Seed, "width": Annotated[int, Field(gt=0, le=MAX_SIZE, strict=True)],
    "depth": Annotated[int, Field(ge=1, le=MAX_DEPTH, strict=True)], "activation": Literal[ACTIVATIONS],
    "scheme": Literal[SCHEMES], "optimizer": Literal[OPTIMIZER_KINDS], "gamma": _Pos, "lr": _Pos,
    "weight_decay": _NonNeg, "seed": _Seed, "tau": _Pos, "delta": _Finite, "lam": _Finite, "std_scale": _NonNeg,
}
assert tuple(MEMBER_KEYS) == MEMBER_NAMES, "sweep.keys.MEMBER_NAMES must list MEMBER_KEYS in order"
NUMERIC_KEYS = ("task_seed", "width", "depth", "gamma", "lr", "weight_decay", "seed", "tau", "delta", "lam", "std_scale")
_ADAPTERS = {k: TypeAdapter(t) for k, t in MEMBER_KEYS.items()}


def check_value(key: str, value: Any) -> Any:
    """`value` as the type of member key `key` (raises pydantic's ValidationError)."""
    return _ADAPTERS[key].validate_python(value)

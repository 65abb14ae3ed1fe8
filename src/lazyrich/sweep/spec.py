"""A sweep, described once: task, model, parametrization, init, optimizer, schedule, steps, the
recording schedule, observables and the axes to sweep. The same object comes from YAML
(`load_spec`) or Python (`from_dict` / `SweepSpec(...)`), and is validated before anything runs:
every problem becomes one line naming the key and the fix (`SpecError`).

Validation (one line per problem) lives in `validate.py`. A *member* is one configuration: a value for every key of `MEMBER_KEYS`. Its base values come
from the sections below; the axes override them (grid = product, zip = side by side, random = n
draws); `derived` keys are computed last from the others (e.g. ``lr: "5e-3 / tau**2"``).
"""
from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

from ..dynamics.optim import OptimizerSpec
from ..dynamics.schedules import Schedule
from ..ensemble import INITS
from ..errors import LazyrichError
from ..models.activations import NAMES as ACTIVATIONS
from ..observe.base import Data
from ..param.schemes import SCHEMES

OPTIMIZER_KINDS = ("gd", "sgd", "momentum", "adam", "muon", "spectral")


class SpecError(LazyrichError):
    """An invalid sweep: `problems` holds one line per problem ("key: what is wrong; the fix")."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        head = f"{len(problems)} problem{'s' * (len(problems) > 1)} in {source} (nothing was run):"
        super().__init__("\n".join([head, *[f"  {p}" for p in problems]]))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- values of an axis

def _expand_values(v: Any) -> Any:
    """A list, or one of {linspace: [a, b, k]}, {logspace: [a, b, k]} (10^a..10^b), {geomspace: [a, b, k]},
    {range: [start, stop(, step)]} expanded to a list."""
    if isinstance(v, dict):
        if len(v) != 1 or next(iter(v)) not in ("linspace", "logspace", "geomspace", "range"):
            raise ValueError("give a list or one of {linspace: [a, b, k]}, {logspace: [a, b, k]}, "
                             "{geomspace: [a, b, k]}, {range: [start, stop, step]}")
        (kind, args), = v.items()
        if not isinstance(args, (list, tuple)) or not all(isinstance(a, (int, float)) for a in args):
            raise ValueError(f"{kind} takes a list of numbers, e.g. {{{kind}: [0, 1, 5]}}")
        if kind == "range":
            if not (2 <= len(args) <= 3 and all(float(a).is_integer() for a in args)):
                raise ValueError("range takes integers [start, stop] or [start, stop, step]")
            return list(range(*(int(a) for a in args)))
        if len(args) != 3 or not float(args[2]).is_integer() or args[2] < 1:
            raise ValueError(f"{kind} takes [a, b, k] with an integer count k ≥ 1")
        fn = {"linspace": np.linspace, "logspace": np.logspace, "geomspace": np.geomspace}[kind]
        return [float(x) for x in fn(args[0], args[1], int(args[2]))]
    if isinstance(v, (list, tuple)):
        if len(v) == 0:
            raise ValueError("an axis needs at least one value")
        return list(v)
    raise ValueError("give a list of values, e.g. [0.1, 1.0], or {linspace: [a, b, k]}")


Values = Annotated[list[Any], BeforeValidator(_expand_values)]


class Uniform(_Strict):
    uniform: tuple[float, float]


class LogUniform(_Strict):
    loguniform: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]


class Integers(_Strict):
    integers: tuple[int, int]  # [low, high)


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
    n: int = Field(gt=0)
    seed: int = Field(0, ge=0)
    dists: dict[str, Dist] = Field(min_length=1)


class Axis(_Strict):
    """One block of axes: `grid` (all combinations), `zip` (equal-length lists side by side) or `random`."""

    grid: dict[str, Values] | None = None
    zip: dict[str, Values] | None = None
    random: RandomBlock | None = None

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
    d: int = Field(100, gt=0)
    k: int = Field(3, gt=0)
    n: int = Field(1000, gt=0)
    n_test: int = Field(0, ge=0)
    seed: int = Field(0, ge=0)

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
    d: int = Field(gt=0)
    c: int = Field(1, gt=0)
    n: int | None = Field(None, gt=0)
    rank: int | None = Field(None, gt=0)
    noise: float = Field(0.0, ge=0)
    seed: int = Field(0, ge=0)

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

    width: int = Field(gt=0)
    depth: int = Field(2, ge=1)
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


class TrainSpec(OptimizerSpec):
    """The optimizer (every field of `OptimizerSpec`) plus the base learning rate and weight decay."""

    lr: float = Field(0.1, gt=0)
    weight_decay: float = Field(0.0, ge=0)

    def optimizer(self, kind: str) -> OptimizerSpec:
        return OptimizerSpec(**{**self.model_dump(exclude={"lr", "weight_decay"}), "kind": kind})


class FlowSpec(_Strict):
    """Gradient flow instead of discrete steps, recorded at `times` (starting at 0)."""

    times: Values
    rtol: float = Field(1e-10, gt=0)
    atol: float = Field(1e-12, gt=0)
    method: str = "dopri8"


class RecordLog(_Strict):
    log: int = Field(20, gt=0)  # ~log points between 1 and steps, plus 0 and steps


class RecordEvery(_Strict):
    every: int = Field(gt=0)


Record = Annotated[Union[Annotated[RecordLog, Tag("log")], Annotated[RecordEvery, Tag("every")],
                         Annotated[list[Annotated[int, Field(ge=0)]], Tag("list")]],
                   Discriminator(_tag(("log", "every", "list")), custom_error_type="record",
                                 custom_error_message="give {log: N} (log-spaced), {every: K} or a list of steps")]


class Execution(_Strict):
    """How members are packed: at most `chunk_members` per ensemble and `memory_mb` of working memory."""

    memory_mb: float = Field(1024.0, gt=0)
    chunk_members: int | None = Field(None, gt=0)
    data_seed: int = Field(0, ge=0)  # minibatch order (shared by all members)


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)
    description: str = ""
    task: Tasks
    model: ModelSpec
    parametrization: ParamSpec = ParamSpec()
    init: InitSpec = InitSpec()
    optimizer: TrainSpec = TrainSpec()
    schedule: Schedule = Schedule()
    steps: int | None = Field(None, ge=0)
    flow: FlowSpec | None = None
    record: Record = RecordLog()
    observables: list[Union[str, dict[str, dict[str, Any]]]] = ["loss", "conserved"]  # name or {name: {option: value}}
    loss_scale: float = Field(0.5, gt=0)
    dtype: Literal["float64", "float32"] = "float64"
    seed: int = Field(0, ge=0)
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
_Seed = Annotated[int, Field(ge=0, strict=True)]
MEMBER_KEYS: dict[str, Any] = {
    "task": str, "task_seed": _Seed, "width": Annotated[int, Field(gt=0, strict=True)],
    "depth": Annotated[int, Field(ge=1, strict=True)], "activation": Literal[ACTIVATIONS],
    "scheme": Literal[SCHEMES], "optimizer": Literal[OPTIMIZER_KINDS], "gamma": _Pos, "lr": _Pos,
    "weight_decay": _NonNeg, "seed": _Seed, "tau": _Pos, "delta": _Finite, "lam": _Finite, "std_scale": _NonNeg,
}
NUMERIC_KEYS = ("task_seed", "width", "depth", "gamma", "lr", "weight_decay", "seed", "tau", "delta", "lam", "std_scale")
_ADAPTERS = {k: TypeAdapter(t) for k, t in MEMBER_KEYS.items()}


def check_value(key: str, value: Any) -> Any:
    """`value` as the type of member key `key` (raises pydantic's ValidationError)."""
    return _ADAPTERS[key].validate_python(value)

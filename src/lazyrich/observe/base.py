"""The observer interface: a named observable computed from a `State`, batched over members.

An observer returns ``Observation(observable, layer, value)`` items with `value` of shape [E] or
[E, K] (K indexed 0..K-1 in the records table). Register new ones with `register`; sweeps and the
CLI look them up by name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple, Protocol

from torch import Tensor

from ..ensemble import Ensemble
from ..models.mlp import Params


@dataclass
class Data:
    """Training (and optional test) data; x: [n, d] shared by members or [E, n, d] per member."""

    x: Tensor
    y: Tensor
    x_test: Tensor | None = None
    y_test: Tensor | None = None


@dataclass
class State:
    """What an observer sees at a recorded step: the ensemble now, its init, the data and time."""

    ens: Ensemble
    params0: Params
    data: Data
    step: int
    time: Tensor  # [E]
    cache: dict = field(default_factory=dict)  # per-record scratch shared by observers (e.g. K0 reuse)
    memory: dict = field(default_factory=dict)  # persists across records of one run (e.g. init kernel)

    @property
    def params(self) -> Params:
        return self.ens.params


class Observation(NamedTuple):
    observable: str
    layer: str
    value: Tensor


class Observer(Protocol):
    name: str

    def __call__(self, state: State) -> Iterable[Observation]: ...


REGISTRY: dict[str, Callable[..., Observer]] = {}


def register(name: str) -> Callable:
    def wrap(factory: Callable[..., Observer]) -> Callable[..., Observer]:
        REGISTRY[name] = factory
        return factory
    return wrap


def make(names: Iterable[str | Observer]) -> list[Observer]:
    """Observers from names (or pass instances through)."""
    from ..errors import require
    out = []
    for n in names:
        if isinstance(n, str) and n not in REGISTRY:
            import lazyrich.theory.observables  # noqa: F401  (registers the theory's observers; lazyrich.theory loads lazily)
        if isinstance(n, str):
            require(n in REGISTRY, f"unknown observable {n!r}: choose from {', '.join(sorted(REGISTRY))}")
            out.append(REGISTRY[n]())
        else:
            out.append(n)
    return out

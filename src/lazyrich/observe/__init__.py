"""Measure it: named observables batched over ensemble members."""
from . import core
from .base import REGISTRY, Data, Observation, Observer, State, make, register

__all__ = ["Data", "State", "Observation", "Observer", "register", "make", "REGISTRY", "core"]

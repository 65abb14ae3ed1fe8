"""Measure it: named observables batched over ensemble members (importing this package registers them)."""
from . import balance, core, distance, fact, kernel, linearized, sharpness, spectral
from .base import REGISTRY, Data, Observation, Observer, State, make, register
from .kernel import empirical_ntk, ensemble_ntk, kernel_distance, kernel_target_alignment, mlp_ntk

__all__ = ["Data", "State", "Observation", "Observer", "register", "make", "REGISTRY", "core", "kernel",
           "distance", "spectral", "balance", "sharpness", "fact", "linearized",
           "empirical_ntk", "ensemble_ntk", "mlp_ntk", "kernel_distance", "kernel_target_alignment"]

"""Measure it: named observables batched over ensemble members (importing this package registers them)."""
from . import balance, core, distance, escape, fact, kernel, linearized, sharpness, spectral
from .base import REGISTRY, Data, Observation, Observer, State, make, register
from .kernel import empirical_ntk, ensemble_ntk, kernel_distance, kernel_target_alignment, mlp_ntk

__all__ = ["Data", "State", "Observation", "Observer", "register", "make", "REGISTRY", "core", "kernel",
           "distance", "spectral", "balance", "sharpness", "fact", "linearized",
           "empirical_ntk", "ensemble_ntk", "mlp_ntk", "kernel_distance", "kernel_target_alignment"]

# the exact theory's observers (linear_map, single_neuron, one_d, ntk_ratio) register here too, so a sweep
# or `make` finds them by name whether or not lazyrich.theory was imported (it loads lazily)
from ..theory import observables as _theory_observables  # noqa: E402,F401

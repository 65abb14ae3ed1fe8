"""Ensemble-native model families: pure functions of (params, x)."""
from .activations import HOMOGENEOUS, activation, derivative
from .mlp import MLP, Params, ensemble_size, forward, preactivations, select

__all__ = ["MLP", "Params", "forward", "preactivations", "ensemble_size", "select", "activation", "derivative", "HOMOGENEOUS"]

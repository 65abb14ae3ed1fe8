"""Dynamics on ensembles: discrete optimizers, schedules, gradient flow."""
from .flow import flow
from .optim import OptimizerSpec, orthogonalize
from .schedules import Schedule
from .train import Run, loss_and_grads, train

__all__ = ["train", "flow", "Run", "OptimizerSpec", "Schedule", "orthogonalize", "loss_and_grads"]

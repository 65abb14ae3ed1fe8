"""Users' own PyTorch models: parametrize any nn.Module (checkpoint-safe), optimizer param groups, the
effective per-tensor table, balance-controlled init of MLP chains, coord check and a regime monitor.
Guide: docs/usermodels.md."""
from typing import TYPE_CHECKING

from .._lazy import attach

# names load on first use (PEP 562) so `lazyrich coord-check --help` needs no torch
__getattr__, __dir__, _ = attach(__name__, {
    "balance": ["balance", "balance_chain", "neuron_delta"],
    "coord": ["CoordCheck", "coord_check", "ladder_plans", "mlp", "resmlp", "ResMLP"],
    "groups": ["inspect", "param_groups"],
    "monitor": ["Bands", "RegimeMonitor", "Verdict", "verdict_from"],
    "parametrize": ["Plan", "TensorRow", "parametrize", "plan", "plan_of", "restore", "rule"]})

__all__ = ["parametrize", "param_groups", "inspect", "plan", "plan_of", "restore", "rule", "Plan", "TensorRow",
           "balance", "balance_chain", "neuron_delta", "coord_check", "CoordCheck", "ladder_plans", "mlp", "resmlp", "ResMLP",
           "RegimeMonitor", "Verdict", "Bands", "verdict_from"]

if TYPE_CHECKING:
    from .balance import balance, balance_chain, neuron_delta
    from .coord import CoordCheck, ResMLP, coord_check, ladder_plans, mlp, resmlp
    from .groups import inspect, param_groups
    from .monitor import Bands, RegimeMonitor, Verdict, verdict_from
    from .parametrize import Plan, TensorRow, parametrize, plan, plan_of, restore, rule

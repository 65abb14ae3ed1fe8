"""lazyrich: set, measure and predict where a network sits between lazy and rich learning.

The public names below load on first use (PEP 562), so `import lazyrich` and the command line stay
fast; `lazyrich.train` imports torch and the dynamics the first time it is touched.
"""
from typing import TYPE_CHECKING

from ._lazy import attach

__version__ = "0.1.0"

__getattr__, __dir__, _names = attach(__name__, {
    "conventions": ["conserved", "mse"],
    "dynamics": ["OptimizerSpec", "Run", "Schedule", "flow", "train"],
    "ensemble": ["Ensemble", "build"],
    "errors": ["LazyrichError"],
    "models": ["MLP", "forward"],
    "observe": ["Data"],
    "param": ["init", "layer_table"],
    "observe.kernel": ["empirical_ntk", "kernel_distance"],
    "records": ["log_steps"],
    "usermodels": ["inspect", "param_groups", "parametrize"],
})
__all__ = ["MLP", "forward", "Ensemble", "build", "Data", "train", "flow", "Run", "OptimizerSpec", "Schedule",
           "layer_table", "init", "conserved", "mse", "log_steps", "LazyrichError", "__version__",
           "kernel_distance", "empirical_ntk", "parametrize", "param_groups", "inspect"]
assert set(_names) == set(__all__) - {"__version__"}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names above load on first use
    from .conventions import conserved, mse
    from .dynamics import OptimizerSpec, Run, Schedule, flow, train
    from .ensemble import Ensemble, build
    from .errors import LazyrichError
    from .models import MLP, forward
    from .observe import Data
    from .observe.kernel import empirical_ntk, kernel_distance
    from .param import init, layer_table
    from .records import log_steps
    from .usermodels import inspect, param_groups, parametrize

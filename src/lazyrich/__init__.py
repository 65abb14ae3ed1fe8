"""lazyrich: set, measure and predict where a network sits between lazy and rich learning."""
from .conventions import conserved, mse
from .dynamics import OptimizerSpec, Run, Schedule, flow, train
from .ensemble import Ensemble, build
from .errors import LazyrichError
from .models import MLP, forward
from .observe import Data
from .param import init, layer_table
from .observe.kernel import empirical_ntk, kernel_distance
from .records import log_steps
from .usermodels import inspect, param_groups, parametrize

__version__ = "0.1.0"
__all__ = ["MLP", "forward", "Ensemble", "build", "Data", "train", "flow", "Run", "OptimizerSpec", "Schedule",
           "layer_table", "init", "conserved", "mse", "log_steps", "LazyrichError", "__version__",
           "kernel_distance", "empirical_ntk", "parametrize", "param_groups", "inspect"]

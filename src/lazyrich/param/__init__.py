"""Set the regime: parametrizations (scheme × optimizer tables, γ dial, depth schemes) and balance-controlled inits."""
from . import depth, init
from .depth import DEPTH_SCHEMES, depth_table
from .schemes import OPTIMIZERS, SCHEMES, LayerRow, layer_table, table_dicts

__all__ = ["LayerRow", "layer_table", "table_dicts", "SCHEMES", "OPTIMIZERS", "DEPTH_SCHEMES", "depth_table", "init", "depth"]

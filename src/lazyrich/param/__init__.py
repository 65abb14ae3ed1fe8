"""Set the regime: parametrizations (scheme × optimizer tables, γ dial) and balance-controlled inits."""
from . import init
from .schemes import OPTIMIZERS, SCHEMES, LayerRow, layer_table, table_dicts

__all__ = ["LayerRow", "layer_table", "table_dicts", "SCHEMES", "OPTIMIZERS", "init"]

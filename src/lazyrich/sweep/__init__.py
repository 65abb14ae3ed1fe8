"""Sweeps at scale: a spec (YAML or Python) → members grouped into ensembles and chunked → run
locally or on a Dask cluster → every chunk stored atomically in an embedded DuckDB file.

    from lazyrich.sweep import load_spec, run_sweep, Store
    out = run_sweep(load_spec("examples/quick.yaml"), "runs.duckdb")
    records = Store("runs.duckdb").records(out.run_id)
"""
from typing import TYPE_CHECKING

from .._lazy import attach

# names load on first use (PEP 562) so `lazyrich sweep --help` needs no torch, pandas or duckdb
__getattr__, __dir__, _ = attach(__name__, {
    "executor": ["ChunkResult", "ChunkTask", "execute_chunk"],
    "planner": ["Chunk", "Plan", "expand", "plan"],
    "run": ["SweepOutcome", "run_sweep"],
    "search": ["SearchOutcome", "run_search", "search_trials"],
    "search_spec": ["Search", "SearchSpec", "load_search", "search_from_dict"],
    "spec": ["SpecError", "SweepSpec"],
    "validate": ["from_dict", "load_spec"],
    "store": ["DEFAULT_STORE", "Store", "StoreBusy", "StoreDamaged"]})

__all__ = ["SweepSpec", "SpecError", "load_spec", "from_dict", "expand", "plan", "Plan", "Chunk", "ChunkTask",
           "ChunkResult", "execute_chunk", "run_sweep", "SweepOutcome", "run_search", "SearchOutcome", "search_trials",
           "Search", "SearchSpec", "load_search", "search_from_dict", "Store", "StoreBusy", "StoreDamaged",
           "DEFAULT_STORE"]

if TYPE_CHECKING:
    from .executor import ChunkResult, ChunkTask, execute_chunk
    from .planner import Chunk, Plan, expand, plan
    from .run import SweepOutcome, run_sweep
    from .search import SearchOutcome, run_search, search_trials
    from .search_spec import Search, SearchSpec, load_search, search_from_dict
    from .spec import SpecError, SweepSpec
    from .store import DEFAULT_STORE, Store, StoreBusy, StoreDamaged
    from .validate import from_dict, load_spec

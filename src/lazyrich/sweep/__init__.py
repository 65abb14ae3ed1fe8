"""Sweeps at scale: a spec (YAML or Python) → members grouped into ensembles and chunked → run
locally or on a Dask cluster → every chunk stored atomically in an embedded DuckDB file.

    from lazyrich.sweep import load_spec, run_sweep, Store
    out = run_sweep(load_spec("examples/quick.yaml"), "runs.duckdb")
    records = Store("runs.duckdb").records(out.run_id)
"""
from .executor import ChunkResult, ChunkTask, execute_chunk
from .planner import Chunk, Plan, expand, plan
from .run import SweepOutcome, run_sweep
from .spec import SpecError, SweepSpec
from .validate import from_dict, load_spec
from .store import DEFAULT_STORE, Store, StoreBusy

__all__ = ["SweepSpec", "SpecError", "load_spec", "from_dict", "expand", "plan", "Plan", "Chunk", "ChunkTask",
           "ChunkResult", "execute_chunk", "run_sweep", "SweepOutcome", "Store", "StoreBusy", "DEFAULT_STORE"]

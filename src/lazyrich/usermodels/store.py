"""Write a regime monitor's records to the lazyrich DuckDB store, as a run with one member.

Uses `Store.create_run`, `write_chunks` (items: chunk, members, records, wall_s, worker, code version)
and `finish` of `lazyrich.sweep.store`; keep in step with them."""
from __future__ import annotations

import platform
import socket
from typing import Any

import pandas as pd
import torch


def write_monitor_run(path: str, name: str, records: pd.DataFrame, verdict: Any) -> str:
    """One run (status done, config holding the verdict) with member 0 and the monitor's records."""
    from .. import __version__
    from ..sweep.spec import MEMBER_KEYS
    from ..sweep.store import MEMBER_COLUMNS, Store

    store = Store(path)
    config = {"kind": "regime_monitor", "verdict": verdict.regime, "reason": verdict.reason,
              "kernel_distance": verdict.kernel_distance, "weight_change": verdict.weight_change}
    run_id = store.create_run(name, f"monitor-{name}", config, __version__, "cpu" if not torch.cuda.is_available() else "cuda",
                              "monitor", torch.get_num_threads(), 1, 1, socket.gethostname() or platform.node())
    members = pd.DataFrame([{**{k: None for k in MEMBER_KEYS}, "member": 0, "chunk": 0, "status": "ok",
                             "diverged_step": -1, "digest": None}])[MEMBER_COLUMNS]
    store.write_chunks(run_id, [(0, members, records, 0.0, "monitor", __version__)])
    store.finish(run_id, "done")
    return run_id

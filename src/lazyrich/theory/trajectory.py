"""Predictions in the records' language: a `Trajectory` holds observables as functions of time under
the names the observers use, so a run and its prediction join without glue (`overlay`).

Layer labels follow the observers: ``""`` for network-level quantities (loss, beta, kernel_distance),
``"W1"``/``"W2"`` for one layer, ``"W1-W2"`` for a consecutive pair (delta_k, conserved_norm).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Union

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..errors import LazyrichError, require

Key = tuple[str, str]  # (observable, layer)


@dataclass(frozen=True)
class Trajectory:
    """Predicted observables on a time grid: ``values[(observable, layer)]`` is [T] or [T, K]."""

    time: np.ndarray
    values: dict[Key, np.ndarray]

    def __getitem__(self, key: str | Key) -> np.ndarray:
        if isinstance(key, str):
            hits = [k for k in self.values if k[0] == key]
            require(len(hits) == 1, f"observable {key!r} is {'ambiguous' if hits else 'not predicted'} here; "
                                    f"ask for one of {sorted(self.values)}")
            key = hits[0]
        require(key in self.values, f"{key} is not predicted here; ask for one of {sorted(self.values)}")
        return self.values[key]

    @property
    def observables(self) -> list[Key]:
        return list(self.values)

    def records(self, member: int | None = None) -> pd.DataFrame:
        """Tidy table (member?, step, time, observable, layer, index, value) like `Run.records()`;
        `step` is the index of the time point."""
        parts = []
        T = len(self.time)
        for (obs, layer), v in self.values.items():
            v2 = np.asarray(v, dtype=float).reshape(T, -1)
            K = v2.shape[1]
            parts.append(pd.DataFrame({"step": np.repeat(np.arange(T), K), "time": np.repeat(self.time, K),
                                       "observable": obs, "layer": layer, "index": np.tile(np.arange(K), T),
                                       "value": v2.reshape(-1)}))
        out = pd.concat(parts, ignore_index=True)
        if member is not None:
            out.insert(0, "member", member)
        return out


def trajectory(time: ArrayLike, layers: Mapping[str, str] | None = None, **observables: ArrayLike) -> Trajectory:
    """Build a `Trajectory`; `layers` maps an observable to its layer label (default ``""``)."""
    t = np.asarray(time, dtype=float).reshape(-1)
    layers = layers or {}
    vals = {}
    for name, v in observables.items():
        arr = np.asarray(v, dtype=float)
        if arr.ndim == 0:
            arr = np.full(len(t), float(arr))
        require(arr.shape[0] == len(t), f"{name} has {arr.shape[0]} time points, expected {len(t)}")
        vals[(name, layers.get(name, ""))] = arr
    return Trajectory(t, vals)


def merge(*parts: Trajectory) -> Trajectory:
    """One trajectory from several on the same time grid."""
    t = parts[0].time
    for p in parts[1:]:
        require(p.time.shape == t.shape and np.allclose(p.time, t), "merge needs trajectories on one time grid")
    vals: dict[Key, np.ndarray] = {}
    for p in parts:
        vals.update(p.values)
    return Trajectory(t, vals)


Prediction = Union[Trajectory, pd.DataFrame, Callable[[np.ndarray], Trajectory]]


def _time_key(t: pd.Series | np.ndarray) -> np.ndarray:
    # GD times are float sums of learning rates: match them to ~1e-9 relative, not bitwise
    return np.round(np.asarray(t, dtype=float), 9)


def overlay(records: pd.DataFrame, prediction: Prediction | Mapping[int, Prediction],
            observables: list[str] | None = None) -> pd.DataFrame:
    """Join a run's records with a prediction: one row per recorded value that the prediction also
    covers, with columns ``value`` (simulated), ``predicted`` and ``error`` (= value − predicted).

    `prediction` is a `Trajectory`, a tidy DataFrame, a function of the time array returning a
    `Trajectory` (evaluated at the recorded times), or a dict {member: any of these} for ensembles.
    """
    need = {"time", "observable", "layer", "index", "value"}
    require(need <= set(records.columns), f"records lack columns {sorted(need - set(records.columns))}: pass Run.records()")
    recs = records if observables is None else records[records.observable.isin(observables)]
    if isinstance(prediction, Mapping):
        require("member" in recs.columns, "a per-member prediction needs records with a member column")
        parts = [overlay(recs[recs.member == m], p, None) for m, p in prediction.items()]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if callable(prediction) and not isinstance(prediction, (Trajectory, pd.DataFrame)):
        prediction = prediction(np.unique(recs["time"].to_numpy(dtype=float)))
    pred = prediction.records() if isinstance(prediction, Trajectory) else prediction
    pred = pred[["time", "observable", "layer", "index", "value"]].rename(columns={"value": "predicted"})
    left = recs.assign(_t=_time_key(recs["time"]), observable=recs["observable"].astype(str), layer=recs["layer"].astype(str))
    right = pred.assign(_t=_time_key(pred["time"]), observable=pred["observable"].astype(str),
                        layer=pred["layer"].astype(str)).drop(columns="time")
    out = left.merge(right, on=["_t", "observable", "layer", "index"], how="inner").drop(columns="_t")
    if out.empty:
        raise LazyrichError("the prediction shares no (time, observable, layer, index) with the records: "
                            "predict at the recorded times and use the observers' names")
    out["error"] = out["value"] - out["predicted"]
    return out

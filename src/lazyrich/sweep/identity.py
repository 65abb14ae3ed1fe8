"""Member identity: a digest of everything that determines a member's numbers.

A member's digest hashes its resolved configuration — every member key, plus the whole spec except
the fields known not to change its numbers (name, description, the axes and derived expressions
that produced the member keys, the chunking budget), plus the device, the torch thread count and
`RESULTS_VERSION`. Keys are sorted and numbers canonical (1 and 1.0 are one value, -0.0 is 0.0),
so a spec that only reorders keys gives the same digests. A field added to the spec later is part
of the identity unless it is listed in `_IGNORED`: the safe default.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    import pandas as pd

    from .planner import Plan
    from .spec import SweepSpec

# Bump when a change of lazyrich changes stored numbers on purpose: resumes of older runs are then
# refused instead of mixing members computed by both versions.
# 2: deep and biased nets moved from the batched kernel to the fused pass, and gradient flow evaluates its
#    right-hand side by the fused pass (issue 22): last bits changed.
RESULTS_VERSION = 2

# spec fields that do not change any member's numbers
_IGNORED = ("name", "description", "axes", "derived", "record", "execution.chunk_members", "execution.memory_mb")
# member keys and the spec field that holds their base value (the member's own value replaces it)
_BASE_FIELDS = {"width": "model.width", "depth": "model.depth", "activation": "model.activation",
                "scheme": "parametrization.scheme", "gamma": "parametrization.gamma", "optimizer": "optimizer.kind",
                "lr": "optimizer.lr", "weight_decay": "optimizer.weight_decay", "seed": "seed", "tau": "init.tau",
                "delta": "init.delta", "lam": "init.lam", "std_scale": "init.std_scale"}


def canonical(value: Any) -> Any:
    """JSON-ready value with one spelling per number: integral floats become ints, -0.0 becomes 0."""
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
            return int(value)
        return repr(value) if not math.isfinite(value) else value
    return str(value)


def _drop(tree: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.get(p) or {}
    if isinstance(tree, dict):
        tree.pop(leaf, None)


def context(spec: "SweepSpec", task: str, device: str, threads: int) -> dict[str, Any]:
    """What a member of task label `task` shares with the rest of its run: the spec without the
    ignored fields and base values, the member's own task, the recorded points, device, threads."""
    tree = spec.model_dump(mode="json")
    for field in (*_IGNORED, *_BASE_FIELDS.values()):
        _drop(tree, field)
    own = dict(spec.tasks[task].model_dump(mode="json"))
    own.pop("seed", None)  # the member's task_seed replaces it
    tree["task"] = own
    tree["record_points"] = list(spec.record_points())
    return {"spec": tree, "device": device, "threads": int(threads), "results_version": RESULTS_VERSION}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def member_digests(plan: "Plan", device: str, threads: int) -> "pd.Series":
    """One digest per member of the plan (index = member id)."""
    return digests_of(plan.spec, plan.members, device, threads)


def digests_of(spec: "SweepSpec", members: "pd.DataFrame", device: str, threads: int) -> "pd.Series":
    """Digests of member rows (every member key a column; index = member id) of a run of `spec`."""
    import pandas as pd

    from .spec import MEMBER_KEYS

    prefix = {label: json.dumps(canonical(context(spec, label, device, threads)), sort_keys=True)
              for label in spec.tasks}
    # the member as json.dumps(canonical(row), sort_keys=True) would write it, built column by column
    # from each column's distinct values (sweeps repeat values): 10⁵ members in well under a second
    parts = []
    for key in sorted(MEMBER_KEYS):
        values = members[key].tolist()
        enc = {}
        for v in values:
            if v not in enc:
                enc[v] = f'"{key}": {json.dumps(canonical(v))}'
        parts.append([enc[v] if v in enc else f'"{key}": {json.dumps(canonical(v))}' for v in values])
    tasks = members["task"].tolist()
    out = [_hash(prefix[task] + "|{" + ", ".join(row) + "}") for task, row in zip(tasks, zip(*parts))]
    return pd.Series(out, index=members.index, name="digest")


def set_digest(digests: Iterable[str]) -> str:
    """Digest of a set of members (a chunk, a whole run): independent of their order."""
    return _hash(",".join(sorted(digests)))


def chunk_digests(plan: "Plan", digests: "pd.Series") -> dict[int, str]:
    return {c.index: set_digest(digests.loc[list(c.members)]) for c in plan.chunks}


def run_view(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a stored run config that a resume must match (for naming the first difference)."""
    spec = json.loads(json.dumps(config.get("spec", {})))
    for field in ("name", "description", "execution.chunk_members", "execution.memory_mb"):
        _drop(spec, field)
    return {**spec, "device": config.get("device"), "threads": config.get("threads"),
            "results_version": config.get("results_version", "(none: stored before member digests)")}


def first_difference(old: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """(dotted key, old value, new value) of the first place two JSON trees differ; None if equal.
    Mappings are compared by key (their order does not matter), lists by position."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in new or key not in old:
                return (f"{path}.{key}" if path else str(key), old.get(key, "(absent)"), new.get(key, "(absent)"))
            found = first_difference(old[key], new[key], f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list):
        for i, (a, b) in enumerate(zip(old, new)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        if len(old) != len(new):
            return (f"{path} (length)", len(old), len(new))
        return None
    return None if canonical(old) == canonical(new) else (path or "(top level)", old, new)


def shown(value: Any, limit: int = 40) -> str:
    """A value for a one-line message, cut to `limit` characters."""
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""The names of a member's configuration keys and their storage kinds: no torch, no pandas, so the
store (and `lazyrich runs list`) can be opened without loading the engine. `spec.MEMBER_KEYS` holds
their types and is checked against these names."""
from __future__ import annotations

MEMBER_NAMES = ("task", "task_seed", "width", "depth", "activation", "scheme", "optimizer", "gamma", "lr",
                "weight_decay", "seed", "tau", "delta", "lam", "std_scale")
INT_KEYS = ("task_seed", "width", "depth", "seed")
STR_KEYS = ("task", "activation", "scheme", "optimizer")

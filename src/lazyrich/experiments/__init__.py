"""Reproductions of the source papers' headline results, one command each (`lazyrich reproduce NAME`).

Every module in this package that defines a `@reproduction` is imported here, so adding a
reproduction is adding a module (docs/reproductions.md describes the pattern).
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from .._lazy import attach

_FRAMEWORK = {"base", "runner", "cli", "common", "catalog"}


def _load_all() -> None:
    """Import every reproduction module (they register themselves); runs before the first name is used,
    so `lazyrich reproduce --help` and `--list` (lazyrich.experiments.catalog) need no torch."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in _FRAMEWORK and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


__getattr__, __dir__, _ = attach(__name__, {
    "base": ["REGISTRY", "Claim", "Context", "Experiment", "control", "get", "reproduction"],
    "runner": ["Outcome", "claims_document", "code_version", "reproduce"]}, before=_load_all)

__all__ = ["REGISTRY", "Claim", "Context", "Experiment", "Outcome", "control", "get", "reproduction", "reproduce",
           "claims_document", "code_version"]

if TYPE_CHECKING:
    from .base import REGISTRY, Claim, Context, Experiment, control, get, reproduction
    from .runner import Outcome, claims_document, code_version, reproduce

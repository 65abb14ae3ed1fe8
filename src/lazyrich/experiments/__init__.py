"""Reproductions of the source papers' headline results, one command each (`lazyrich reproduce NAME`).

Every module in this package that defines a `@reproduction` is imported here, so adding a
reproduction is adding a module (docs/reproductions.md describes the pattern).
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import REGISTRY, Claim, Context, Experiment, control, get, reproduction
from .runner import Outcome, claims_document, code_version, reproduce

_FRAMEWORK = {"base", "runner", "cli", "common"}
for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in _FRAMEWORK and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["REGISTRY", "Claim", "Context", "Experiment", "Outcome", "control", "get", "reproduction", "reproduce",
           "claims_document", "code_version"]

"""Shared fixtures: run each reproduction once per test session at quick size (module-scoped outputs)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def quick_outcomes(tmp_path_factory: pytest.TempPathFactory):
    """name -> Outcome of `reproduce(name, quick=True)`, computed on first use."""
    from lazyrich.experiments import reproduce

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = reproduce(name, quick=True, out=Path(tmp_path_factory.mktemp(name)))
        return cache[name]
    return get

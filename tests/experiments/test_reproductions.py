"""Every reproduction of this room at --quick size: exit code 0, claims.json schema, a negative control
that passed (i.e. its switched pipeline failed), figures as PNG and PDF, and a self-contained report."""
from __future__ import annotations

import pytest

from .quick_checks import check_quick_outcome

NAMES = ["kunin-fig1", "spectral-width-scaling", "balance-weight-decay", "balance-warmup", "balance-deep"]


@pytest.mark.quick_repro
@pytest.mark.parametrize("name", NAMES)
def test_quick_reproduction(name, quick_outcomes):
    check_quick_outcome(quick_outcomes(name))

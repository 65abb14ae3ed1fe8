"""saddle-escape at quick size (verdicts, schema, figures) and its helpers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyrich.experiments import saddle_escape as sx

from .quick_checks import check_quick_outcome


@pytest.mark.quick_repro
def test_quick_run_passes_with_schema(quick_outcomes):
    torch.set_num_threads(1)
    check_quick_outcome(quick_outcomes("saddle-escape"))


def test_teacher_data_is_normalised_and_deterministic():
    a, b = sx.teacher_data(sx.QUICK), sx.teacher_data(sx.QUICK)
    assert torch.equal(a.y, b.y) and a.x.shape == (40, 6) and a.y.shape == (40, 1)
    assert float(a.y.pow(2).mean()) == pytest.approx(1.0, rel=1e-12)


def test_slopes_read_a_power_law_per_seed():
    rho = np.array([[0.1, 0.2, 0.4], [0.1, 0.2, 0.4]])
    t = np.array([3.0 * rho[0] ** -2, 5.0 * rho[1] ** -1.0])
    assert np.allclose(sx.slopes(dict(rho=rho, t_esc=t)), [-2.0, -1.0], atol=1e-12)
    t[1, 0] = np.nan  # a member that never escaped gives no slope
    assert np.isnan(sx.slopes(dict(rho=rho, t_esc=t))[1])

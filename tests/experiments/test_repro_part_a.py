"""Quick-size runs of kunin-single-neuron, mechanisms-1d, saxe-agf and balance-mup-lambda: every claim passes
(exit code 0) except those measured to fail and reported failing, claims.json follows the schema, figures
and report are written."""
import pytest

from lazyrich.experiments import REGISTRY

from .quick_checks import check_quick_outcome

NAMES = [n for n in ("kunin-single-neuron", "mechanisms-1d", "saxe-agf", "balance-mup-lambda") if n in REGISTRY]


@pytest.fixture(params=NAMES)
def outcome(request, quick_outcomes):
    return quick_outcomes(request.param)  # one quick run per name per session (conftest.py)


@pytest.mark.quick_repro
def test_quick_run_passes_every_claim(outcome):
    check_quick_outcome(outcome)

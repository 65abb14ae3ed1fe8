import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Hypothesis profiles: "ci" (default) is derandomized with a fixed example budget so the suite's time
# is bounded and a failure reproduces; "long" explores more (HYPOTHESIS_PROFILE=long pytest ...).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=5000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _float64_single_thread():
    """Tests compare numbers bitwise or to 1e-12: pin the thread count and the default dtype."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

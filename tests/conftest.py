import pytest
import torch


@pytest.fixture(autouse=True)
def _float64_single_thread():
    """Tests compare numbers bitwise or to 1e-12: pin the thread count and the default dtype."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

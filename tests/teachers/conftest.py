import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread():
    # On a shared, oversubscribed CPU, torch's spinning worker threads make small ops 100x slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

import pytest
import torch

from ppkt.utils.compiled import compiled_kernels, numba_available


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture(params=["compiled", "torch"], autouse=True)
def geometry_path(request):
    """Every geometry test runs on both paths: the numba kernels and the torch code they replace
    on the CPU (``ppkt.utils.compiled``). Without numba the compiled run is skipped."""
    if request.param == "compiled" and not numba_available():
        pytest.skip("numba is not installed")
    with compiled_kernels(request.param == "compiled"):
        yield request.param

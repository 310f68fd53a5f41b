"""``ppkt.utils.threads.torch_threads`` and its users leave torch's thread count as they found it."""

import pytest
import torch

from ppkt.geometry.point_ops import farthest_point_sample
from ppkt.utils.threads import torch_threads


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_block_runs_with_the_count_and_restores_it(two_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 2  # restored after an error too
    with torch_threads(None):
        assert torch.get_num_threads() == 2
    with torch_threads(1, "meta"):  # not a CPU: nothing changes
        assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads must be >= 1"), torch_threads(0):
        pass


def test_fps_runs_single_threaded_and_restores_the_count(two_threads, monkeypatch):
    seen = []
    real_argmax = torch.Tensor.argmax

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_argmax(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "argmax", spy)
    farthest_point_sample(torch.rand(50, 3), 4)
    assert seen == [1, 1, 1, 1] and torch.get_num_threads() == 2

"""Settings shared by every test."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One torch thread for the whole suite: the tensors in tests are small, results do not depend
    on the thread count, and on a busy 2-core machine OpenMP threads spinning against other
    processes made single steps 10-100x slower (measured while this suite was written)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def fresh_rename_notices():
    """Every test sees the rename notices it causes (ppkt prints each one once per process)."""
    from ppkt import config

    config._NOTICES_SHOWN.clear()


@pytest.fixture
def teacher_calls(monkeypatch):
    """Images the pretraining run's teacher saw, one entry per forward call (a hook on the teacher of
    the model ``ppkt.train.loop`` builds)."""
    from ppkt.train import loop

    calls: list[int] = []
    build = loop.build_model

    def hooked(cfg):
        model = build(cfg)
        model.teacher.register_forward_hook(lambda module, args, out: calls.append(int(args[0].shape[0])))
        return model

    monkeypatch.setattr(loop, "build_model", hooked)
    return calls

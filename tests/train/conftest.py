"""Fixtures of the pretraining tests; the frame builders live in train_fixtures.py."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import make_frame


@pytest.fixture
def frames():
    return [make_frame(seed=i, name=f"{i:06d}") for i in range(6)]


@pytest.fixture(autouse=True)
def nondeterministic_after_test():
    """Tests of deterministic mode switch it on globally; switch it off again."""
    yield
    torch.use_deterministic_algorithms(False)

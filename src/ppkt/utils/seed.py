"""Seeding and determinism."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - seeds third-party code using the legacy global RNG
    torch.manual_seed(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Ask torch for deterministic kernels (errors on ops that have none)."""
    torch.use_deterministic_algorithms(enabled, warn_only=False)

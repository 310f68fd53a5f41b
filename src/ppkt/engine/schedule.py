"""The learning-rate schedule of every loop: linear warm-up, then cosine, poly or constant."""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "poly", "constant")


def lr_factor(step: int, total: int, *, warmup: int = 0, schedule: str = "cosine", power: float = 0.9) -> float:
    """Multiplier of the peak learning rate for step ``step`` (0-based) of ``total``.

    Warm-up: ``(step + 1) / warmup`` for the first ``warmup`` steps. After it, with
    ``progress = (step - warmup) / (total - warmup)`` clipped to 1:
    cosine ``(1 + cos(pi progress)) / 2``, poly ``(1 - progress) ** power``, constant 1.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "poly":
        return (1.0 - progress) ** power
    if schedule == "constant":
        return 1.0
    raise ValueError(f"unknown learning-rate schedule {schedule!r} (one of {', '.join(SCHEDULES)})")

"""Finite checks of tensors and weight files: one error type for NaN/inf wherever it is found.

Kept below every package that loads or saves weights (backbones read exported files, the engine
guards checkpoints), so each of them can refuse a damaged file the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch


class NonFiniteError(FloatingPointError):
    """A loss, weight, statistic or optimiser state became NaN/inf; the message says where and
    which checkpoint is the last good one."""


def _named_tensors(obj: Any, prefix: str) -> Iterable[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _named_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _named_tensors(value, f"{prefix}.{i}" if prefix else str(i))


def first_non_finite(tensors: Any) -> str | None:
    """Name of the first floating-point tensor holding NaN/inf in ``tensors`` (a tensor, or nested
    dicts/lists of them such as a state dict or ``optimizer.state_dict()``), or None."""
    for name, t in _named_tensors(tensors, ""):
        if t.is_floating_point() or t.is_complex():
            if not bool(torch.isfinite(t).all()):
                return name
    return None


def check_finite_file(path: str | Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`NonFiniteError` naming ``path`` and its first NaN/inf tensor."""
    for name in tensors:
        bad = first_non_finite(tensors[name])
        if bad is not None:
            raise NonFiniteError(
                f"{path}: tensor {name} holds NaN/inf values; the weights are damaged "
                "(use an earlier checkpoint of the run)"
            )

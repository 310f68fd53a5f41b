"""Guards that keep a run from training on, or saving, NaN/inf.

One exception type (:class:`NonFiniteError`) for every such stop. A checkpoint is written only
after :func:`first_non_finite` found nothing in the parameters, buffers and optimiser state, so a
checkpoint named "last good" is always finite; exported and loaded weight files are checked the
same way (:func:`check_finite_file`).
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


def training_state_problem(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> str | None:
    """``"parameter/buffer NAME"`` or ``"optimiser state NAME"`` of the first non-finite tensor, or None."""
    bad = first_non_finite(dict(model.named_parameters()))
    if bad is not None:
        return f"parameter {bad}"
    bad = first_non_finite(dict(model.named_buffers()))
    if bad is not None:
        return f"buffer {bad}"
    if optimizer is not None:
        bad = first_non_finite(optimizer.state_dict()["state"])
        if bad is not None:
            return f"optimiser state {bad}"
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

"""Guards that keep a run from training on, or saving, NaN/inf.

One exception type (:class:`NonFiniteError`) for every such stop. A checkpoint is written only
after :func:`first_non_finite` found nothing in the parameters, buffers and optimiser state, so a
checkpoint named "last good" is always finite; exported and loaded weight files are checked the
same way (:func:`check_finite_file`).
"""

from __future__ import annotations

import torch

from ppkt.utils.finite import NonFiniteError, check_finite_file, first_non_finite

__all__ = ["NonFiniteError", "check_finite_file", "first_non_finite", "training_state_problem"]


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



"""Cross-entropy averaged over a mask, with optional class weights.

    L = sum_i m_i * w[y_i] * CE(z_i, y_i) / (sum_i m_i + 1e-6)

VoteNet uses this form (``models/loss_helper.py``) for objectness (class weights 0.2 / 0.8, the
mask leaving out proposals between the near and far thresholds), and for heading-bin, size-cluster
and semantic classification (mask = positive proposals). Note that the class weights multiply the
per-item losses but the denominator counts masked items, not their weights (unlike
``F.cross_entropy(weight=...)``'s mean), as in VoteNet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Args: ``logits (..., K)``, ``target (...)`` long in ``[0, K)``, ``mask (...)`` bool or float,
    ``class_weights (K,)``. Returns the scalar loss (0 with a gradient path when the mask is empty)."""
    if logits.shape[:-1] != target.shape or target.shape != mask.shape:
        raise ValueError(
            f"masked_cross_entropy: logits {tuple(logits.shape)}, target {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)} disagree"
        )
    k = logits.shape[-1]
    weight = mask.to(logits.dtype)
    safe_target = torch.where(weight > 0, target, torch.zeros_like(target))
    ce = F.cross_entropy(logits.reshape(-1, k), safe_target.reshape(-1), reduction="none").reshape(
        target.shape
    )
    if class_weights is not None:
        ce = ce * class_weights.to(logits)[safe_target]
    return (ce * weight).sum() / (weight.sum() + 1e-6)

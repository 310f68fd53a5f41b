"""Bin classification + residual regression, VoteNet's parametrisation of heading and size.

A quantity is coded as a bin (heading: one of ``K`` angle bins; size: one of the class-mean size
templates) and a residual within it, normalised (heading: by the bin width; size: by the
template). The loss is a cross-entropy on the bin and a Huber (smooth-L1, delta 1) loss on the
residual **predicted for the true bin**, each averaged over the masked (positive) proposals;
a multi-dimensional residual (size: 3) is first averaged over its dimensions:

    L_cls = sum_p m_p CE(z_p, k*_p) / (sum m + 1e-6)
    L_reg = sum_p m_p mean_d huber(r_p[k*_p, d] - r*_p[d]) / (sum m + 1e-6)

(votenet ``models/loss_helper.py``: heading_class_loss / heading_residual_normalized_loss,
size_class_loss / size_residual_normalized_loss.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ppkt.losses.masked_cross_entropy import masked_cross_entropy


def bin_residual_loss(
    bin_logits: torch.Tensor,
    residuals: torch.Tensor,
    target_bin: torch.Tensor,
    target_residual: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Args: ``bin_logits (B, P, K)``, ``residuals (B, P, K, D)`` normalised residual per bin,
    ``target_bin (B, P)`` long, ``target_residual (B, P, D)`` normalised, ``mask (B, P)`` bool.

    Returns: ``(classification loss, residual loss)``.
    """
    if residuals.shape[:3] != bin_logits.shape or target_residual.shape != (
        *target_bin.shape,
        residuals.shape[-1],
    ):
        raise ValueError(
            f"bin_residual_loss: logits {tuple(bin_logits.shape)}, residuals {tuple(residuals.shape)}, "
            f"targets {tuple(target_bin.shape)} / {tuple(target_residual.shape)} disagree"
        )
    cls = masked_cross_entropy(bin_logits, target_bin, mask)
    weight = mask.to(residuals.dtype)
    safe_bin = torch.where(mask, target_bin, torch.zeros_like(target_bin))
    index = safe_bin[..., None, None].expand(*safe_bin.shape, 1, residuals.shape[-1])
    chosen = residuals.gather(2, index).squeeze(2)  # (B, P, D)
    target = torch.where(mask[..., None], target_residual, torch.zeros_like(target_residual))
    huber = F.huber_loss(chosen, target.detach(), reduction="none", delta=1.0).mean(-1)
    return cls, (huber * weight).sum() / (weight.sum() + 1e-6)

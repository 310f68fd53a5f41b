"""VoteNet's box-centre loss: a chamfer distance between predicted and true centres.

    L = sum_p pos_p * min_g ||c_p - c*_g||^2 / (sum_p pos_p + 1e-6)
      + sum_g min_p ||c*_g - c_p||^2 / (G + 1e-6)

The first term pulls each positive proposal to its nearest true centre, the second pulls some
proposal onto every true box (votenet ``models/loss_helper.py``, ``compute_box_and_sem_cls_loss``:
``nn_distance`` with squared L2 distance, the second term over all proposals). Scenes are
independent; ``gt_mask`` marks real boxes among the padded ones.
"""

from __future__ import annotations

import torch


def box_center_loss(
    pred_centers: torch.Tensor, gt_centers: torch.Tensor, positive: torch.Tensor, gt_mask: torch.Tensor
) -> torch.Tensor:
    """Args: ``pred_centers (B, P, 3)``, ``gt_centers (B, G, 3)`` (padded), ``positive (B, P)`` bool,
    ``gt_mask (B, G)`` bool. A scene without boxes adds nothing."""
    if pred_centers.shape[0] != gt_centers.shape[0] or positive.shape != pred_centers.shape[:2]:
        raise ValueError(
            f"box_center_loss: predictions {tuple(pred_centers.shape)}, truth {tuple(gt_centers.shape)} "
            f"and positives {tuple(positive.shape)} disagree"
        )
    if gt_centers.shape[1] == 0:
        return pred_centers.sum() * 0.0
    d = (pred_centers[:, :, None, :] - gt_centers[:, None, :, :]).square().sum(-1)  # (B, P, G)
    big = torch.finfo(d.dtype).max
    to_truth = torch.where(gt_mask[:, None, :], d, torch.full_like(d, big)).amin(dim=2)  # (B, P)
    has_truth = gt_mask.any(dim=1, keepdim=True)
    pos = (positive & has_truth).to(d.dtype)
    to_truth = torch.where(pos > 0, to_truth, torch.zeros_like(to_truth))
    to_prediction = d.amin(dim=1)  # (B, G)
    real = gt_mask.to(d.dtype)
    to_prediction = torch.where(gt_mask, to_prediction, torch.zeros_like(to_prediction))
    return (to_truth * pos).sum() / (pos.sum() + 1e-6) + (to_prediction * real).sum() / (real.sum() + 1e-6)

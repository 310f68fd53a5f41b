"""Cosine feature distillation: regress the teacher's feature at each point's pixel.

For ``N`` pixel/point pairs with point embeddings ``f_i`` and teacher features ``t_i`` (the same
width), the loss is

    L = 1/N * sum_i ( 1 - f_i . t_i / (|f_i| |t_i|) )

in ``[0, 2]``: 0 when every point embedding points along its pixel's feature, 1 when orthogonal,
2 when opposite. There are no negatives, so unlike InfoNCE the target side must not learn: with
a trainable pixel side both sides could agree on a constant and the loss would reach 0 without
learning anything. Pretraining with ``loss.name=cosine`` therefore compares the 3D embeddings
with the frozen teacher's features themselves (``PPKTModel(pixel_target="teacher")``), and the
3D projection head maps to the teacher's width.

Sources: ScaLR (Puy et al., "Three Pillars improving Vision Foundation Model Distillation for
Lidar", CVPR 2024) distils DINOv2 features into a lidar network by regressing the unit-normalised
teacher feature (the squared distance of unit vectors is ``2 - 2 cos``: this loss up to a factor 2);
OpenScene (Peng et al., CVPR 2023) distils fused CLIP pixel features into 3D points with a
``1 - cos`` loss. The point side may go through an MLP head instead of a linear one (``loss.head=mlp``).

Degenerate inputs: no pairs gives a zero that still carries a ``grad_fn``; an all-zero vector
has no direction and counts as orthogonal (cosine 0, loss 1), via the ``eps`` of the norms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ppkt.losses.point_infonce import _zero_loss


class CosineDistillation(nn.Module):
    """``1 - cos(point, teacher)`` averaged over pairs.

    Call ``loss(point_feats (P, D), teacher_feats (P, D), group=None)``; row ``k`` of both is one
    pair. ``group (P,)`` long (the frame of each row) averages per frame first, then over frames,
    as :class:`ppkt.losses.PointInfoNCE` does with per-frame sampling. The teacher side gets no
    gradient from this loss (it is a target). Returns a scalar tensor.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(
        self, point_feats: torch.Tensor, teacher_feats: torch.Tensor, group: torch.Tensor | None = None
    ) -> torch.Tensor:
        if point_feats.ndim != 2 or teacher_feats.ndim != 2 or point_feats.shape != teacher_feats.shape:
            raise ValueError(
                "CosineDistillation: point_feats and teacher_feats must both be (P, D) with the same shape, "
                f"got {tuple(point_feats.shape)} and {tuple(teacher_feats.shape)}"
            )
        if point_feats.shape[0] == 0:
            return _zero_loss(point_feats)
        distance = 1.0 - F.cosine_similarity(point_feats, teacher_feats.detach(), dim=1, eps=self.eps)
        if group is None:
            return distance.mean()
        if group.ndim != 1 or group.shape[0] != point_feats.shape[0]:
            raise ValueError(
                f"CosineDistillation: group must be ({point_feats.shape[0]},), got {tuple(group.shape)}"
            )
        _, inverse, counts = torch.unique(group.to(distance.device), return_inverse=True, return_counts=True)
        per_group = torch.zeros(counts.shape[0], dtype=distance.dtype, device=distance.device)
        per_group.index_add_(0, inverse, distance)
        return (per_group / counts.to(distance.dtype)).mean()

"""Superpixel-pooled InfoNCE (SLidR, Sautier et al., "Image-to-Lidar Self-Supervised
Distillation for Autonomous Driving Data", CVPR 2022, eq. 2-3).

Instead of contrasting single pixel/point pairs, SLidR averages the point embeddings and the
pixel embeddings inside each image superpixel and contrasts the superpixels: with ``S``
superpixels, pooled point embeddings ``F_s`` and pooled pixel embeddings ``G_s`` (each the mean
of its members' L2-normalised embeddings, then L2-normalised again),

    L = -1/S * sum_s log( exp(F_s . G_s / tau) / sum_t exp(F_s . G_t / tau) )

Pooling removes the "false negatives" of PPKT's loss: two pixels of the same object are no
longer pushed apart, only different superpixels are. The segments of one batch are all
negatives of each other (SLidR's setting).

Here the pixel side is pooled over the pixels that hold a point (the pairs), where SLidR pools
the whole dense feature map inside the superpixel; with RGB-D depth nearly every pixel has a
point, so the two agree up to the pixels without valid depth.

Degenerate inputs: fewer than 2 segments (no negatives) gives a zero that still carries a
``grad_fn``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ppkt.losses.point_infonce import _zero_loss


def segment_mean(values: torch.Tensor, segment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the rows of ``values (P, D)`` per label of ``segment (P,)`` long (any labels).

    Returns ``(means (S, D), labels (S,))`` with the ``S`` distinct labels sorted ascending.
    """
    labels, inverse, counts = torch.unique(segment.to(values.device), return_inverse=True, return_counts=True)
    sums = values.new_zeros((labels.shape[0], values.shape[1])).index_add_(0, inverse, values)
    return sums / counts.to(values.dtype).unsqueeze(1), labels


class SuperpixelInfoNCE(nn.Module):
    """InfoNCE between superpixel-pooled point and pixel embeddings.

    Args:
        tau: softmax temperature (SLidR 0.07).

    Call ``loss(point_feats (P, D), pixel_feats (P, D), segment (P,))``: row ``k`` of the two
    embeddings is one pair, ``segment[k]`` a label of its superpixel unique over the batch
    (e.g. ``image * num_superpixels + superpixel``). Returns a scalar tensor.
    """

    def __init__(self, tau: float = 0.07) -> None:
        super().__init__()
        if isinstance(tau, bool) or not (isinstance(tau, (int, float)) and tau > 0 and tau == tau):
            raise ValueError(f"SuperpixelInfoNCE: tau must be a positive number, got {tau!r}")
        self.tau = float(tau)

    def extra_repr(self) -> str:
        return f"tau={self.tau}"

    def forward(
        self, point_feats: torch.Tensor, pixel_feats: torch.Tensor, segment: torch.Tensor
    ) -> torch.Tensor:
        if point_feats.ndim != 2 or pixel_feats.ndim != 2 or point_feats.shape != pixel_feats.shape:
            raise ValueError(
                "SuperpixelInfoNCE: point_feats and pixel_feats must both be (P, D) with the same shape, got "
                f"{tuple(point_feats.shape)} and {tuple(pixel_feats.shape)}"
            )
        if segment.ndim != 1 or segment.shape[0] != point_feats.shape[0]:
            raise ValueError(
                f"SuperpixelInfoNCE: segment must be ({point_feats.shape[0]},), got {tuple(segment.shape)}"
            )
        if point_feats.shape[0] == 0:
            return _zero_loss(point_feats, pixel_feats)
        points, _ = segment_mean(F.normalize(point_feats, dim=1), segment)
        pixels, _ = segment_mean(F.normalize(pixel_feats, dim=1), segment)
        if points.shape[0] < 2:
            return _zero_loss(point_feats, pixel_feats)
        logits = F.normalize(points, dim=1) @ F.normalize(pixels, dim=1).t() / self.tau
        return F.cross_entropy(logits, torch.arange(points.shape[0], device=points.device))

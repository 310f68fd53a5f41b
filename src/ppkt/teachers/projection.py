"""The paper's upsampling feature projection layer (UPL): 1x1 conv, bilinear upsampling, L2 norm.

Geometry (docs/conventions.md): pixel centres are at integer ``uv`` and a feature map of size
``(h, w)`` is stretched over the image with ``align_corners=False``, i.e. feature cell ``k`` has its
centre at pixel ``(k + 0.5) * W / w - 0.5``. With ``W = w * stride`` that is the centre of the
``stride x stride`` block of pixels the cell was computed from (exactly where a TF-SAME or
``padding=k//2`` conv stack puts it). SLidR instead upsamples x32 with ``align_corners=True``,
which puts cell centres at ``k * (W - 1) / (w - 1)``: half a cell off at the borders, so we do not.

When ``H`` is not a multiple of the stride (240 / 32 = 7.5) the teacher's map covers
``h * stride`` pixels, more than the image; passing ``stride=`` maps cells to exactly the pixels
they came from (cell ``k`` covers pixels ``[k*stride, (k+1)*stride)``), otherwise the map is
stretched over ``(H, W)`` as the conventions say (off by at most half the padding).

Only paired pixels are needed for the loss, so :meth:`sample` interpolates at those pixels instead
of materialising ``(B, D, H, W)``. A 1x1 conv commutes with bilinear interpolation (the weights
sum to one, so the bias commutes too, given border clamping like ``F.interpolate``), so it projects
either the coarse map or the sampled features, whichever is smaller.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class UpsamplingProjection(nn.Module):
    """``Conv2d(in_channels, out_channels, 1)`` + bilinear upsampling + L2 normalisation over channels.

    The 1x1 conv is trained with the 3D network (the teacher stays frozen).
    """

    def __init__(self, in_channels: int, out_channels: int = 128):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.proj = nn.Conv2d(in_channels, out_channels, 1)

    def forward(
        self, features: torch.Tensor, image_hw: tuple[int, int], *, stride: int | None = None
    ) -> torch.Tensor:
        """``(B, C, h, w)`` -> ``(B, D, H, W)`` unit-norm pixel features (full resolution)."""
        projected = self.proj(features.to(self.proj.weight.dtype))
        h, w = features.shape[-2:]
        H, W = image_hw
        size = (H, W) if stride is None else (h * stride, w * stride)
        upsampled = F.interpolate(projected, size=size, mode="bilinear", align_corners=False)
        return F.normalize(upsampled[..., :H, :W], dim=1)

    def sample(
        self,
        features: torch.Tensor,
        uv: torch.Tensor,
        batch_index: torch.Tensor,
        image_hw: tuple[int, int],
        *,
        stride: int | None = None,
    ) -> torch.Tensor:
        """Unit-norm projected features ``(P, D)`` at pixels ``uv (P, 2)`` of images ``batch_index (P,)``.

        Equal to ``forward(features, image_hw)[batch_index, :, v, u]`` at integer ``uv``, and its
        bilinear interpolation in between, without the full-resolution map.
        """
        features = features.to(self.proj.weight.dtype)
        B, C, h, w = features.shape
        H, W = image_hw
        span_h, span_w = (H, W) if stride is None else (h * stride, w * stride)
        uv = uv.to(device=features.device, dtype=features.dtype)
        # Pixel -> continuous feature-cell coordinate (align_corners=False), clamped like F.interpolate.
        x = ((uv[:, 0] + 0.5) * (w / span_w) - 0.5).clamp(0, w - 1)
        y = ((uv[:, 1] + 0.5) * (h / span_h) - 0.5).clamp(0, h - 1)
        x0, y0 = x.floor().long(), y.floor().long()
        x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
        wx, wy = (x - x0).unsqueeze(1), (y - y0).unsqueeze(1)
        P = uv.shape[0]
        project_first = B * h * w <= P
        grid = self.proj(features) if project_first else features
        flat = grid.permute(0, 2, 3, 1).reshape(B * h * w, -1)
        base = batch_index.to(features.device).long() * (h * w)

        def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
            return flat[base + yy * w + xx]

        top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
        bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
        sampled = top * (1 - wy) + bottom * wy
        if not project_first:
            sampled = F.conv2d(sampled[:, :, None, None], self.proj.weight, self.proj.bias)[:, :, 0, 0]
        return F.normalize(sampled, dim=1)

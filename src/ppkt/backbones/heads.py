"""Per-voxel heads acting on ``(M, C)`` feature tensors."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """The 3D projection layer of pretraining: one linear (1x1x1) layer, ``(M, C) -> (M, D)``.

    Features are returned unnormalised; the loss normalises them.
    """

    def __init__(self, in_channels: int, out_channels: int = 128):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.linear = nn.Linear(in_channels, out_channels)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.linear(feats)


class MLPProjectionHead(nn.Module):
    """A two-layer projection head, ``Linear -> ReLU -> Linear``, ``(M, C) -> (M, D)``, hidden width
    ``max(C, D)``: the optional point-side head of feature distillation (``loss.head=mlp``; ScaLR,
    OpenScene regress teacher features through a small head). Unnormalised output."""

    def __init__(self, in_channels: int, out_channels: int = 128):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        hidden = max(in_channels, out_channels)
        self.layers = nn.Sequential(
            nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_channels)
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.layers(feats)


class SegmentationHead(nn.Module):
    """Per-voxel class logits: one linear (1x1x1) layer with bias, ``(M, C) -> (M, num_classes)``."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.linear = nn.Linear(in_channels, num_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.linear(feats)

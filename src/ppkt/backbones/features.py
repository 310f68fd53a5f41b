"""Input features of the 3D networks, computed per point before voxelisation."""

from __future__ import annotations

import torch

INPUT_FEATURE_CHANNELS = {"rgb": 3, "xyzrgb": 6, "constant": 1}


def _colors_unit(colors: torch.Tensor) -> torch.Tensor:
    if colors.dtype == torch.uint8:
        return colors.float() / 255.0
    return colors.float()


def input_features(kind: str, points: torch.Tensor, colors: torch.Tensor | None = None) -> torch.Tensor:
    """Per-point input features ``(N, INPUT_FEATURE_CHANNELS[kind])`` float32.

    Args:
        kind: ``"rgb"``: colour in ``[0, 1]`` minus 0.5, i.e. in ``[-0.5, 0.5]``;
            ``"xyzrgb"``: point coordinates in metres minus the cloud's mean (so the feature does
            not depend on where the scene sits in the world), then the ``"rgb"`` channels;
            ``"constant"``: a single channel of ones (geometry only).
        points: ``(N, 3)`` float, metres.
        colors: ``(N, 3)`` uint8 in ``[0, 255]`` or float in ``[0, 1]``; needed for the colour kinds.
    """
    if kind not in INPUT_FEATURE_CHANNELS:
        raise ValueError(
            f"unknown input feature kind {kind!r}; choose one of {sorted(INPUT_FEATURE_CHANNELS)}"
        )
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"input_features: points must be (N, 3), got {tuple(points.shape)}")
    if kind == "constant":
        return torch.ones(points.shape[0], 1, dtype=torch.float32, device=points.device)
    if colors is None or colors.shape != points.shape:
        shape = None if colors is None else tuple(colors.shape)
        raise ValueError(f"input_features({kind!r}) needs colors of shape {tuple(points.shape)}, got {shape}")
    rgb = _colors_unit(colors) - 0.5
    if kind == "rgb":
        return rgb
    xyz = points.float()
    if xyz.shape[0]:
        xyz = xyz - xyz.mean(dim=0, keepdim=True)
    return torch.cat([xyz, rgb], dim=1)

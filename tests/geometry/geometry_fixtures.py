"""Shared helpers of the geometry tests (a unique module name: other test folders have a conftest)."""

import math

import torch

# ScanNet-like intrinsics: 640x480 depth, 1296x968 colour.
K_DEPTH = [[577.87, 0.0, 319.5], [0.0, 577.87, 239.5], [0.0, 0.0, 1.0]]
K_COLOR = [[1170.19, 0.0, 647.75], [0.0, 1170.19, 483.75], [0.0, 0.0, 1.0]]


def room_depth(H: int, W: int, *, seed: int = 0, holes: float = 0.05, dtype=torch.float32) -> torch.Tensor:
    """Smooth synthetic depth (a tilted floor/wall blend plus a bump, 0.5-5 m) with zero holes."""
    g = torch.Generator().manual_seed(seed)
    i = torch.arange(H, dtype=torch.float64)[:, None] / max(H - 1, 1)
    j = torch.arange(W, dtype=torch.float64)[None, :] / max(W - 1, 1)
    depth = 3.0 + 1.5 * torch.cos(math.pi * j) * (1 - i) - 1.2 * i**2
    depth = depth - 0.8 * torch.exp(-((i - 0.5) ** 2 + (j - 0.4) ** 2) / 0.02)
    depth = depth.clamp(0.5, 5.0)
    depth = depth * (1 + 0.002 * torch.randn(H, W, generator=g, dtype=torch.float64))
    depth[torch.rand(H, W, generator=g) < holes] = 0.0
    return depth.to(dtype)

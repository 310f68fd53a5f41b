"""Sparse layers: submanifold, strided and transposed convolutions, batch norm, ReLU.

Every convolution holds ``weight (K, C_in, C_out)`` (offset order in
:mod:`ppkt.sparse.kernel_map`), so a state dict moves between backends unchanged. The backend is
a plain attribute (``"torch"`` or ``"spconv"``), not part of the state dict.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ppkt.sparse.functional import BACKENDS, sparse_conv
from ppkt.sparse.tensor import SparseTensor


class _SparseConvBase(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_volume: int, bias: bool, backend: str):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown sparse backend {backend!r}; choose one of {BACKENDS}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.backend = backend
        self.weight = nn.Parameter(torch.empty(kernel_volume, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # He initialisation over the true fan-in (all offsets), as for dense ResNets.
        fan_in = self.weight.shape[0] * self.weight.shape[1]
        nn.init.normal_(self.weight, std=math.sqrt(2.0 / max(fan_in, 1)))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _apply_map(self, feats: torch.Tensor, kernel_map) -> torch.Tensor:
        out = sparse_conv(feats, self.weight, kernel_map, self.backend)
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_volume={self.weight.shape[0]}, "
            f"bias={self.bias is not None}, backend={self.backend!r}"
        )


class SubmanifoldConv3d(_SparseConvBase):
    """Convolution whose output sites are its input sites (odd kernel, stride 1).

    ``kernel_size=1`` is a per-site linear layer (no neighbour search).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        bias: bool = False,
        backend: str = "torch",
    ):
        if kernel_size % 2 != 1:
            raise ValueError(f"SubmanifoldConv3d: kernel size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size
        super().__init__(in_channels, out_channels, kernel_size**3, bias, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        if self.kernel_size == 1:
            out = x.feats @ self.weight[0]
            if self.bias is not None:
                out = out + self.bias
            return x.replace_feats(out)
        kernel_map = x.cache.submanifold(x.stride, self.kernel_size)
        return x.replace_feats(self._apply_map(x.feats, kernel_map))


class DownConv3d(_SparseConvBase):
    """Kernel 2, stride 2: output sites ``floor(x / 2s) * 2s``, tensor stride doubles."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False, backend: str = "torch"):
        super().__init__(in_channels, out_channels, 8, bias, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        down = x.cache.downsampling(x.stride)
        feats = self._apply_map(x.feats, down.kernel_map)
        return SparseTensor(x.cache.coords(2 * x.stride), feats, 2 * x.stride, x.cache)


class UpConv3d(_SparseConvBase):
    """Transposed kernel 2, stride 2: back onto the sites of the finer level (stride halves).

    Reuses the map of the matching :class:`DownConv3d`, so the output sites are exactly the
    sites the finer level had; ``weight[k]`` maps the coarse site to its child at offset ``k``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False, backend: str = "torch"):
        super().__init__(in_channels, out_channels, 8, bias, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        if x.stride < 2 or x.stride % 2:
            raise ValueError(f"UpConv3d: input tensor stride must be an even number, got {x.stride}")
        fine = x.stride // 2
        down = x.cache.downsampling(fine)
        feats = self._apply_map(x.feats, down.kernel_map.transposed())
        return SparseTensor(x.cache.coords(fine), feats, fine, x.cache)


class BatchNorm(nn.BatchNorm1d):
    """Batch norm over the sites (rows) of a sparse tensor; state-dict keys of ``BatchNorm1d``.

    A training batch with a single site normalises to the bias (its own mean) instead of
    raising, and leaves the running statistics alone; an empty batch passes through.
    """

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        feats = x.feats
        if self.training and feats.shape[0] <= 1:
            # weight * 0 keeps the weight in the graph with its exact gradient (0): a parameter
            # left out of the graph stops DDP (without find_unused_parameters) at the next step.
            out = feats * 0.0 * self.weight + self.bias if self.affine else feats * 0.0
            return x.replace_feats(out)
        if feats.shape[0] == 0:
            return x
        return x.replace_feats(super().forward(feats))


class ReLU(nn.Module):
    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace_feats(F.relu(x.feats))


def set_backend(module: nn.Module, backend: str) -> nn.Module:
    """Switch every sparse convolution inside ``module`` to ``backend``; returns ``module``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown sparse backend {backend!r}; choose one of {BACKENDS}")
    for child in module.modules():
        if isinstance(child, _SparseConvBase):
            child.backend = backend
    return module

"""The sparse tensor of ppkt and the per-batch cache of coordinates and kernel maps."""

from __future__ import annotations

import torch

from ppkt.sparse.kernel_map import (
    Downsampling,
    KernelMap,
    check_coordinate_range,
    downsample_map,
    submanifold_map,
)


class CoordinateCache:
    """Coordinates and kernel maps of one batch, shared by every tensor derived from it.

    Every layer at a resolution level reuses the same map: submanifold maps are keyed by
    ``(stride, kernel_size)`` (a smaller kernel's map is cut out of a larger one's at the same
    stride when that exists), stride-2 coarsenings by the fine stride. Transposed convolutions
    reuse the coarsening map of the matching down step, so their output sites are exactly the
    finer level's sites.
    """

    def __init__(self, coords: torch.Tensor, stride: int = 1):
        self.coords_by_stride: dict[int, torch.Tensor] = {stride: coords}
        self._submanifold: dict[tuple[int, int], KernelMap] = {}
        self._downsampling: dict[int, Downsampling] = {}

    def coords(self, stride: int) -> torch.Tensor:
        if stride not in self.coords_by_stride:
            raise KeyError(
                f"no coordinates at tensor stride {stride}; known strides {sorted(self.coords_by_stride)}"
            )
        return self.coords_by_stride[stride]

    def submanifold(self, stride: int, kernel_size: int) -> KernelMap:
        key = (stride, kernel_size)
        if key not in self._submanifold:
            # A larger kernel's map at this stride already holds every pair of this one
            # (the stem's kernel 5 before the blocks' kernel 3): cut it out instead of searching.
            larger = [k for s, k in self._submanifold if s == stride and k > kernel_size]
            if larger:
                self._submanifold[key] = self._submanifold[(stride, min(larger))].restrict(
                    min(larger), kernel_size
                )
            else:
                self._submanifold[key] = submanifold_map(self.coords(stride), stride, kernel_size)
        return self._submanifold[key]

    def downsampling(self, stride: int) -> Downsampling:
        """Coarsening from ``stride`` to ``2 * stride`` (built once, reused by the up step)."""
        if stride not in self._downsampling:
            down = downsample_map(self.coords(stride), stride)
            self._downsampling[stride] = down
            self.coords_by_stride.setdefault(2 * stride, down.coarse_coords)
        return self._downsampling[stride]


class SparseTensor:
    """Features on a sparse set of integer voxel sites.

    Args:
        coords: ``(M, 4)`` long ``(batch, x, y, z)`` in units of the finest voxel, unique rows,
            spatial coordinates multiples of ``stride``.
        feats: ``(M, C)`` float features, row ``i`` at ``coords[i]``.
        stride: tensor stride (1 at the input resolution, 2, 4, ... after down steps).
        cache: the batch's :class:`CoordinateCache`; a new one is made when omitted. Tensors
            produced by layers share their input's cache.
    """

    def __init__(
        self,
        coords: torch.Tensor,
        feats: torch.Tensor,
        stride: int = 1,
        cache: CoordinateCache | None = None,
    ):
        if coords.dim() != 2 or coords.shape[1] != 4:
            raise ValueError(f"SparseTensor: coords must be (M, 4), got {tuple(coords.shape)}")
        if coords.dtype != torch.long:
            raise ValueError(f"SparseTensor: coords must be int64, got {coords.dtype}")
        if feats.dim() != 2 or feats.shape[0] != coords.shape[0]:
            raise ValueError(
                f"SparseTensor: feats must be (M, C) with M = {coords.shape[0]}, got {tuple(feats.shape)}"
            )
        if coords.device != feats.device:
            raise ValueError(f"SparseTensor: coords on {coords.device} but feats on {feats.device}")
        if cache is None:
            check_coordinate_range(coords)
            cache = CoordinateCache(coords, stride)
        self.coords = coords
        self.feats = feats
        self.stride = int(stride)
        self.cache = cache

    @property
    def num_sites(self) -> int:
        return int(self.coords.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.feats.shape[1])

    @property
    def device(self) -> torch.device:
        return self.feats.device

    def replace_feats(self, feats: torch.Tensor) -> SparseTensor:
        """Same sites and cache, new ``(M, C')`` features."""
        return SparseTensor(self.coords, feats, self.stride, self.cache)

    def __repr__(self) -> str:
        return f"SparseTensor(num_sites={self.num_sites}, channels={self.num_channels}, stride={self.stride})"


def cat(*tensors: SparseTensor) -> SparseTensor:
    """Concatenate features of tensors on the same sites (skip connections)."""
    first = tensors[0]
    for t in tensors[1:]:
        if t.stride != first.stride or t.cache is not first.cache:
            raise ValueError(
                "sparse cat: tensors must share the batch cache and the tensor stride (same sites)"
            )
    return first.replace_feats(torch.cat([t.feats for t in tensors], dim=1))

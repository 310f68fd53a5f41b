"""Coordinate hashing and kernel maps, shared by every backend.

A *kernel map* lists, for each kernel offset, which input row feeds which output row:
``in_index`` and ``out_index`` are flat ``(P,)`` long tensors grouped by offset, and
``offset_counts (K,)`` says how many pairs each offset owns (offsets in the documented order).
A convolution is then ``out[out_index_k] += in[in_index_k] @ W[k]`` for every offset ``k``.

Kernel-offset order (the weight layout ``(K, C_in, C_out)`` follows it):
offset index ``k = (a * n + b) * n + c`` for per-axis positions ``a, b, c`` in ``[0, n)`` along
x, y, z, i.e. x is the slowest axis, exactly as the last three axes of a dense ``F.conv3d`` weight.
For an odd kernel ``n`` the offset is ``(a - n//2, b - n//2, c - n//2) * stride``; for the
stride-2 kernel ``n = 2`` it is ``(a, b, c) * stride`` from the coarse site.

Neighbour search: every coordinate is packed into one int64 key, keys are sorted once per
resolution level, and all ``K * M`` neighbour queries are answered by one ``torch.searchsorted``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Key layout: 12 bits batch, 17 bits per spatial axis (63 bits, keeps int64 keys positive).
_AXIS_BITS = 17
_BATCH_BITS = 12
_AXIS_BIAS = 1 << (_AXIS_BITS - 1)
# Queries reach at most (kernel // 2) * stride beyond a site; this margin keeps them packable.
_QUERY_MARGIN = 1 << 10
COORD_MIN = -_AXIS_BIAS + _QUERY_MARGIN
COORD_MAX = _AXIS_BIAS - _QUERY_MARGIN - 1
MAX_BATCH = (1 << _BATCH_BITS) - 1


def check_coordinate_range(coords: torch.Tensor) -> None:
    """Raise ValueError if integer coordinates ``(M, 4)`` cannot be packed into int64 keys."""
    if coords.numel() == 0:
        return
    lo = coords.min(dim=0).values.tolist()
    hi = coords.max(dim=0).values.tolist()
    if lo[0] < 0 or hi[0] > MAX_BATCH:
        raise ValueError(
            f"sparse coordinates: batch index must lie in [0, {MAX_BATCH}], got [{lo[0]}, {hi[0]}]"
        )
    if min(lo[1:]) < COORD_MIN or max(hi[1:]) > COORD_MAX:
        raise ValueError(
            f"sparse coordinates: voxel coordinates must lie in [{COORD_MIN}, {COORD_MAX}] "
            f"(got min {lo[1:]}, max {hi[1:]}); use a coarser voxel size or re-centre the points"
        )


def pack_keys(coords: torch.Tensor) -> torch.Tensor:
    """Pack ``(..., 4)`` long coordinates (batch, x, y, z) into ``(...,)`` int64 keys.

    The key order equals the lexicographic order of (batch, x, y, z).
    """
    b = coords[..., 0]
    x = coords[..., 1] + _AXIS_BIAS
    y = coords[..., 2] + _AXIS_BIAS
    z = coords[..., 3] + _AXIS_BIAS
    return (((b << _AXIS_BITS) | x) << _AXIS_BITS | y) << _AXIS_BITS | z


def kernel_offsets(kernel_size: int, device: torch.device | None = None) -> torch.Tensor:
    """``(K, 3)`` long offsets (in units of the tensor stride) in the documented order."""
    if kernel_size % 2 == 1:
        r = torch.arange(kernel_size, device=device) - kernel_size // 2
    elif kernel_size == 2:
        r = torch.arange(2, device=device)
    else:
        raise ValueError(f"kernel size must be odd or 2, got {kernel_size}")
    a, b, c = torch.meshgrid(r, r, r, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1), c.reshape(-1)], dim=1)


@dataclass(frozen=True)
class KernelMap:
    """Input/output row pairs of one convolution, grouped by kernel offset.

    Attributes:
        in_index: ``(P,)`` long, rows of the input features.
        out_index: ``(P,)`` long, rows of the output features.
        offset_counts: ``(K,)`` long on the CPU, pairs per kernel offset (in offset order).
        num_in: number of input sites.
        num_out: number of output sites.
        identity_offset: index of the offset whose pairs are ``(i, i)`` for every site
            (the centre of a submanifold kernel), or -1; backends skip its gather/scatter.
    """

    in_index: torch.Tensor
    out_index: torch.Tensor
    offset_counts: torch.Tensor
    num_in: int
    num_out: int
    identity_offset: int = -1

    @property
    def kernel_volume(self) -> int:
        return int(self.offset_counts.numel())

    def transposed(self) -> KernelMap:
        """The same pairs with input and output swapped (for transposed convolution)."""
        return KernelMap(
            self.out_index, self.in_index, self.offset_counts, self.num_out, self.num_in, self.identity_offset
        )

    def split(self) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """``[(k, in_index_k, out_index_k)]`` for every offset with at least one pair."""
        result = []
        start = 0
        for k, n in enumerate(self.offset_counts.tolist()):
            if n > 0:
                result.append((k, self.in_index[start : start + n], self.out_index[start : start + n]))
            start += n
        return result

    def num_macs(self, in_channels: int, out_channels: int) -> int:
        """Multiply-accumulates of one forward pass through this map."""
        return int(self.in_index.numel()) * in_channels * out_channels


def submanifold_map(coords: torch.Tensor, stride: int, kernel_size: int) -> KernelMap:
    """Kernel map of a submanifold convolution: output sites are the input sites.

    Args:
        coords: ``(M, 4)`` long, unique (batch, x, y, z), multiples of ``stride``.
        stride: tensor stride of ``coords``.
        kernel_size: odd kernel size.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"submanifold convolution needs an odd kernel size, got {kernel_size}")
    m = coords.shape[0]
    device = coords.device
    offsets = kernel_offsets(kernel_size, device) * stride  # (K, 3)
    k_vol = offsets.shape[0]
    centre = k_vol // 2
    if m == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return KernelMap(empty, empty, torch.zeros(k_vol, dtype=torch.long), 0, 0, centre)
    keys = pack_keys(coords)
    sorted_keys, order = torch.sort(keys)
    if bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
        raise ValueError("sparse coordinates must be unique rows (voxelise the points first)")
    # One key delta per offset: packing is linear in each axis while no field overflows,
    # which check_coordinate_range guarantees for offsets below the query margin.
    zeros = torch.zeros(k_vol, 1, dtype=torch.long, device=device)
    delta = pack_keys(torch.cat([zeros, offsets], dim=1)) - pack_keys(
        torch.zeros(1, 4, dtype=torch.long, device=device)
    )
    query = keys.unsqueeze(0) + delta.unsqueeze(1)  # (K, M): site i looks at i + offset_k
    pos = torch.searchsorted(sorted_keys, query).clamp_(max=m - 1)
    found = sorted_keys[pos] == query
    # For offset k, output site i receives input site j = i + offset_k (cross-correlation).
    k_idx, out_idx = found.nonzero(as_tuple=True)  # row-major: grouped by k, then output row
    in_idx = order[pos[k_idx, out_idx]]
    counts = torch.bincount(k_idx, minlength=k_vol).cpu()
    return KernelMap(in_idx, out_idx, counts, m, m, centre)


@dataclass(frozen=True)
class Downsampling:
    """Result of a stride-2 coarsening: the coarse sites and the kernel-2 map to them.

    Attributes:
        coarse_coords: ``(M_c, 4)`` long, sorted by (batch, x, y, z), multiples of ``2 * stride``.
        kernel_map: fine rows -> coarse rows, 8 offsets; every fine site appears exactly once.
    """

    coarse_coords: torch.Tensor
    kernel_map: KernelMap


def downsample_map(coords: torch.Tensor, stride: int) -> Downsampling:
    """Coarse sites ``floor(x / 2s) * 2s`` and the kernel-2 / stride-2 map from ``coords``."""
    device = coords.device
    s2 = 2 * stride
    coarse = coords.clone()
    coarse[:, 1:] = torch.div(coords[:, 1:], s2, rounding_mode="floor") * s2
    if coords.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        km = KernelMap(empty, empty, torch.zeros(8, dtype=torch.long), 0, 0)
        return Downsampling(coarse, km)
    keys = pack_keys(coarse)
    unique_keys, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    first = torch.full((unique_keys.shape[0],), coords.shape[0], dtype=torch.long, device=device)
    first.scatter_reduce_(0, inverse, torch.arange(coords.shape[0], device=device), reduce="amin")
    coarse_coords = coarse[first]
    local = torch.div(coords[:, 1:] - coarse[:, 1:], stride, rounding_mode="floor")  # in {0, 1}
    k = (local[:, 0] * 2 + local[:, 1]) * 2 + local[:, 2]
    order = torch.sort(k, stable=True).indices
    counts = torch.bincount(k, minlength=8).cpu()
    km = KernelMap(order, inverse[order], counts, coords.shape[0], int(unique_keys.shape[0]))
    return Downsampling(coarse_coords, km)

"""The implementations that ppkt's speed work replaced, kept as references for the benchmarks.

Copied verbatim from ppkt before issue 23 (commit 151ce10): voxelisation (one stable sort of all
point keys), kernel maps (one ``torch.searchsorted`` over sorted packed keys, no map reuse between
kernel sizes, coarsening by ``torch.unique`` and a stable sort), the colour lookup by advanced
indexing, and the step that embedded every pixel-point pair before the loss sampled some.
:func:`previous_implementation` swaps them into ppkt for the duration of a ``with`` block, so one
benchmark process can alternate old and new steps and print ratios measured under the same load.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

from ppkt.geometry.camera import _check_points
from ppkt.geometry.voxel import _check_offsets
from ppkt.sparse.kernel_map import Downsampling, KernelMap, kernel_offsets, pack_keys
from ppkt.utils.compiled import compiled_kernels


def voxelize(
    points: Tensor,
    voxel_size,
    *,
    batch_offsets=None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Quantise points to a voxel grid.

    Args:
        points: ``(N, 3)`` float coordinates (metres). Must be finite.
        voxel_size: voxel edge, a float or a ``(3,)`` per-axis size.
        batch_offsets: optional ``(B + 1,)`` integer offsets ``[0, n0, n0 + n1, ..., N]``: points
            ``offsets[b]:offsets[b + 1]`` belong to sample ``b`` (a concatenated batch).

    Returns:
        grid_coord: ``(M, 3)`` long ``floor(p / voxel_size)`` per voxel, or ``(M, 4)``
            ``[batch, x, y, z]`` with ``batch_offsets``; sorted lexicographically by
            ``(batch, x, y, z)``. Coordinates may be negative.
        point_to_voxel: ``(N,)`` long, the row of ``grid_coord`` holding each point.
        voxel_point: ``(M,)`` long, the lowest index of the points in each voxel.
    """
    _check_points(points, "points")
    if points.ndim != 2:
        raise ValueError(f"points must be (N, 3), got {tuple(points.shape)}")
    device = points.device
    N = points.shape[0]
    size = torch.as_tensor(voxel_size, dtype=points.dtype, device=device)
    if size.numel() not in (1, 3) or not bool((size > 0).all()):
        raise ValueError(f"voxel_size must be a positive float or (3,) sizes, got {voxel_size!r}")
    offsets = None if batch_offsets is None else _check_offsets(batch_offsets, N, device)
    ncols = 3 if offsets is None else 4
    if N == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return torch.zeros(0, ncols, dtype=torch.long, device=device), empty, empty.clone()
    with torch.no_grad():
        # Cells stay floats until the key: float32 holds every integer cell index up to 2^24 exactly,
        # and converting one (N,) key to int64 is cheaper than converting (N, 3) coordinates.
        cell = torch.div(points.detach(), size).floor_()
        # Per-column reductions are ~2x faster than aminmax(dim=0) on an (N, 3) tensor; NaN / inf
        # propagate into them, so this is also the input check.
        ranges = [cell[:, k].aminmax() for k in range(3)]
        lo, hi = torch.stack([r.min for r in ranges]), torch.stack([r.max for r in ranges])
        if not bool(torch.isfinite(lo).all() & torch.isfinite(hi).all()):
            raise ValueError("points contain NaN or inf; drop them before voxelising")
        extents = [int(e) for e in (hi - lo + 1).tolist()]
        batch = None
        if offsets is not None:
            counts = offsets[1:] - offsets[:-1]
            batch = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts)
            extents = [counts.numel()] + extents
        cell -= lo  # in place: from here on cells are shifted to start at 0 (exact: integers < 2^24)
        key = _lexicographic_key(cell, extents, batch)
        if key is None:  # extent too large for one exact key: exact but slower path
            coord = cell.long() if batch is None else torch.cat((batch[:, None], cell.long()), dim=1)
            _, key = torch.unique(coord, dim=0, return_inverse=True)
        sorted_key, order = torch.sort(key, stable=True)
        starts = torch.ones(N, dtype=torch.bool, device=device)
        torch.ne(sorted_key[1:], sorted_key[:-1], out=starts[1:])
        voxel_of_sorted = torch.cumsum(starts, dim=0)
        voxel_of_sorted -= 1
        point_to_voxel = torch.empty(N, dtype=torch.long, device=device)
        point_to_voxel.scatter_(0, order, voxel_of_sorted)
        # The stable sort keeps equal keys in index order: the first of each run is the lowest index.
        voxel_point = order[starts]
        grid_coord = (cell.index_select(0, voxel_point) + lo).long()
        if batch is not None:
            grid_coord = torch.cat((batch.index_select(0, voxel_point)[:, None], grid_coord), dim=1)
    return grid_coord, point_to_voxel, voxel_point


def _lexicographic_key(cell: Tensor, extents: list[int], batch: Tensor | None) -> Tensor | None:
    """One integer per point that orders like ``(batch, x, y, z)``, or None when it cannot be exact.

    ``cell`` holds non-negative integer-valued floats. The key is one matrix-vector product in
    float32 when every partial sum stays below 2^24 (exact), else float64 (exact below 2^53);
    int32 when it fits, because sorting int32 is about twice as fast as int64.
    """
    total = 1
    for e in extents:
        total *= e
    if total >= 2**53:
        return None
    ex, ey, ez = extents[-3:]
    dtype = torch.float32 if total < 2**24 else torch.float64
    weights = torch.tensor([ey * ez, ez, 1], dtype=dtype, device=cell.device)
    key = cell.to(dtype) @ weights
    if batch is not None:
        key += batch.to(dtype) * float(ex * ey * ez)
    return key.int() if total < 2**31 else key.long()


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


def color_at(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    from ppkt.geometry import uv_to_ij

    ij = uv_to_ij(uv)
    return image[:, ij[:, 0], ij[:, 1]].t()


def _submanifold_cached(self, stride: int, kernel_size: int) -> KernelMap:
    key = (stride, kernel_size)
    if key not in self._submanifold:
        self._submanifold[key] = submanifold_map(self.coords(stride), stride, kernel_size)
    return self._submanifold[key]


def all_pairs_loss(model, batch, generator, num_pairs: int, tau: float, sampling: str) -> Tensor:
    """The previous step's model + loss: every pair embedded (the head on every voxel), then the
    loss drew its pairs (same generator use as ppkt.train.pair_sampling.sample_pairs)."""

    def draw(count):
        if count <= num_pairs:
            return torch.arange(count)
        return torch.randperm(count, generator=generator)[:num_pairs]

    def nce(points, pixels):
        points, pixels = F.normalize(points, dim=1), F.normalize(pixels, dim=1)
        logits = points @ pixels.t() / tau
        return F.cross_entropy(logits, torch.arange(points.shape[0], device=points.device))

    voxel_emb = model.head(model.backbone(batch.sparse.tensor).feats)
    points = voxel_emb[batch.sparse.point_to_voxel[batch.pair_point]]
    pixels = model.pixel_embeddings(batch)
    if sampling == "batch":
        idx = draw(points.shape[0]).to(points.device)
        return nce(points[idx], pixels[idx])
    losses = []
    group = batch.pair_frame.cpu()
    for frame in torch.unique(group).tolist():
        members = torch.nonzero(group == frame).squeeze(1)
        if members.numel() >= 2:
            idx = members[draw(members.numel())].to(points.device)
            losses.append(nce(points[idx], pixels[idx]))
    return torch.stack(losses).mean()


@contextmanager
def previous_implementation():
    """Within the block ppkt voxelises, builds kernel maps and reads colours the previous way, and
    back-projects without the numba kernels."""
    import ppkt.geometry
    import ppkt.sparse.tensor
    import ppkt.train.samples

    patches = [
        (ppkt.geometry, "voxelize", voxelize),
        (ppkt.sparse.tensor, "submanifold_map", submanifold_map),
        (ppkt.sparse.tensor, "downsample_map", downsample_map),
        (ppkt.sparse.tensor.CoordinateCache, "submanifold", _submanifold_cached),
        (ppkt.train.samples, "color_at", color_at),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        with compiled_kernels(False):  # the previous code had no compiled (numba) kernels
            yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)

"""Voxelisation: integer grid coordinates, the point-to-voxel map, one representative per voxel.

A point ``p`` falls in voxel ``floor(p / voxel_size)`` (per axis). One stable sort of a single
integer key per point gives everything: the voxels in ``(batch, x, y, z)`` order, each point's
voxel (so predictions on voxels return to the original points), and the lowest point index of
each voxel as its representative. Runs of consecutive points with one key (scan order: depth
images, sweeps) are collapsed before the sort. Deterministic on every device; ``O(N log N)``
time, ``O(N)`` memory.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ppkt.geometry.camera import _check_points
from ppkt.utils.compiled import use_compiled
from ppkt.utils.indexing import flat_nonzero, stable_sort_ints


def _check_offsets(batch_offsets, num_points: int, device: torch.device) -> Tensor:
    offsets = torch.as_tensor(batch_offsets, device=device)
    if offsets.dtype.is_floating_point or offsets.dtype == torch.bool:
        raise TypeError(f"batch_offsets must be integers, got {offsets.dtype}")
    offsets = offsets.long()
    if offsets.ndim != 1 or offsets.numel() < 2:
        raise ValueError(
            f"batch_offsets must be (B + 1,) = [0, n0, n0 + n1, ..., N], got shape {tuple(offsets.shape)}"
        )
    if int(offsets[0]) != 0 or int(offsets[-1]) != num_points:
        raise ValueError(
            f"batch_offsets must start at 0 and end at N={num_points}, "
            f"got {int(offsets[0])}..{int(offsets[-1])}"
        )
    if bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError("batch_offsets must be non-decreasing")
    return offsets


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
    if use_compiled() and points.device.type == "cpu" and points.dtype in (torch.float32, torch.float64):
        compiled = _voxelize_compiled(points, size, offsets)
        if compiled is not None:
            return compiled
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
        key = _lexicographic_key(cell, lo, hi, extents, batch)
        if key is None:  # extent too large for one exact key: exact but slower path
            coord = cell.long() if batch is None else torch.cat((batch[:, None], cell.long()), dim=1)
            _, key = torch.unique(coord, dim=0, return_inverse=True)
        point_to_voxel, voxel_point = _group_keys(key)
        grid_coord = cell.index_select(0, voxel_point).long()
        if batch is not None:
            grid_coord = torch.cat((batch.index_select(0, voxel_point)[:, None], grid_coord), dim=1)
    return grid_coord, point_to_voxel, voxel_point


def _voxelize_compiled(
    points: Tensor, size: Tensor, offsets: Tensor | None
) -> tuple[Tensor, Tensor, Tensor] | None:
    """:func:`voxelize` in five numba passes (``ppkt.geometry._kernels``): the same cells, keys,
    order and outputs as the torch path below, 1.3-1.5x faster on one CPU thread. None where
    the torch path must decide: NaN / inf (it raises), cells or keys beyond int64."""
    from ppkt.geometry import _kernels  # local: imports numba, only when a compiled path runs

    array = points.detach().contiguous().numpy()
    sizes = size.detach().reshape(-1).expand(3).contiguous().numpy()  # numel 1 or 3 (checked above)
    bounds = np.array([0, array.shape[0]]) if offsets is None else offsets.numpy()
    # int32 when it fits: the map is written and read once per point, so its width is time.
    run_of_point = np.empty(array.shape[0], np.int32 if array.shape[0] < 2**31 else np.int64)
    run_cell, run_start = _kernels.voxel_runs(array, sizes, bounds, run_of_point)
    lo, hi, ok = _kernels.run_bounds(run_cell)
    if not ok:
        return None
    extents = hi - lo + 1
    total = bounds.shape[0] - 1
    for e in extents.tolist():
        total *= e
    if total >= 2**62:
        return None
    keys, run_sample = _kernels.run_keys(run_cell, run_start, bounds, lo, extents)
    sorted_key, order = _kernels.stable_sort_by_key(keys, total)
    grid, point_to_voxel, voxel_point = _kernels.group_runs(
        run_cell, run_start, run_sample, sorted_key, order, run_of_point, offsets is not None
    )
    return torch.from_numpy(grid), torch.from_numpy(point_to_voxel), torch.from_numpy(voxel_point)


def _group_keys(key: Tensor) -> tuple[Tensor, Tensor]:
    """Voxel of each point (voxels in increasing key order) and the lowest point index per voxel.

    Points from a depth image or a sweep come in scan order, so neighbours usually share a voxel:
    runs of equal consecutive keys are collapsed first (one pass) and only the runs are sorted.
    On a 640x480 depth frame at 2.5 cm that sorts 2.5-5x fewer keys. The stable sort keeps equal
    keys in index order, so the first run of each voxel holds its lowest point index. Inputs
    without runs skip the collapse. ``nonzero`` and the sort go through ``ppkt.utils.indexing``
    (numpy on CPU, faster there than torch's: ``benchmarks/bench_indexing.py``; same result).
    """
    N = key.shape[0]
    device = key.device
    run_start = torch.ones(N, dtype=torch.bool, device=device)
    torch.ne(key[1:], key[:-1], out=run_start[1:])
    collapse = int(run_start.sum()) * 4 < N * 3
    if collapse:
        starts = flat_nonzero(run_start)  # first point of each run, increasing
    run_key = key.index_select(0, starts) if collapse else key
    sorted_key, order = stable_sort_ints(run_key)
    R = run_key.shape[0]
    new_voxel = torch.ones(R, dtype=torch.bool, device=device)
    torch.ne(sorted_key[1:], sorted_key[:-1], out=new_voxel[1:])
    voxel_of_sorted = torch.cumsum(new_voxel, dim=0)
    voxel_of_sorted -= 1
    voxel_of_run = torch.empty(R, dtype=torch.long, device=device)
    voxel_of_run.scatter_(0, order, voxel_of_sorted)
    first_run = order.index_select(0, flat_nonzero(new_voxel))
    if not collapse:
        return voxel_of_run, first_run
    # int32 halves the cumsum's memory traffic; index_select takes int32 indices.
    run_of_point = torch.cumsum(run_start, dim=0, dtype=torch.int32 if N < 2**31 else torch.long)
    run_of_point -= 1
    return voxel_of_run.index_select(0, run_of_point), starts.index_select(0, first_run)


def _lexicographic_key(
    cell: Tensor, lo: Tensor, hi: Tensor, extents: list[int], batch: Tensor | None
) -> Tensor | None:
    """One integer per point that orders like ``(batch, x, y, z)``, or None when it cannot be exact.

    ``cell`` holds integer-valued floats in ``[lo, hi]`` per axis. The key
    ``(cell - lo) . (ey ez, ez, 1)`` is one matrix-vector product on the unshifted cells minus
    one constant (shifting the ``(N, 3)`` cells first costs as much as the product): exact in
    float32 when every partial sum stays below 2^24 in magnitude, else in float64 below 2^53,
    else the cells are shifted first. int32 when the key fits, because narrower keys sort faster.
    """
    total = 1
    for e in extents:
        total *= e
    if total >= 2**53:
        return None
    ex, ey, ez = extents[-3:]
    weights = (ey * ez, ez, 1)
    lo_cells = [int(v) for v in lo.tolist()]
    hi_cells = [int(v) for v in hi.tolist()]
    offset = sum(w * v for w, v in zip(weights, lo_cells, strict=True))
    bound = sum(w * max(abs(a), abs(b)) for w, a, b in zip(weights, lo_cells, hi_cells, strict=True))
    bound += total  # the batch term and the result itself stay below total
    if bound < 2**53:
        dtype = torch.float32 if bound < 2**24 else torch.float64
        key = cell.to(dtype) @ torch.tensor(weights, dtype=dtype, device=cell.device)
        key -= offset
    else:  # far from the origin: shift to 0 first (a copy; the caller keeps the cells)
        dtype = torch.float32 if total < 2**24 else torch.float64
        key = (cell - lo).to(dtype) @ torch.tensor(weights, dtype=dtype, device=cell.device)
    if batch is not None:
        key += batch.to(dtype) * float(ex * ey * ez)
    return key.int() if total < 2**31 else key.long()

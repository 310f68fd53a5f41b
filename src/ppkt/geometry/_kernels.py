"""Compiled (numba) loops behind ``ppkt.geometry`` on the CPU; see ``ppkt.utils.compiled``.

Each kernel does what its torch counterpart does, with the same float operations in the same
dtype (IEEE division, multiplication and floor are exactly rounded, so the results are the same
bits), in one or two passes instead of a dozen. Callers check their inputs and pick the path;
these functions trust their arguments: C-contiguous numpy arrays of the dtypes named.
"""

from __future__ import annotations

import numpy as np

from ppkt.utils.compiled import njit

# Cells beyond this magnitude take the torch path, whose exactness rules cover them: here a cell
# must convert to int64 and a key stay below 2^63.
CELL_LIMIT = 2.0**61


@njit
def voxel_runs(points, size, offsets, run_of_point):
    """Each point's cell ``floor(points / size)``, collapsed to runs of consecutive points with
    the same cell (within one sample).

    points ``(N, 3)`` float32/64; size ``(3,)`` of the same dtype; offsets ``(B + 1,)`` int64
    sample boundaries (``[0, N]`` for one sample); run_of_point ``(N,)`` int32/64, filled with
    each point's run. Returns ``(run_cell (R, 3) points' dtype, run_start (R,) int64)``, runs in
    point order. Every point's cell is its run's cell, so :func:`run_bounds` checks the cells
    (NaN / inf / size) on the runs alone: a NaN cell differs from every cell, so it is a run.
    """
    n = points.shape[0]
    s0, s1, s2 = size[0], size[1], size[2]
    run_cell = np.empty((n + 1, 3), points.dtype)
    run_start = np.empty(n + 1, np.int64)
    runs = 0
    for b in range(offsets.shape[0] - 1):
        # -0.5 in the points' dtype: never a cell (cells are whole numbers), so the sample's
        # first point starts a run.
        x0 = y0 = z0 = s0 - s0 - s0 / s0 / 2
        for i in range(offsets[b], offsets[b + 1]):
            x = np.floor(points[i, 0] / s0)
            y = np.floor(points[i, 1] / s1)
            z = np.floor(points[i, 2] / s2)
            # Branch-free: a run starts about every third point of a depth frame, too irregular
            # for the branch predictor. The slot is written every time and kept on a new cell.
            run_cell[runs, 0] = x
            run_cell[runs, 1] = y
            run_cell[runs, 2] = z
            run_start[runs] = i
            runs += (x != x0) | (y != y0) | (z != z0)
            run_of_point[i] = runs - 1
            x0, y0, z0 = x, y, z
    return run_cell[:runs], run_start[:runs]


@njit
def run_bounds(run_cell):
    """Each axis' min and max cell, ``(lo (3,) int64, hi (3,) int64, ok)``; ``ok`` is False when
    a cell is NaN, infinite or beyond ``CELL_LIMIT`` (the caller then falls back to torch, which
    reports NaN / inf), and lo / hi mean nothing then."""
    x_lo = y_lo = z_lo = np.inf
    x_hi = y_hi = z_hi = -np.inf
    nan = 0  # NaN passes min / max unseen, so it is counted
    for r in range(run_cell.shape[0]):
        x, y, z = run_cell[r, 0], run_cell[r, 1], run_cell[r, 2]
        nan += (x != x) + (y != y) + (z != z)
        x_lo, y_lo, z_lo = min(x_lo, x), min(y_lo, y), min(z_lo, z)
        x_hi, y_hi, z_hi = max(x_hi, x), max(y_hi, y), max(z_hi, z)
    lo = np.zeros(3, np.int64)
    hi = np.zeros(3, np.int64)
    ok = nan == 0
    for value in (x_lo, y_lo, z_lo, x_hi, y_hi, z_hi):
        ok = ok and -CELL_LIMIT < value < CELL_LIMIT
    if ok:
        lo[0], lo[1], lo[2] = np.int64(x_lo), np.int64(y_lo), np.int64(z_lo)
        hi[0], hi[1], hi[2] = np.int64(x_hi), np.int64(y_hi), np.int64(z_hi)
    return lo, hi, ok


@njit
def run_keys(run_cell, run_start, offsets, lo, extents):
    """The lexicographic key ``((b * ex + x) * ey + y) * ez + z`` of each run (``b`` its sample,
    cells shifted by ``lo`` (``(3,)`` int64); extents ``(3,)`` int64 ``hi - lo + 1``).
    Returns ``(keys (R,), run_sample (R,))`` int64."""
    runs = run_cell.shape[0]
    ex, ey, ez = extents[0], extents[1], extents[2]
    keys = np.empty(runs, np.int64)
    run_sample = np.empty(runs, np.int64)
    b = 0
    for r in range(runs):
        while run_start[r] >= offsets[b + 1]:  # runs are in point order and never span samples
            b += 1
        x = np.int64(run_cell[r, 0]) - lo[0]
        y = np.int64(run_cell[r, 1]) - lo[1]
        z = np.int64(run_cell[r, 2]) - lo[2]
        keys[r] = ((b * ex + x) * ey + y) * ez + z
        run_sample[r] = b
    return keys, run_sample


@njit
def stable_sort_by_key(keys, total):
    """Indices ordering the non-negative int64 ``keys`` (all ``< total``), ties in index order:
    a least-significant-digit radix sort, 11-bit digits (each histogram fits the L1 cache).

    Returns ``(sorted_keys (R,), order (R,) int64)``.
    """
    count = keys.shape[0]
    bits = 0
    rest = total - 1
    while rest > 0:
        bits += 1
        rest >>= 1
    passes = (bits + 10) // 11
    order = np.arange(count)
    if passes == 0 or count < 2:
        return keys.copy(), order
    histogram = np.zeros((passes, 2049), np.int64)
    for r in range(count):
        k = keys[r]
        for p in range(passes):
            histogram[p, ((k >> (11 * p)) & 2047) + 1] += 1
    for p in range(passes):
        for d in range(2048):
            histogram[p, d + 1] += histogram[p, d]
    src_key, src_order = keys.copy(), order
    dst_key, dst_order = np.empty_like(keys), np.empty_like(order)
    for p in range(passes):
        shift = 11 * p
        # A digit every key shares moves nothing: skip the pass (common for the high digits).
        if (
            histogram[p, ((src_key[0] >> shift) & 2047) + 1] - histogram[p, (src_key[0] >> shift) & 2047]
            == count
        ):
            continue
        position = histogram[p]
        for r in range(count):
            k = src_key[r]
            d = (k >> shift) & 2047
            slot = position[d]
            position[d] = slot + 1
            dst_key[slot] = k
            dst_order[slot] = src_order[r]
        src_key, dst_key = dst_key, src_key
        src_order, dst_order = dst_order, src_order
    return src_key, src_order


@njit
def group_runs(run_cell, run_start, run_sample, sorted_key, order, run_of_point, batched):
    """Voxels from the sorted runs: each point's voxel (voxels in key order), each voxel's lowest
    point index, and its grid coordinate (its cell; ``[b, x, y, z]`` when batched).

    Returns ``(grid_coord (M, 3 or 4) int64, point_to_voxel (N,) int64, voxel_point (M,) int64)``.
    """
    runs = run_start.shape[0]
    voxel_of_run = np.empty(runs, np.int64)
    voxel_run = np.empty(runs, np.int64)
    voxels = 0
    previous = -1
    for s in range(runs):
        r = order[s]
        key = sorted_key[s]
        # Runs are in point order and the sort is stable: the first run of a voxel holds its
        # lowest point index. Branch-free, as in voxel_runs.
        voxel_run[voxels] = r
        voxels += key != previous
        voxel_of_run[r] = voxels - 1
        previous = key
    num_points = run_of_point.shape[0]
    point_to_voxel = np.empty(num_points, np.int64)
    for i in range(num_points):
        point_to_voxel[i] = voxel_of_run[run_of_point[i]]
    columns = 4 if batched else 3
    first = columns - 3
    grid = np.empty((voxels, columns), np.int64)
    voxel_point = np.empty(voxels, np.int64)
    for m in range(voxels):
        r = voxel_run[m]
        voxel_point[m] = run_start[r]
        if batched:
            grid[m, 0] = run_sample[r]
        grid[m, first] = np.int64(run_cell[r, 0])
        grid[m, first + 1] = np.int64(run_cell[r, 1])
        grid[m, first + 2] = np.int64(run_cell[r, 2])
    return grid, point_to_voxel, voxel_point


@njit
def registered_pairs(depth, min_depth, max_depth, max_inclusive, row_ok, col_ok, ray_x, ray_y, u_col, v_row):
    """Points and colour ``uv`` of the valid depth pixels of a registered RGB-D frame, row-major.

    depth ``(H, W)`` float32/64; min/max_depth scalars of depth's dtype (the torch comparisons
    run in that dtype too); row_ok ``(H,)`` / col_ok ``(W,)`` bool, rows / columns that land in
    the colour image; ray_x ``(W,)``, ray_y ``(H,)`` of depth's dtype; u_col ``(W,)``, v_row
    ``(H,)`` float32. A pixel is kept when ``min_depth < z`` and ``z <= max_depth`` (``<`` when not
    ``max_inclusive``). Returns ``(points (N, 3) depth's dtype, uv (N, 2) float32)``.
    """
    H, W = depth.shape
    n = 0
    for i in range(H):
        if row_ok[i]:
            for j in range(W):
                z = depth[i, j]
                if col_ok[j] and z > min_depth and (z <= max_depth if max_inclusive else z < max_depth):
                    n += 1
    points = np.empty((n, 3), depth.dtype)
    uv = np.empty((n, 2), np.float32)
    k = 0
    for i in range(H):
        if not row_ok[i]:
            continue
        ry, v = ray_y[i], v_row[i]
        for j in range(W):
            z = depth[i, j]
            if col_ok[j] and z > min_depth and (z <= max_depth if max_inclusive else z < max_depth):
                points[k, 0] = ray_x[j] * z
                points[k, 1] = ry * z
                points[k, 2] = z
                uv[k, 0] = u_col[j]
                uv[k, 1] = v
                k += 1
    return points, uv


@njit
def nearest_pixels(flat_image, uv, half, height, width):
    """Rows of ``flat_image (H * W, C)`` at the pixels containing ``uv (N, 2)`` (float32/64):
    pixel ``(floor(v + 0.5), floor(u + 0.5))``, with ``half`` = 0.5 in uv's dtype (so the add
    rounds as torch's does). Returns ``(values (N, C), ok)``; ``ok`` is False when a ``uv`` falls
    outside the image (or is NaN)."""
    n = uv.shape[0]
    channels = flat_image.shape[1]
    out = np.empty((n, channels), flat_image.dtype)
    for k in range(n):
        u = np.floor(uv[k, 0] + half)
        v = np.floor(uv[k, 1] + half)
        if not (0 <= u < width and 0 <= v < height):
            return out, False
        row = np.int64(v) * width + np.int64(u)
        for c in range(channels):
            out[k, c] = flat_image[row, c]
    return out, True

"""Index primitives with a faster CPU path: the nonzero entries of a mask, a stable integer sort.

On CPU, torch's ``nonzero`` and stable ``sort`` are several times slower than numpy's
(``python benchmarks/bench_indexing.py`` prints the ratios on a depth frame's masks and voxel
keys), and voxelising a frame calls both. Every function returns the same values, dtypes and
order on every path, so callers stay device-agnostic: CPU tensors go through numpy (zero-copy),
other devices through torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def flat_nonzero(mask: Tensor) -> Tensor:
    """``(K,)`` long, increasing flat (row-major) indices of the set entries of a bool ``mask``."""
    if mask.dtype != torch.bool:
        raise TypeError(f"flat_nonzero takes a bool mask, got {mask.dtype}")
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()).astype(np.int64, copy=False))
    return mask.reshape(-1).nonzero().squeeze(1)


def nonzero_rows_cols(mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(flat, rows, cols)``: the set entries of an ``(H, W)`` bool ``mask`` in row-major order,
    as ``(K,)`` long flat indices ``rows * W + cols`` and their rows and columns."""
    if mask.dtype != torch.bool or mask.ndim != 2:
        raise TypeError(f"nonzero_rows_cols takes an (H, W) bool mask, got {mask.dtype} {tuple(mask.shape)}")
    H, W = mask.shape
    if mask.device.type == "cpu":
        # numpy's flat nonzero plus one repeat per row beats torch.nonzero's (K, 2) by ~1.6x.
        m = mask.numpy()
        flat = np.flatnonzero(m).astype(np.int64, copy=False)
        rows = np.repeat(np.arange(H, dtype=np.int64), np.count_nonzero(m, axis=1))
        cols = flat - rows * W
        return torch.from_numpy(flat), torch.from_numpy(rows), torch.from_numpy(cols)
    ij = torch.nonzero(mask)
    rows, cols = ij[:, 0], ij[:, 1]
    return rows * W + cols, rows, cols


def stable_sort_ints(key: Tensor) -> tuple[Tensor, Tensor]:
    """``(sorted_key, order)`` of a 1-D integer tensor, ties in index order (a stable sort).

    ``sorted_key`` is ``key[order]`` (``key``'s dtype); ``order`` is long.
    """
    if key.ndim != 1 or key.dtype.is_floating_point or key.dtype == torch.bool:
        raise TypeError(f"stable_sort_ints takes a 1-D integer tensor, got {key.dtype} {tuple(key.shape)}")
    if key.device.type != "cpu":
        return torch.sort(key, stable=True)
    sorted_key, order = _stable_sort_ints_numpy(key.numpy())
    return sorted_key.to(key.dtype), order


def _stable_sort_ints_numpy(key: np.ndarray) -> tuple[Tensor, Tensor]:
    R = key.shape[0]
    if R == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty.clone()
    bits = max((R - 1).bit_length(), 1)
    lo, hi = int(key.min()), int(key.max())
    if lo < 0 or hi >= 2 ** (62 - bits):
        # Packing needs non-negative keys with room for the index bits; numpy's stable argsort
        # (timsort / radix) is slower but exact for any key.
        order = np.argsort(key, kind="stable")
        return torch.from_numpy(key[order].astype(np.int64)), torch.from_numpy(order.astype(np.int64))
    # key * 2^bits + index: equal keys order by index, so numpy's (unstable, SIMD) value sort of
    # the packed integers is a stable argsort of the keys.
    packed = key.astype(np.int64)
    packed <<= bits
    packed |= np.arange(R, dtype=np.int64)
    packed.sort()
    order = packed & ((1 << bits) - 1)
    packed >>= bits
    return torch.from_numpy(packed), torch.from_numpy(order)

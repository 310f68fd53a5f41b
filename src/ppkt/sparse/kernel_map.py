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

Neighbour search: the sites of a level are written into a dense lookup table over their
bounding boxes (one box per batch sample, padded by the kernel radius so that no query leaves its
sample's box), and all ``K * M`` neighbour queries are ``K * M`` table reads: ``O(K * M + volume)``.
When the boxes hold too many cells for the sites (:data:`MAX_CELLS_PER_SITE`), the queries fall
back to one ``torch.searchsorted`` over sorted packed keys, ``O(K * M * log M)``. Both give the
same map. A smaller odd kernel's map at a stride is cut out of a larger one's
(:meth:`KernelMap.restrict`) instead of searched again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ppkt.utils.indexing import stable_sort_ints

# Key layout: 12 bits batch, 17 bits per spatial axis (63 bits, keeps int64 keys positive).
_AXIS_BITS = 17
_BATCH_BITS = 12
_AXIS_BIAS = 1 << (_AXIS_BITS - 1)
# Queries reach at most (kernel // 2) * stride beyond a site; this margin keeps them packable.
_QUERY_MARGIN = 1 << 10
COORD_MIN = -_AXIS_BIAS + _QUERY_MARGIN
COORD_MAX = _AXIS_BIAS - _QUERY_MARGIN - 1
MAX_BATCH = (1 << _BATCH_BITS) - 1
MAX_CELLS_PER_SITE = 64
"""A dense lookup table is used while its cells number at most this many per site (or 2^22 cells);
int32 cells, so at most 256 bytes per site, freed when the map is built. A room scanned at 2.5 cm
has ~50 bounding-box cells per occupied voxel at the finest level, fewer at coarser ones."""
_MIN_TABLE_CELLS = 1 << 22
_SMALL_QUERIES = 1 << 16
# Table reads per batched gather (submanifold_map off the CPU): 2^25 reads keep its temporaries
# (indices, reads, mask, nonzero) near 0.5 GB at the most.
_BATCHED_READS = 1 << 25


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
    # neighbour_table's cache, keyed by the orientation of the map it was built for; a transposed
    # map shares it (with _flipped set), so an up-sampling layer reuses the down-sampling tables.
    # Not constructor arguments: a map built from other pairs (dataclasses.replace too) starts empty.
    _tables: dict = field(default_factory=dict, init=False, compare=False, repr=False)
    _flipped: bool = field(default=False, init=False, compare=False, repr=False)

    @property
    def kernel_volume(self) -> int:
        return int(self.offset_counts.numel())

    def transposed(self) -> KernelMap:
        """The same pairs with input and output swapped (for transposed convolution)."""
        flipped = KernelMap(
            self.out_index, self.in_index, self.offset_counts, self.num_out, self.num_in, self.identity_offset
        )
        object.__setattr__(flipped, "_tables", self._tables)  # frozen: the shared cache is set once
        object.__setattr__(flipped, "_flipped", not self._flipped)
        return flipped

    def neighbour_table(self, by_out: bool = True) -> torch.Tensor:
        """The pairs as a dense table, for convolutions done as one gather and one matrix product.

        ``by_out=True``: ``(num_out, K)`` int32 (int64 beyond 2^31 rows), entry ``[o, k]`` = the
        input row paired with output ``o`` at offset ``k``, or ``num_in`` where there is none (a
        zero row the convolution appends). ``by_out=False``: ``(num_in, K)``, output rows, or
        ``num_out``. A convolution pairs an output and an offset with at most one input (and an
        input and an offset with at most one output), so the table holds every pair. Built once
        per map and cached on the device of the indices.
        """
        key = by_out != self._flipped
        table = self._tables.get(key)
        if table is None:
            rows, values, fill = (
                (self.out_index, self.in_index, self.num_in)
                if by_out
                else (self.in_index, self.out_index, self.num_out)
            )
            num_rows = self.num_out if by_out else self.num_in
            device = rows.device
            K = self.kernel_volume
            offset = torch.repeat_interleave(
                torch.arange(K, device=device), self.offset_counts.to(device), output_size=rows.numel()
            )
            dtype = torch.int32 if max(fill, num_rows) < 2**31 else torch.long
            table = torch.full((num_rows, K), fill, dtype=dtype, device=device)
            table[rows, offset] = values.to(dtype)
            self._tables[key] = table
        return table

    def split(self) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """``[(k, in_index_k, out_index_k)]`` for every offset with at least one pair."""
        result = []
        start = 0
        for k, n in enumerate(self.offset_counts.tolist()):
            if n > 0:
                result.append((k, self.in_index[start : start + n], self.out_index[start : start + n]))
            start += n
        return result

    def restrict(self, kernel_size: int, smaller: int) -> KernelMap:
        """The map of the centred ``smaller`` odd kernel, cut out of this ``kernel_size`` map.

        Both kernels' offsets are ordered x-slowest, so the smaller kernel's offsets are a subset of
        the larger one's in the same order; their pair groups are copied unchanged (the same map a
        search would give, pair for pair).
        """
        if kernel_size % 2 != 1 or smaller % 2 != 1 or smaller > kernel_size:
            raise ValueError(
                f"restrict: need odd kernels smaller <= kernel_size, got {smaller}, {kernel_size}"
            )
        if self.kernel_volume != kernel_size**3:
            raise ValueError(f"restrict: this map has {self.kernel_volume} offsets, not {kernel_size}^3")
        margin = (kernel_size - smaller) // 2
        r = torch.arange(margin, margin + smaller)
        keep = ((r[:, None, None] * kernel_size + r[None, :, None]) * kernel_size + r[None, None, :]).reshape(
            -1
        )
        counts = self.offset_counts
        starts = torch.cumsum(counts, 0) - counts
        in_parts, out_parts = [], []
        for k in keep.tolist():
            a, n = int(starts[k]), int(counts[k])
            in_parts.append(self.in_index[a : a + n])
            out_parts.append(self.out_index[a : a + n])
        centre = smaller**3 // 2 if self.identity_offset >= 0 else -1
        return KernelMap(
            torch.cat(in_parts), torch.cat(out_parts), counts[keep].clone(), self.num_in, self.num_out, centre
        )

    def num_macs(self, in_channels: int, out_channels: int) -> int:
        """Multiply-accumulates of one forward pass through this map."""
        return int(self.in_index.numel()) * in_channels * out_channels


@dataclass(frozen=True)
class _DenseGrid:
    """Sites of one level laid out in a dense table: ``key`` (M,) long cell of each site, and
    ``strides`` the key step of one cell along x, y, z. Cell keys increase with
    (batch, x, y, z), so sorting by key is the lexicographic order of the coordinates."""

    key: torch.Tensor
    strides: tuple[int, int, int]
    num_cells: int


def _dense_grid(coords: torch.Tensor, stride: int, pad: int, max_cells: int) -> _DenseGrid | None:
    """Lay ``coords`` (M, 4) (spatial parts multiples of ``stride``) out in per-sample boxes padded
    by ``pad`` cells on every side, or None when the boxes hold more than ``max_cells`` cells."""
    batch = coords[:, 0]
    cell = torch.div(coords[:, 1:], stride, rounding_mode="floor")
    num_samples = int(batch.max()) + 1
    index = batch[:, None].expand(-1, 3)
    lo = cell.new_zeros(num_samples, 3).scatter_reduce_(0, index, cell, "amin", include_self=False)
    hi = cell.new_zeros(num_samples, 3).scatter_reduce_(0, index, cell, "amax", include_self=False)
    present = (torch.bincount(batch, minlength=num_samples) > 0)[:, None]
    lo = torch.where(present, lo - pad, 0)
    extent = torch.where(present, hi + pad - lo + 1, 0)  # absent samples take no cells
    ext_y, ext_z = int(extent[:, 1].max()), int(extent[:, 2].max())
    volume = extent[:, 0] * (ext_y * ext_z)
    num_cells = int(volume.sum())
    if num_cells > max_cells:
        return None
    base = torch.cumsum(volume, 0) - volume
    rel = cell - lo.index_select(0, batch)
    key = base.index_select(0, batch) + (rel[:, 0] * ext_y + rel[:, 1]) * ext_z + rel[:, 2]
    return _DenseGrid(key, (ext_y * ext_z, ext_z, 1), num_cells)


def _max_table_cells(num_sites: int) -> int:
    return max(_MIN_TABLE_CELLS, MAX_CELLS_PER_SITE * num_sites)


def submanifold_map(
    coords: torch.Tensor, stride: int, kernel_size: int, *, batched: bool | None = None
) -> KernelMap:
    """Kernel map of a submanifold convolution: output sites are the input sites.

    Args:
        coords: ``(M, 4)`` long, unique (batch, x, y, z), multiples of ``stride``.
        stride: tensor stride of ``coords``.
        kernel_size: odd kernel size.
        batched: read the lookup table for all searched offsets at once (one ``(K, M)`` gather and
            one ``nonzero``) instead of offset by offset. The same map either way (tested). None
            means: on anything but the CPU. On a GPU each offset's ``nonzero`` is a host sync plus
            a few launches (13 per kernel-3 map, 62 per kernel-5 map); on the CPU the per-offset
            loop stays in cache.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"submanifold convolution needs an odd kernel size, got {kernel_size}")
    m = coords.shape[0]
    device = coords.device
    unit_offsets = kernel_offsets(kernel_size, device)  # (K, 3) in cells of this stride
    k_vol = unit_offsets.shape[0]
    centre = k_vol // 2
    if m == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return KernelMap(empty, empty, torch.zeros(k_vol, dtype=torch.long), 0, 0, centre)
    # Small levels: one vectorised binary search beats a Python loop over the offsets.
    small = m * k_vol < _SMALL_QUERIES
    grid = None if small else _dense_grid(coords, stride, kernel_size // 2, _max_table_cells(m))
    if grid is None:
        return _submanifold_map_sorted(coords, stride, kernel_size)
    key = grid.key.int() if grid.num_cells < 2**31 else grid.key
    table = torch.full((grid.num_cells,), -1, dtype=key.dtype, device=device)
    rows = torch.arange(m, dtype=key.dtype, device=device)
    table[key] = rows
    if not bool(torch.equal(table.index_select(0, key), rows)):
        raise ValueError("sparse coordinates must be unique rows (voxelise the points first)")
    sx, sy, sz = grid.strides
    delta = (unit_offsets[:, 0] * sx + unit_offsets[:, 1] * sy + unit_offsets[:, 2] * sz).tolist()
    # With the sites in increasing key order (voxelize's and every coarsening's output), the
    # pairs of offset -d are those of +d swapped and already in output-row order: only half of
    # the offsets are searched.
    mirrored = bool((key[1:] > key[:-1]).all())
    if batched is None:
        batched = device.type != "cpu"
    # The offsets searched: all of them, or with mirroring those before the centre.
    searched = [k for k in range(k_vol) if k != centre and not (mirrored and k > centre)]
    found: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    if batched and searched:
        # Offsets in chunks of at most _BATCHED_READS reads, so that the (K, M) temporaries stay
        # bounded (kernel 5 without mirroring searches 124 offsets).
        per_chunk = max(1, _BATCHED_READS // m)
        for first in range(0, len(searched), per_chunk):
            chunk = searched[first : first + per_chunk]
            deltas = torch.tensor([delta[k] for k in chunk], dtype=key.dtype, device=device)
            # (K_chunk * M,) reads, offset-major; the flat nonzero keeps that order: grouped by
            # offset, then output row (as the loop's).
            neighbours = table.index_select(0, (key[None, :] + deltas[:, None]).reshape(-1))
            flat = (neighbours >= 0).nonzero().squeeze(1)
            in_idx = neighbours.index_select(0, flat).long()
            k_idx = torch.div(flat, m, rounding_mode="floor")
            out_idx = flat - k_idx * m
            sizes = torch.bincount(k_idx, minlength=len(chunk)).tolist()
            for k, i, o in zip(chunk, in_idx.split(sizes), out_idx.split(sizes), strict=True):
                found[k] = (i, o)
    else:
        for k in searched:
            # Site i looks at i + offset_k (cross-correlation); the padding keeps every query
            # inside its own sample's box.
            neighbour = table.index_select(0, key + delta[k])
            out_idx = (neighbour >= 0).nonzero().squeeze(1)
            found[k] = (neighbour.index_select(0, out_idx).long(), out_idx)
    # In offset order; a mirrored offset is the searched one at k_vol - 1 - k, swapped.
    in_parts: list[torch.Tensor] = []
    out_parts: list[torch.Tensor] = []
    for k in range(k_vol):
        if k == centre:
            in_parts.append(torch.arange(m, device=device))
            out_parts.append(in_parts[-1])
        elif k in found:
            in_parts.append(found[k][0])
            out_parts.append(found[k][1])
        else:
            in_parts.append(found[k_vol - 1 - k][1])
            out_parts.append(found[k_vol - 1 - k][0])
    counts = torch.tensor([p.numel() for p in in_parts], dtype=torch.long)
    return KernelMap(torch.cat(in_parts), torch.cat(out_parts), counts, m, m, centre)


def _submanifold_map_sorted(coords: torch.Tensor, stride: int, kernel_size: int) -> KernelMap:
    """:func:`submanifold_map` by binary search over sorted packed keys (any extent, slower)."""
    m = coords.shape[0]
    device = coords.device
    offsets = kernel_offsets(kernel_size, device) * stride  # (K, 3)
    k_vol = offsets.shape[0]
    centre = k_vol // 2
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
    """Coarse sites ``floor(x / 2s) * 2s`` and the kernel-2 / stride-2 map from ``coords``.

    Coarse sites are sorted by (batch, x, y, z); within each offset the pairs follow the fine rows.
    """
    device = coords.device
    s2 = 2 * stride
    m = coords.shape[0]
    coarse = coords.clone()
    coarse[:, 1:] = torch.div(coords[:, 1:], s2, rounding_mode="floor") * s2
    if m == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        km = KernelMap(empty, empty, torch.zeros(8, dtype=torch.long), 0, 0)
        return Downsampling(coarse, km)
    # One sort-based unique of the packed keys (measured faster here than a dense table: the
    # coarse boxes hold many cells per site and there are no neighbour queries to amortise them).
    unique_keys, inverse = torch.unique(pack_keys(coarse), sorted=True, return_inverse=True)
    num_coarse = int(unique_keys.shape[0])
    # Every fine site of a coarse site has the same coarse coordinates: any one of them will do.
    member = torch.empty(num_coarse, dtype=torch.long, device=device)
    member[inverse] = torch.arange(m, device=device)
    coarse_coords = coarse.index_select(0, member)
    local = torch.div(coords[:, 1:] - coarse[:, 1:], stride, rounding_mode="floor")  # in {0, 1}
    k = (local[:, 0] * 2 + local[:, 1]) * 2 + local[:, 2]
    # Stable grouping by offset (fine rows ascending within each): one stable sort of k, numpy's
    # on CPU (faster there than 8 nonzero passes: benchmarks/bench_indexing.py), and no host
    # sync per offset elsewhere.
    _, order = stable_sort_ints(k)
    counts = torch.bincount(k, minlength=8).cpu()
    km = KernelMap(order, inverse.index_select(0, order), counts, m, num_coarse)
    return Downsampling(coarse_coords, km)

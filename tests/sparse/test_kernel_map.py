"""Kernel maps: the dense-table search, the sorted-key search (the previous implementation, kept as
the fallback) and maps cut out of larger kernels give the same pairs; convolutions on the dense
path equal dense conv3d."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ppkt.sparse import SparseTensor, SubmanifoldConv3d
from ppkt.sparse import kernel_map as km


def _same(a: km.KernelMap, b: km.KernelMap) -> None:
    assert torch.equal(a.offset_counts, b.offset_counts)
    assert torch.equal(a.in_index, b.in_index) and torch.equal(a.out_index, b.out_index)
    assert (a.num_in, a.num_out, a.identity_offset) == (b.num_in, b.num_out, b.identity_offset)


def _sites(seed: int, n: int, spread: int, batches: int = 3, stride: int = 1, shuffle: bool = False):
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randint(-spread, spread, (n, 3), generator=g) * stride
    b = torch.randint(0, batches, (n, 1), generator=g) * 2  # odd batch ids left empty
    coords = torch.unique(torch.cat([b, xyz], 1), dim=0)  # sorted rows
    if shuffle:
        coords = coords[torch.randperm(len(coords), generator=g)]
    return coords


@pytest.fixture
def dense_always(monkeypatch):
    """Force the dense-table path even for small levels."""
    monkeypatch.setattr(km, "_SMALL_QUERIES", 0)


@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("stride", [1, 4])
@pytest.mark.parametrize("shuffle", [False, True], ids=["sorted", "shuffled"])
def test_dense_table_equals_sorted_search(dense_always, kernel_size, stride, shuffle):
    coords = _sites(0, 3000, 12, stride=stride, shuffle=shuffle)
    _same(
        km.submanifold_map(coords, stride, kernel_size),
        km._submanifold_map_sorted(coords, stride, kernel_size),
    )


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("shuffle", [False, True], ids=["mirrored", "shuffled"])
def test_batched_table_reads_equal_the_per_offset_loop(dense_always, kernel_size, shuffle):
    """All searched offsets read in one (K, M) gather (the default off the CPU) give the map of the
    per-offset loop, with and without the mirrored half; also with offsets that find nothing."""
    coords = _sites(1, 2500, 10, stride=2, shuffle=shuffle)
    for cloud in (coords, coords[:1], coords[::50]):
        batched = km.submanifold_map(cloud, 2, kernel_size, batched=True)
        _same(batched, km.submanifold_map(cloud, 2, kernel_size, batched=False))
        _same(batched, km._submanifold_map_sorted(cloud, 2, kernel_size))


def test_batched_table_reads_in_chunks_equal_one_batch(dense_always, monkeypatch):
    """Offsets read a few at a time (the reads' cap) give the map of one batched read."""
    coords = _sites(2, 2000, 10, shuffle=True)
    whole = km.submanifold_map(coords, 1, 5, batched=True)
    monkeypatch.setattr(km, "_BATCHED_READS", 3 * len(coords) + 1)  # 3 offsets a chunk
    _same(km.submanifold_map(coords, 1, 5, batched=True), whole)
    monkeypatch.setattr(km, "_BATCHED_READS", 1)  # one offset a chunk
    _same(km.submanifold_map(coords, 1, 5, batched=True), whole)


def test_too_many_cells_fall_back_to_sorted_search(dense_always, monkeypatch):
    coords = _sites(1, 200, 60, batches=1)  # a sparse spread: many cells per site
    assert km._dense_grid(coords, 1, 1, km._max_table_cells(len(coords))) is not None
    monkeypatch.setattr(km, "_MIN_TABLE_CELLS", 0)
    monkeypatch.setattr(km, "MAX_CELLS_PER_SITE", 1)
    assert km._dense_grid(coords, 1, 1, km._max_table_cells(len(coords))) is None
    _same(km.submanifold_map(coords, 1, 3), km._submanifold_map_sorted(coords, 1, 3))


def test_extreme_coordinates_and_one_site(dense_always):
    far = torch.tensor(
        [[0, km.COORD_MIN, 0, km.COORD_MAX], [0, km.COORD_MIN + 1, 0, km.COORD_MAX], [5, 0, 0, 0]]
    )
    _same(km.submanifold_map(far, 1, 3), km._submanifold_map_sorted(far, 1, 3))
    one = torch.tensor([[2, -7, 3, 1]])
    m = km.submanifold_map(one, 1, 5)
    assert m.in_index.tolist() == [0] and m.offset_counts.sum() == 1 and m.offset_counts[62] == 1


def test_duplicate_sites_are_rejected_on_the_dense_path(dense_always):
    coords = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3], [0, 4, 4, 4]])
    with pytest.raises(ValueError, match="unique rows"):
        km.submanifold_map(coords, 1, 3)


@pytest.mark.parametrize("shuffle", [False, True], ids=["sorted", "shuffled"])
def test_restricted_map_equals_searched_map(shuffle):
    coords = _sites(2, 2000, 10, stride=2, shuffle=shuffle)
    for big, small in ((5, 3), (5, 1), (3, 1), (7, 5)):
        cut = km.submanifold_map(coords, 2, big).restrict(big, small)
        _same(cut, km._submanifold_map_sorted(coords, 2, small))
    with pytest.raises(ValueError, match="restrict"):
        km.submanifold_map(coords, 1, 3).restrict(3, 5)


def test_cache_cuts_the_block_map_out_of_the_stem_map():
    coords = _sites(3, 500, 6)
    x = SparseTensor(coords, torch.randn(len(coords), 2))
    x.cache.submanifold(1, 5)
    _same(x.cache.submanifold(1, 3), km._submanifold_map_sorted(coords, 1, 3))


def test_downsampling_matches_previous_implementation():
    def previous(coords, stride):
        s2 = 2 * stride
        coarse = coords.clone()
        coarse[:, 1:] = torch.div(coords[:, 1:], s2, rounding_mode="floor") * s2
        keys = km.pack_keys(coarse)
        unique_keys, inverse = torch.unique(keys, sorted=True, return_inverse=True)
        first = torch.full((unique_keys.shape[0],), coords.shape[0], dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(coords.shape[0]), reduce="amin")
        local = torch.div(coords[:, 1:] - coarse[:, 1:], stride, rounding_mode="floor")
        k = (local[:, 0] * 2 + local[:, 1]) * 2 + local[:, 2]
        order = torch.sort(k, stable=True).indices
        return coarse[first], order, inverse[order], torch.bincount(k, minlength=8)

    for shuffle in (False, True):
        for stride in (1, 2):
            coords = _sites(4, 3000, 9, stride=stride, shuffle=shuffle)
            down = km.downsample_map(coords, stride)
            coarse, in_index, out_index, counts = previous(coords, stride)
            assert torch.equal(down.coarse_coords, coarse)
            assert torch.equal(down.kernel_map.in_index, in_index)
            assert torch.equal(down.kernel_map.out_index, out_index)
            assert torch.equal(down.kernel_map.offset_counts, counts)


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_dense_path_convolution_equals_dense_conv3d(dense_always, kernel_size):
    g = torch.Generator().manual_seed(5)
    grid, origin = 7, torch.tensor([-3, 2, -1])
    xyz = (torch.rand(grid, grid, grid, generator=g) < 0.4).nonzero() + origin
    coords = torch.cat([torch.zeros(len(xyz), 1, dtype=torch.long), xyz], 1)
    feats = torch.randn(len(coords), 3, dtype=torch.float64, generator=g)
    conv = SubmanifoldConv3d(3, 4, kernel_size).double()
    out = conv(SparseTensor(coords, feats)).feats
    dense = feats.new_zeros(1, 3, grid, grid, grid)
    local = xyz - origin
    dense[0, :, local[:, 0], local[:, 1], local[:, 2]] = feats.t()
    w = conv.weight.detach().permute(2, 1, 0).reshape(4, 3, kernel_size, kernel_size, kernel_size)
    ref = F.conv3d(dense, w, padding=kernel_size // 2)[0, :, local[:, 0], local[:, 1], local[:, 2]].t()
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_neighbour_table_holds_every_pair_and_is_shared_with_the_transposed_map():
    # 3 inputs, 2 outputs, 2 offsets: offset 0 pairs (0->0), (2->1); offset 1 pairs (1->0)
    kmap = km.KernelMap(torch.tensor([0, 2, 1]), torch.tensor([0, 1, 0]), torch.tensor([2, 1]), 3, 2)
    assert kmap.neighbour_table(by_out=True).tolist() == [[0, 1], [2, 3]]  # 3 = num_in: none
    assert kmap.neighbour_table(by_out=False).tolist() == [[0, 2], [2, 0], [1, 2]]  # 2 = num_out
    assert kmap.neighbour_table().dtype == torch.int32
    t = kmap.transposed()
    assert t.neighbour_table(by_out=True) is kmap.neighbour_table(by_out=False)
    assert t.neighbour_table(by_out=False) is kmap.neighbour_table(by_out=True)
    assert t.transposed().neighbour_table() is kmap.neighbour_table()
    # a map with other pairs never inherits the cache
    other = dataclasses.replace(kmap, in_index=torch.tensor([1, 0, 2]))
    assert other.neighbour_table(by_out=True).tolist() == [[1, 2], [0, 3]]

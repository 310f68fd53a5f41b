import pytest
import torch

from ppkt.geometry import voxelize


def naive_voxelize(points: torch.Tensor, size: float, batch: list[int] | None = None):
    """Dictionary-based reference: voxel key -> lowest point index, sorted keys."""
    first: dict[tuple[int, ...], int] = {}
    keys = []
    for n, p in enumerate(points.tolist()):
        key = tuple(int(torch.floor(torch.tensor(c, dtype=points.dtype) / size)) for c in p)
        if batch is not None:
            key = (batch[n],) + key
        keys.append(key)
        first.setdefault(key, n)
    order = sorted(first)
    row = {k: r for r, k in enumerate(order)}
    return (
        torch.tensor(order, dtype=torch.long).reshape(-1, 3 if batch is None else 4),
        torch.tensor([row[k] for k in keys], dtype=torch.long),
        torch.tensor([first[k] for k in order], dtype=torch.long),
    )


def test_hand_computed(dtype):
    x = torch.tensor([0.05, -0.01, 0.09, 0.1, -0.05], dtype=dtype)
    points = torch.stack([x, torch.tensor([0, 0, 0.02, 0, 0], dtype=dtype), torch.zeros_like(x)], 1)
    grid, p2v, rep = voxelize(points, 0.1)
    assert grid.tolist() == [[-1, 0, 0], [0, 0, 0], [1, 0, 0]]
    assert p2v.tolist() == [1, 0, 1, 2, 0]
    assert rep.tolist() == [1, 0, 3]


def test_matches_naive_reference(dtype):
    g = torch.Generator().manual_seed(0)
    points = (torch.randn(400, 3, generator=g, dtype=torch.float64) * 0.3).to(dtype)
    grid, p2v, rep = voxelize(points, 0.1)
    ref = naive_voxelize(points, 0.1)
    for a, b in zip((grid, p2v, rep), ref, strict=True):
        assert torch.equal(a, b)


def test_batched_matches_naive_reference():
    g = torch.Generator().manual_seed(1)
    points = torch.rand(300, 3, generator=g) * 0.5
    offsets = [0, 100, 100, 300]  # sample 1 is empty
    batch = [0] * 100 + [2] * 200
    grid, p2v, rep = voxelize(points, 0.1, batch_offsets=torch.tensor(offsets))
    ref = naive_voxelize(points, 0.1, batch)
    for a, b in zip((grid, p2v, rep), ref, strict=True):
        assert torch.equal(a, b)
    assert grid.shape[1] == 4 and set(grid[:, 0].tolist()) == {0, 2}


def test_inverse_map_is_consistent_and_sorted(dtype):
    g = torch.Generator().manual_seed(2)
    points = (torch.rand(20000, 3, generator=g, dtype=torch.float64) * 4 - 2).to(dtype)
    size = 0.025
    grid, p2v, rep = voxelize(points, size)
    # every point's voxel contains it (same arithmetic as the quantisation: floor(p / size))
    scaled = points / size
    cell = grid[p2v].to(dtype)
    assert ((cell <= scaled) & (scaled < cell + 1)).all()
    # the representative of a voxel is in it and is its lowest point index
    assert torch.equal(p2v[rep], torch.arange(len(grid)))
    lowest = torch.full((len(grid),), len(points)).scatter_reduce(0, p2v, torch.arange(len(points)), "amin")
    assert torch.equal(rep, lowest)
    # voxels are unique and sorted lexicographically
    key = ((grid[:, 0] * 1000) + grid[:, 1]) * 1000 + grid[:, 2]
    assert (key[1:] > key[:-1]).all()


def test_per_axis_voxel_size():
    points = torch.tensor([[0.15, 0.15, 0.15]])
    grid, _, _ = voxelize(points, torch.tensor([0.1, 0.2, 0.05]))
    assert grid.tolist() == [[1, 0, 3]]


def test_deterministic_and_permutation_consistent():
    g = torch.Generator().manual_seed(3)
    points = torch.rand(5000, 3, generator=g)
    a = voxelize(points, 0.05)
    b = voxelize(points.clone(), 0.05)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    perm = torch.randperm(len(points), generator=g)
    grid_p, p2v_p, _ = voxelize(points[perm], 0.05)
    assert torch.equal(grid_p, a[0])  # the voxel set and order do not depend on point order
    assert torch.equal(p2v_p, a[1][perm])


def test_degenerate():
    grid, p2v, rep = voxelize(torch.zeros(0, 3), 0.1)
    assert grid.shape == (0, 3) and p2v.shape == (0,) and rep.shape == (0,)
    grid, _, _ = voxelize(torch.zeros(0, 3), 0.1, batch_offsets=[0, 0])
    assert grid.shape == (0, 4)
    grid, p2v, rep = voxelize(torch.tensor([[1.0, 2.0, 3.0]]), 1.0)
    assert grid.tolist() == [[1, 2, 3]] and p2v.tolist() == [0] and rep.tolist() == [0]


def test_huge_extent_falls_back_to_exact_path():
    points = torch.tensor([[-1e6, 0.0, 0.0], [1e6, 1e6, 1e6], [1e6, 1e6, 1e6 + 1e-3]], dtype=torch.float64)
    grid, p2v, rep = voxelize(points, 1e-4)
    assert len(grid) == 3 and p2v.tolist() == [0, 1, 2] and rep.tolist() == [0, 1, 2]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="NaN"):
        voxelize(torch.tensor([[0.0, float("nan"), 0.0]]), 0.1)
    with pytest.raises(ValueError, match="voxel_size"):
        voxelize(torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match="batch_offsets"):
        voxelize(torch.zeros(3, 3), 0.1, batch_offsets=[0, 2])
    with pytest.raises(ValueError, match="non-decreasing"):
        voxelize(torch.zeros(3, 3), 0.1, batch_offsets=[0, 2, 1, 3])


def test_memory_is_linear_in_points():
    """400k points in ~250k voxels: an (N, N) or (N, M) intermediate would need > 800 GB."""
    g = torch.Generator().manual_seed(4)
    points = torch.rand(400_000, 3, generator=g) * torch.tensor([4.0, 4.0, 0.3])
    grid, p2v, rep = voxelize(points, 0.025)
    assert len(grid) > 100_000 and p2v.shape == (400_000,)


@pytest.mark.parametrize(
    "spread", [10.0, 300.0, 5000.0, 1e6], ids=["f32-key", "f64-key", "int64-key", "fallback"]
)
def test_every_key_width_matches_naive_reference(spread):
    """Grid extents (in voxels) of 10^3, ~2.7e7 (> 2^24), ~1.25e11 (> 2^31) and 1e18 (> 2^53)."""
    g = torch.Generator().manual_seed(5)
    points = torch.rand(300, 3, generator=g, dtype=torch.float64) * spread
    points[1:20] = points[0] + 0.3 * torch.rand(19, 3, generator=g, dtype=torch.float64)  # shared voxels
    for batch_offsets in (None, [0, 150, 300]):
        batch = None if batch_offsets is None else [0] * 150 + [1] * 150
        got = voxelize(points, 1.0, batch_offsets=batch_offsets)
        for a, b in zip(got, naive_voxelize(points, 1.0, batch), strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("origin", [0.0, -1e6, 1e6, 2.0**50], ids=["origin", "neg-1e6", "1e6", "2^50"])
def test_far_from_origin_matches_naive_reference(origin):
    """A small grid far from the origin: the key is computed on the unshifted cells (float32 or
    float64 by the cells' magnitude) or, beyond 2^53, on cells shifted to 0 first."""
    g = torch.Generator().manual_seed(6)
    points = torch.rand(400, 3, generator=g, dtype=torch.float64) * 10.0
    points[:, 0] += origin
    points[:, 2] -= origin / 2
    points[1:30] = points[0] + 0.4 * torch.rand(29, 3, generator=g, dtype=torch.float64)
    for batch_offsets in (None, [0, 100, 400]):
        batch = None if batch_offsets is None else [0] * 100 + [1] * 300
        got = voxelize(points, 1.0, batch_offsets=batch_offsets)
        for a, b in zip(got, naive_voxelize(points, 1.0, batch), strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("origin", [-37.3, 1000.0], ids=["neg-37m", "1km"])
def test_float32_key_with_an_offset_matches_naive_reference(origin):
    """The usual indoor case: float32 points away from 0 at 5 cm, where the key is a float32
    product on the unshifted cells minus a non-zero constant (the cells' bound stays below 2^24)."""
    g = torch.Generator().manual_seed(7)
    points = torch.rand(3000, 3, generator=g) * 4.0 + torch.tensor([origin, -origin / 3, 0.5])
    points[1:40] = points[0] + 0.03 * torch.rand(39, 3, generator=g)
    for a, b in zip(voxelize(points, 0.05), naive_voxelize(points, 0.05), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("cells", [126, 128], ids=["bound-below-2^24", "bound-above-2^24"])
def test_key_around_the_float32_bound_matches_naive_reference(cells):
    """x up to ``cells`` on a 256 x 256 (y, z) grid: the key's bound (sum of |cell| x weight, plus
    the key range) is 131072 (cells + 1), just below 2^24 for 126 and above it for 128, where the
    key switches from float32 to float64."""
    g = torch.Generator().manual_seed(8)
    size = torch.tensor([cells, 255.0, 255.0], dtype=torch.float64)
    corners = torch.stack([torch.zeros(3, dtype=torch.float64), size + 0.5])
    inner = torch.rand(500, 3, generator=g, dtype=torch.float64) * size
    points = torch.cat([corners, inner, inner[:50] + 0.2])
    for a, b in zip(voxelize(points, 1.0), naive_voxelize(points, 1.0), strict=True):
        assert torch.equal(a, b)


def scan_order_cloud(seed: int, n: int = 3000) -> torch.Tensor:
    """Points in scan order along a wobbly surface, as back-projected depth rows: consecutive
    points mostly share a voxel, so runs of equal keys occur (the collapsed-run path)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)
    wobble = 0.02 * torch.randn(n, generator=g, dtype=torch.float64)
    return torch.stack([t, 0.3 * torch.sin(5 * t), 2.0 + 0.2 * t + wobble], dim=1)


@pytest.mark.parametrize("seed", [0, 1])
def test_scan_order_runs_match_naive_reference(seed):
    points = scan_order_cloud(seed)
    for size in (0.01, 0.05, 0.5):
        got = voxelize(points, size)
        ref = naive_voxelize(points, size)
        for a, b in zip(got, ref, strict=True):
            assert torch.equal(a, b)
    # a batch whose samples continue each other's runs across the sample boundary
    both = torch.cat([points[:1500], points[1499:2999]])
    got = voxelize(both, 0.05, batch_offsets=[0, 1500, 3000])
    ref = naive_voxelize(both, 0.05, [0] * 1500 + [1] * 1500)
    for a, b in zip(got, ref, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "points",
    [
        torch.full((50, 3), 0.123),  # all in one voxel: one run
        torch.tensor([[-0.31, -7.0, -0.001]]).repeat(5, 1),  # negative, one voxel
        torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1e5, -1e5, 3e4], [1e5, -1e5, 3e4], [0.0, 0.0, 0.0]]),
        torch.tensor(
            [[-1.0, -1.0, -1.0], [-0.99, -1.0, -1.0], [-1.0, -1.0, -1.0]]
        ),  # runs broken and resumed
    ],
    ids=["one-voxel", "negative", "huge-with-runs", "interleaved"],
)
def test_degenerate_runs_match_naive_reference(points):
    for a, b in zip(voxelize(points, 0.05), naive_voxelize(points, 0.05), strict=True):
        assert torch.equal(a, b)

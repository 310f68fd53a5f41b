"""The numba kernels against the torch code they replace: the same bits on awkward inputs, and
proof that the compiled path is the one taken (else the comparisons would compare torch with
itself)."""

import numpy as np
import pytest
import torch

from ppkt.geometry import rgbd_pairs, sample_nearest, voxelize
from ppkt.utils.compiled import compiled_kernels

numba = pytest.importorskip("numba")
from ppkt.geometry import _kernels  # noqa: E402  (imports numba)


@pytest.fixture(autouse=True)
def geometry_path():
    """Overrides the directory's both-paths fixture: these tests pick each path themselves."""
    yield None


def both_paths(fn, *args, **kwargs):
    results = []
    for enabled in (False, True):
        with compiled_kernels(enabled):
            out = fn(*args, **kwargs)
        results.append(out if isinstance(out, tuple) else (out,))
    return results


def assert_same(fn, *args, **kwargs):
    reference, compiled = both_paths(fn, *args, **kwargs)
    assert len(reference) == len(compiled)
    for a, b in zip(reference, compiled, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)


@pytest.fixture
def counted(monkeypatch):
    """Counts the calls of each kernel."""
    calls: dict[str, int] = {}
    for name in ("voxel_runs", "registered_pairs", "nearest_pixels"):
        original = getattr(_kernels, name)

        def wrapper(*args, _name=name, _original=original):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args)

        monkeypatch.setattr(_kernels, name, wrapper)
    return calls


def depth_frame(seed: int, dtype=torch.float32, hw=(48, 64)) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.3, 6.0, hw)
    depth[rng.random(hw) < 0.1] = 0.0
    depth[rng.random(hw) < 0.02] = np.nan
    depth[rng.random(hw) < 0.02] = np.inf
    depth[rng.random(hw) < 0.02] = -1.0
    depth[0, :5] = 4.0  # exactly a max_depth below
    return torch.tensor(depth, dtype=dtype)


K_DEPTH = np.array([[60.0, 0.0, 31.5], [0.0, 61.0, 23.5], [0.0, 0.0, 1.0]])
K_COLOR = np.array([[120.0, 0.0, 70.2], [0.0, 118.0, 47.1], [0.0, 0.0, 1.0]])


# ----------------------------------------------------------------------------------------- voxelize
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_voxelize_same_bits(dtype):
    g = torch.Generator().manual_seed(0)
    scan = torch.cumsum(torch.rand(3000, 3, generator=g, dtype=dtype) * 0.02, 0) - 10.0  # runs
    shuffled = scan[torch.randperm(3000, generator=g)]  # no runs
    far = scan + 1e5  # far from the origin
    on_edges = torch.randint(-40, 40, (2000, 3), generator=g).to(dtype) * 0.05  # on cell faces
    for points in (scan, shuffled, far, on_edges, scan[:1]):
        for size in (0.05, (0.05, 0.1, 0.025), 1e-3):
            assert_same(voxelize, points, size)
        assert_same(
            voxelize, points, 0.05, batch_offsets=[0, len(points) // 3, len(points) // 3, len(points)]
        )


def test_voxelize_compiled_path_is_taken(counted):
    points = torch.rand(100, 3)
    with compiled_kernels(True):
        voxelize(points, 0.1)
        voxelize(points, 0.1, batch_offsets=[0, 50, 100])
        voxelize(points.half(), 0.1)  # float16: the torch path
    with compiled_kernels(False):
        voxelize(points, 0.1)
    assert counted == {"voxel_runs": 2}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_voxelize_non_finite_raises_on_both_paths(bad):
    points = torch.rand(10, 3)
    points[4, 1] = bad
    for enabled in (False, True):
        with compiled_kernels(enabled), pytest.raises(ValueError, match="NaN or inf"):
            voxelize(points, 0.1)


def test_voxelize_huge_cells_fall_back_to_torch(counted):
    points = torch.tensor([[0.0, 0.0, 0.0], [1e30, 0.0, 0.0]], dtype=torch.float64)
    assert_same(voxelize, points, 0.1)  # beyond the kernel's int64 cells: torch decides
    assert counted["voxel_runs"] == 1


def test_radix_sort_is_a_stable_sort():
    rng = np.random.default_rng(1)
    for total in (1, 2, 2047, 2048, 5000, 2**22 + 3, 2**40):
        keys = rng.integers(0, total, 5000).astype(np.int64)
        keys[::7] = keys[0]  # many ties
        sorted_keys, order = _kernels.stable_sort_by_key(keys, total)
        expected = np.argsort(keys, kind="stable")
        assert np.array_equal(order, expected), total
        assert np.array_equal(sorted_keys, keys[expected])
    empty, order = _kernels.stable_sort_by_key(np.zeros(0, np.int64), 10)
    assert empty.shape == (0,) and order.shape == (0,)


# -------------------------------------------------------------------------------------- rgbd_pairs
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rgbd_pairs_same_bits(dtype):
    for seed in range(3):
        depth = depth_frame(seed, dtype)
        for K_color, color_hw in ((K_DEPTH, (48, 64)), (K_COLOR, (90, 120)), (K_COLOR, (40, 50))):
            for ranges in ({}, {"max_depth": 4.0}, {"min_depth": 0.5, "max_depth": 0.1 + 3.9}):
                reference, compiled = both_paths(rgbd_pairs, depth, K_DEPTH, K_color, color_hw, **ranges)
                (a,), (b,) = reference, compiled
                assert a.num_points == b.num_points
                assert torch.equal(a.points, b.points) and torch.equal(a.uv, b.uv)
                assert torch.equal(a.point_index, b.point_index) and torch.equal(a.image_index, b.image_index)


def test_rgbd_pairs_thresholds_compare_in_float32():
    # 0.1 as float32 is 0.10000000149: kept by max_depth=0.1 in float32 arithmetic, not in float64
    depth = torch.full((2, 3), 0.1, dtype=torch.float32)
    for enabled in (False, True):
        with compiled_kernels(enabled):
            assert rgbd_pairs(depth, K_DEPTH, K_DEPTH, (2, 3), max_depth=0.1).num_points == 6


def test_rgbd_pairs_compiled_path_is_taken(counted):
    depth = depth_frame(0)
    with compiled_kernels(True):
        rgbd_pairs(depth, K_DEPTH, K_COLOR, (90, 120))
        rgbd_pairs(depth, K_DEPTH, K_COLOR, (90, 120), color_from_depth=np.diag([1.0, 1, 1, 1]))
        rgbd_pairs(depth.half(), K_DEPTH, K_COLOR, (90, 120))  # float16: the torch path
    assert counted == {"registered_pairs": 2}


def test_rgbd_pairs_negative_min_depth_raises_on_both_paths():
    for enabled in (False, True):
        with compiled_kernels(enabled), pytest.raises(ValueError, match="min_depth"):
            rgbd_pairs(depth_frame(0), K_DEPTH, K_DEPTH, (48, 64), min_depth=-1.0)


# ---------------------------------------------------------------------------------- sample_nearest
def test_sample_nearest_same_bits():
    g = torch.Generator().manual_seed(0)
    images = (
        torch.randint(0, 255, (30, 40, 3), generator=g, dtype=torch.uint8),
        torch.rand(30, 40, generator=g),
        torch.randint(-500, 500, (30, 40, 2), generator=g, dtype=torch.int16),
    )
    uv = torch.rand(500, 2, generator=g) * torch.tensor([40.0, 30.0]) - 0.5
    # Rounding edges: u + 0.5 rounds up to an integer in float32 but not in float64.
    edge = torch.tensor([[0.49999997, 0.49999997], [-0.5, -0.5], [39.49, 29.49], [1.5, 2.5]])
    for image in images:
        for coords in (uv, edge, uv.double()):
            assert_same(sample_nearest, image, coords)


def test_sample_nearest_outside_raises_on_both_paths():
    image = torch.zeros(4, 5, 3, dtype=torch.uint8)
    for uv in ([[4.5, 0.0]], [[0.0, -0.51]], [[float("nan"), 1.0]], [[1e12, 0.0]]):
        for enabled in (False, True):
            with compiled_kernels(enabled), pytest.raises(IndexError, match="outside"):
                sample_nearest(image, torch.tensor(uv))


def test_sample_nearest_compiled_path_is_taken(counted):
    image = torch.zeros(4, 5, 3, dtype=torch.uint8)
    uv = torch.tensor([[1.0, 2.0]])
    with compiled_kernels(True):
        sample_nearest(image, uv)
        sample_nearest(image.float().requires_grad_(), uv)  # keeps its gradient: torch
        sample_nearest(image, uv[:0])  # empty: torch
    assert counted == {"nearest_pixels": 1}


def test_voxel_sizes_of_any_accepted_shape_and_with_gradient():
    points = torch.rand(200, 3) * 3 - 1
    for size in ([[0.1, 0.03, 0.07]], [[0.1]], torch.tensor(0.05, requires_grad=True), 0.1):
        assert_same(voxelize, points, size)


def test_sample_nearest_other_dtypes_and_an_empty_image_behave_alike():
    uv = torch.tensor([[1.0, 2.0], [0.2, 0.4]])
    image = torch.rand(4, 5, 3)
    assert_same(sample_nearest, image.to(torch.float8_e4m3fn).float(), uv)
    for dtype in (torch.float8_e4m3fn, torch.bfloat16, torch.bool, torch.uint16):
        reference, compiled = both_paths(sample_nearest, (image * 2).to(dtype), uv)
        assert torch.equal(reference[0].float(), compiled[0].float())
    for enabled in (False, True):
        with compiled_kernels(enabled), pytest.raises(IndexError, match="outside"):
            sample_nearest(torch.zeros(0, 5, 3), uv)


def test_depth_bounds_beyond_float32_drop_infinite_depth_on_both_paths():
    depth = torch.tensor([[1.0, float("inf")], [2.0, 0.0]])
    for max_depth in (1e39, 10**40, float("inf")):
        reference, compiled = both_paths(rgbd_pairs, depth, K_DEPTH, K_DEPTH, (2, 2), max_depth=max_depth)
        assert reference[0].num_points == compiled[0].num_points == 2
        assert torch.equal(reference[0].points, compiled[0].points)
        assert bool(torch.isfinite(compiled[0].points).all())

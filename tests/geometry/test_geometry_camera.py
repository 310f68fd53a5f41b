import numpy as np
import pytest
import torch
import torch.nn.functional as F
from geometry_fixtures import K_DEPTH, room_depth

from ppkt.geometry import (
    normalized_grid_coords,
    project_points,
    sample_nearest,
    scale_intrinsics,
    transform_points,
    unproject_depth,
    unproject_pixels,
    uv_to_feature_ij,
    uv_to_ij,
)


def rigid(seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = q
    T[:3, 3] = torch.randn(3, generator=g, dtype=torch.float64)
    return T.to(dtype)


# --- hand-computed cases -------------------------------------------------------------------------


def test_unproject_hand_computed(dtype):
    K = torch.tensor([[2.0, 0, 1.0], [0, 4.0, 0.5], [0, 0, 1]], dtype=dtype)
    depth = torch.tensor([[1.0, 0.0, 2.0], [float("nan"), 4.0, -1.0]], dtype=dtype)
    points, ij = unproject_depth(depth, K)
    assert ij.dtype == torch.long and ij.tolist() == [[0, 0], [0, 2], [1, 1]]
    # x = (j - cx) z / fx, y = (i - cy) z / fy
    expected = torch.tensor([[-0.5, -0.125, 1.0], [1.0, -0.25, 2.0], [0.0, 0.5, 4.0]], dtype=dtype)
    assert points.dtype == dtype
    torch.testing.assert_close(points, expected)


def test_unproject_depth_range_and_invalid_values():
    depth = torch.tensor([[0.0, -1.0, float("nan"), float("inf"), float("-inf"), 0.3, 1.0, 6.0, 5.0]])
    _, ij = unproject_depth(depth, torch.eye(3), min_depth=0.3, max_depth=5.0)
    assert ij[:, 1].tolist() == [6, 8]  # 0.3 excluded (min is exclusive), 5.0 kept (max inclusive)


def test_project_hand_computed(dtype):
    K = torch.tensor([[100.0, 0, 50.0], [0, 200.0, 20.0], [0, 0, 1]], dtype=dtype)
    points = torch.tensor(
        [[0.1, 0.2, 2.0], [0.0, 0.0, -1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [-0.505, 0.0, 1.0]], dtype=dtype
    )
    uv, z, inside = project_points(points, K, (40, 100))
    torch.testing.assert_close(uv[0], torch.tensor([55.0, 40.0], dtype=dtype))
    torch.testing.assert_close(z, points[:, 2])
    # (55, 40): v = 40 >= H - 0.5 = 39.5 -> outside; behind / on the plane: never inside;
    # u = 150 outside; u = -0.5 is the left edge of pixel 0 -> inside.
    assert inside.tolist() == [False, False, False, False, True]
    assert torch.isfinite(uv).all()


def test_image_border_convention():
    K = torch.eye(3, dtype=torch.float64)
    W, H = 4, 3
    # points on the plane z = 1 project to uv = (x, y)
    edges = torch.tensor(
        [[-0.5, -0.5], [W - 0.5, 0], [0, H - 0.5], [W - 0.5 - 1e-9, H - 0.5 - 1e-9]], dtype=torch.float64
    )
    points = torch.cat([edges, torch.ones(4, 1, dtype=torch.float64)], dim=1)
    _, _, inside = project_points(points, K, (H, W))
    assert inside.tolist() == [True, False, False, True]
    assert uv_to_ij(edges[[0, 3]]).tolist() == [[0, 0], [H - 1, W - 1]]


def test_transform_hand_computed(dtype):
    T = torch.tensor([[0, -1, 0, 1.0], [1, 0, 0, 2.0], [0, 0, 1, 3.0], [0, 0, 0, 1]], dtype=dtype)
    out = transform_points(T, torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0]], dtype=dtype))
    torch.testing.assert_close(out, torch.tensor([[1.0, 3.0, 3.0], [-1.0, 2.0, 2.0]], dtype=dtype))


def test_transform_batched_and_inverse(dtype):
    T = torch.stack([rigid(1, dtype), rigid(2, dtype)])
    pts = torch.randn(2, 5, 3, dtype=dtype)
    out = transform_points(T, pts)
    for b in range(2):
        torch.testing.assert_close(out[b], transform_points(T[b], pts[b]))
    back = transform_points(torch.linalg.inv(T), out)
    torch.testing.assert_close(back, pts, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)


# --- round trips -----------------------------------------------------------------------------------


def test_round_trip_pixels(dtype):
    depth = room_depth(48, 64, dtype=dtype)
    K = scale_intrinsics(torch.tensor(K_DEPTH, dtype=dtype), (480, 640), (48, 64))
    points, ij = unproject_depth(depth, K)
    assert points.shape[0] == int((depth > 0).sum()) > 0
    uv, z, inside = project_points(points, K, (48, 64))
    assert inside.all()
    assert (uv - ij.flip(-1).to(dtype)).abs().max() < 1e-4
    torch.testing.assert_close(z, depth[depth > 0])
    assert torch.equal(uv_to_ij(uv), ij)


def test_round_trip_full_scannet_frame_float32():
    depth = room_depth(480, 640)
    K = torch.tensor(K_DEPTH)
    points, ij = unproject_depth(depth, K)
    uv, _, inside = project_points(points, K, (480, 640))
    assert inside.all() and (uv - ij.flip(-1).float()).abs().max() < 1e-4


def test_round_trip_through_a_rigid_transform(dtype):
    depth = room_depth(20, 30, dtype=dtype)
    K = torch.tensor([[30.0, 0, 14.5], [0, 30.0, 9.5], [0, 0, 1]], dtype=dtype)
    points, ij = unproject_depth(depth, K)
    world_from_cam = rigid(3, dtype)
    world = transform_points(world_from_cam, points)
    back = transform_points(torch.linalg.inv(world_from_cam), world)
    uv, _, inside = project_points(back, K, (20, 30))
    assert inside.all() and (uv - ij.flip(-1).to(dtype)).abs().max() < 1e-4


# --- degenerate inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(0, 5), (5, 0), (1, 1), (7, 1), (1, 7)])
def test_unproject_degenerate_sizes(hw, dtype):
    depth = torch.full(hw, 2.0, dtype=dtype)
    points, ij = unproject_depth(depth, torch.eye(3))
    assert points.shape == (hw[0] * hw[1], 3) and ij.shape == (hw[0] * hw[1], 2)
    if points.numel():
        uv, _, inside = project_points(points, torch.eye(3), hw)
        assert inside.all() and torch.equal(uv_to_ij(uv), ij)


def test_all_invalid_and_empty(dtype):
    depth = torch.tensor([[0.0, float("nan")], [-2.0, float("inf")]], dtype=dtype)
    points, ij = unproject_depth(depth, torch.eye(3))
    assert points.shape == (0, 3) and ij.shape == (0, 2) and points.dtype == dtype
    uv, z, inside = project_points(points, torch.eye(3), (2, 2))
    assert uv.shape == (0, 2) and z.shape == (0,) and inside.shape == (0,)
    assert transform_points(torch.eye(4), points).shape == (0, 3)


def test_single_point(dtype):
    uv, z, inside = project_points(torch.tensor([[0.0, 0.0, 1.0]], dtype=dtype), torch.eye(3), (1, 1))
    assert inside.tolist() == [True] and uv.tolist() == [[0.0, 0.0]]


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="depth"):
        unproject_depth(torch.zeros(2, 2, 2), torch.eye(3))
    with pytest.raises(ValueError, match="K"):
        unproject_depth(torch.zeros(2, 2), torch.eye(2))
    with pytest.raises(ValueError, match="points"):
        project_points(torch.zeros(4, 2), torch.eye(3), (2, 2))
    with pytest.raises(ValueError, match="a_from_b"):
        transform_points(torch.eye(3), torch.zeros(4, 3))


def test_points_near_and_behind_the_camera_stay_finite():
    points = torch.tensor([[1.0, 1.0, 0.0], [1.0, -1.0, -1e-30], [1e30, 1.0, 1e-30], [0.0, 0.0, 1e-30]])
    points.requires_grad_(True)
    uv, _, inside = project_points(points, torch.eye(3), (10, 10))
    assert not inside.any()
    assert torch.isfinite(uv).all()
    # a loss on the masked uv must not leak NaN into the masked points' gradients
    (uv[inside].sum() + 0 * uv.sum()).backward()
    assert torch.isfinite(points.grad).all()


def test_numpy_intrinsics_and_4x4_are_accepted():
    depth = room_depth(6, 8, dtype=torch.float64)
    K = np.array(K_DEPTH) / 80
    K[2, 2] = 1
    K4 = np.eye(4)
    K4[:3, :3] = K
    a, _ = unproject_depth(depth, K)
    b, _ = unproject_depth(depth, K4)
    assert torch.equal(a, b)


# --- gradients -------------------------------------------------------------------------------------


def test_gradcheck_unproject_wrt_depth():
    depth = (room_depth(4, 5, dtype=torch.float64, holes=0.0) + 0.1).requires_grad_(True)
    K = torch.tensor([[5.0, 0.2, 2.0], [0, 6.0, 1.5], [0, 0, 1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda d: unproject_depth(d, K)[0], (depth,))


def test_gradcheck_transform_wrt_points_and_transform():
    T = rigid(5).requires_grad_(True)
    pts = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(transform_points, (T, pts))


def test_gradcheck_project_wrt_points():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(8, 3, generator=g, dtype=torch.float64)
    pts[:, 2] = pts[:, 2].abs() + 0.5
    pts[0, 2] = -1.0  # behind: uv is masked but its gradient must still be finite
    pts.requires_grad_(True)
    K = torch.tensor([[5.0, 0.1, 2.0], [0, 6.0, 1.5], [0, 0, 1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: project_points(p, K, (4, 5))[0], (pts,))
    assert torch.autograd.gradcheck(lambda p: project_points(p, K, (4, 5))[1], (pts,))


# --- independent references ------------------------------------------------------------------------


def naive_unproject(depth: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel loop straight from the pinhole model."""
    points, ij = [], []
    for i in range(depth.shape[0]):
        for j in range(depth.shape[1]):
            z = depth[i, j]
            if np.isfinite(z) and z > 0:
                x = (j - K[0, 2]) * z / K[0, 0]
                y = (i - K[1, 2]) * z / K[1, 1]
                points.append((x, y, z))
                ij.append((i, j))
    return np.array(points).reshape(-1, 3), np.array(ij).reshape(-1, 2)


def test_unproject_matches_naive_loop():
    depth = room_depth(12, 17, dtype=torch.float64, holes=0.3)
    K = np.array([[20.0, 0, 8.3], [0, 21.0, 5.7], [0, 0, 1]])
    ref_points, ref_ij = naive_unproject(depth.numpy(), K)
    points, ij = unproject_depth(depth, K)
    np.testing.assert_array_equal(ij.numpy(), ref_ij)
    np.testing.assert_allclose(points.numpy(), ref_points, rtol=1e-12, atol=1e-12)


def test_project_matches_naive_loop():
    g = torch.Generator().manual_seed(1)
    pts = torch.randn(200, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 2.0, 3.0])
    K = np.array([[20.0, 0, 8.3], [0, 21.0, 5.7], [0, 0, 1]])
    H, W = 12, 17
    uv, _, inside = project_points(pts, K, (H, W))
    for n, (x, y, z) in enumerate(pts.tolist()):
        if z <= 0:
            assert not inside[n]
            continue
        u, v = K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]
        assert abs(uv[n, 0].item() - u) < 1e-9 and abs(uv[n, 1].item() - v) < 1e-9
        assert bool(inside[n]) == (-0.5 <= u < W - 0.5 and -0.5 <= v < H - 0.5)
    assert 0 < int(inside.sum()) < len(pts)


def test_against_kornia(dtype):
    kornia = pytest.importorskip("kornia")
    depth = room_depth(30, 40, dtype=dtype, holes=0.0)
    K = torch.tensor([[35.0, 0, 19.2], [0, 36.0, 14.7], [0, 0, 1]], dtype=dtype)
    points, ij = unproject_depth(depth, K)
    # (H, W, 3) with pixel centres at integer coordinates, as in ppkt
    ref = kornia.geometry.depth.depth_to_3d_v2(depth[None], K[None])[0]
    torch.testing.assert_close(points, ref[ij[:, 0], ij[:, 1]])
    T = rigid(7, dtype)
    moved = transform_points(T, points)
    torch.testing.assert_close(moved, kornia.geometry.linalg.transform_points(T[None], points[None])[0])
    uv, _, _ = project_points(moved, K, (30, 40))
    front = moved[:, 2] > 0.1
    torch.testing.assert_close(uv[front], kornia.geometry.camera.project_points(moved[front], K))


# --- resizing and feature maps --------------------------------------------------------------------


def test_scale_intrinsics_follows_the_resize_rule(dtype):
    K = torch.tensor(K_DEPTH, dtype=dtype)
    K2 = scale_intrinsics(K, (480, 640), (968, 1296))
    pts = torch.tensor([[0.3, -0.2, 2.0], [-1.0, 0.5, 4.0]], dtype=dtype)
    uv, _, _ = project_points(pts, K, (480, 640))
    uv2, _, _ = project_points(pts, K2, (968, 1296))
    scale = torch.tensor([1296 / 640, 968 / 480], dtype=dtype)
    torch.testing.assert_close(uv2, (uv + 0.5) * scale - 0.5)
    # the image corners (pixel edges) map to the new image's corners
    torch.testing.assert_close(scale_intrinsics(K2, (968, 1296), (480, 640)), K)
    assert K2.dtype == dtype


def test_scale_intrinsics_matches_area_downsampling():
    """A 2x box downsample averages pixels (2k, 2k+1): their mean position is the new centre k."""
    K = torch.tensor([[10.0, 0, 3.5], [0, 10.0, 1.5], [0, 0, 1]], dtype=torch.float64)
    K2 = scale_intrinsics(K, (4, 8), (2, 4))
    # pixel centres u = 2k, 2k+1 average to u = 2k + 0.5, which must land on the new centre k
    for k in range(4):
        pt = torch.tensor([[(2 * k + 0.5 - 3.5) / 10.0, 0.0, 1.0]], dtype=torch.float64)
        uv2, _, _ = project_points(pt, K2, (2, 4))
        assert abs(uv2[0, 0].item() - k) < 1e-12


@pytest.mark.parametrize("stride", [1, 2, 4, 8, 16])
def test_feature_cell_contains_pixel(stride):
    g = torch.Generator().manual_seed(stride)
    H, W = 37, 50
    uv = torch.rand(500, 2, generator=g) * torch.tensor([W, H]) - 0.5
    ij = uv_to_ij(uv)
    cell = uv_to_feature_ij(uv, stride)
    assert ((cell * stride <= ij) & (ij < (cell + 1) * stride)).all()
    clamped = uv_to_feature_ij(uv, stride, (H // stride, W // stride))
    assert (clamped[:, 0] < H // stride).all() and (clamped[:, 1] < W // stride).all()


@pytest.mark.parametrize("stride", [1, 4, 8])
def test_grid_sample_reads_the_containing_cell(stride):
    """align_corners=False sampling at normalized_grid_coords reads the cell uv_to_feature_ij names."""
    H, W = 32, 48
    h, w = H // stride, W // stride
    features = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)
    g = torch.Generator().manual_seed(0)
    ij = torch.stack([torch.randint(0, H, (300,), generator=g), torch.randint(0, W, (300,), generator=g)], 1)
    uv = ij.flip(-1).float()  # pixel centres
    grid = normalized_grid_coords(uv, (H, W)).view(1, 1, -1, 2)
    sampled = F.grid_sample(features, grid, mode="nearest", align_corners=False).view(-1)
    cell = uv_to_feature_ij(uv, stride)
    assert torch.equal(sampled.long(), cell[:, 0] * w + cell[:, 1])


def test_grid_sample_at_pixel_centres_is_identity_at_stride_1():
    image = torch.randn(1, 3, 5, 7)
    ii, jj = torch.meshgrid(torch.arange(5), torch.arange(7), indexing="ij")
    uv = torch.stack([jj, ii], -1).reshape(-1, 2).float()
    grid = normalized_grid_coords(uv, (5, 7)).view(1, 1, -1, 2)
    out = F.grid_sample(image, grid, mode="bilinear", align_corners=False).view(3, 5, 7)
    torch.testing.assert_close(out, image[0])


def test_sample_nearest_reads_the_containing_pixel():
    image = torch.arange(4 * 5 * 3, dtype=torch.uint8).view(4, 5, 3)
    uv = torch.tensor([[0.0, 0.0], [4.49, 3.49], [-0.5, -0.5], [1.5, 0.2], [2.2, 2.6]])
    expected = torch.stack([image[0, 0], image[3, 4], image[0, 0], image[0, 2], image[3, 2]])
    assert torch.equal(sample_nearest(image, uv), expected)
    assert torch.equal(sample_nearest(image[..., 0], uv), expected[:, 0])
    assert sample_nearest(image, torch.zeros(0, 2)).shape == (0, 3)
    with pytest.raises(IndexError, match="outside"):
        sample_nearest(image, torch.tensor([[4.5, 0.0]]))


def test_gradcheck_unproject_wrt_intrinsics():
    depth = room_depth(3, 4, dtype=torch.float64, holes=0.0) + 0.1
    K = torch.tensor([[5.0, 0.0, 2.0], [0, 6.0, 1.5], [0, 0, 1]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: unproject_depth(depth, k)[0], (K,))


def test_unproject_pixels_checks_the_mask_and_reads_any_nonzero_mask():
    depth = torch.arange(1.0, 25.0).reshape(4, 6)
    K = torch.tensor([[2.0, 0.0, 3.0], [0.0, 2.0, 2.0], [0.0, 0.0, 1.0]])
    narrow = torch.zeros(4, 5, dtype=torch.bool)
    narrow[3, 4] = True
    with pytest.raises(ValueError, match=r"mask must have the depth's shape \(4, 6\)"):
        unproject_pixels(depth, K, narrow)
    counts = torch.zeros(4, 6, dtype=torch.uint8)
    counts[3, 4], counts[1, 0] = 7, 1
    points, ij = unproject_pixels(depth, K, counts)
    assert ij.tolist() == [[1, 0], [3, 4]]
    assert points[:, 2].tolist() == [depth[1, 0].item(), depth[3, 4].item()]

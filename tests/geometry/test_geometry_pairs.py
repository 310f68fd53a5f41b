import numpy as np
import pytest
import torch
from geometry_fixtures import K_COLOR, K_DEPTH, room_depth

from ppkt.data.types import CameraImage
from ppkt.geometry import (
    Pairs,
    lidar_camera_pairs,
    project_points,
    rgbd_pairs,
    scale_intrinsics,
    transform_points,
    unproject_depth,
    uv_to_ij,
)

# --- RGB-D -----------------------------------------------------------------------------------------


def test_scannet_sized_frame():
    depth = room_depth(480, 640)
    pairs = rgbd_pairs(depth, K_DEPTH, K_COLOR, (968, 1296))
    assert pairs.points.dtype == torch.float32 and pairs.uv.dtype == torch.float32
    assert len(pairs) == pairs.num_points > 0.9 * int((depth > 0).sum())
    assert torch.equal(pairs.point_index, torch.arange(len(pairs)))
    assert (pairs.image_index == 0).all() and pairs.image_hw == ((968, 1296),)
    uv, _, inside = project_points(pairs.points.double(), K_COLOR, (968, 1296))
    assert inside.all() and (uv - pairs.uv.double()).abs().max() < 1e-3
    revalidated(pairs)


def revalidated(pairs: Pairs) -> Pairs:
    """The builders skip Pairs' checks; their outputs must pass them."""
    return Pairs(pairs.points, pairs.point_index, pairs.image_index, pairs.uv, pairs.image_hw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_registered_fast_path_matches_projecting_every_point(dtype):
    depth = room_depth(60, 80, dtype=dtype, holes=0.1)
    K_d = scale_intrinsics(K_DEPTH, (480, 640), (60, 80))
    K_c = np.array(K_COLOR) * np.array([[1.3], [1.2], [1.0]])  # a narrower colour camera
    fast = rgbd_pairs(depth, K_d, K_c, (968, 1296))
    # an almost-identity transform takes the general path (an exact identity takes the fast one)
    near_identity = np.eye(4)
    near_identity[0, 3] = 1e-12
    generic = rgbd_pairs(depth, K_d, K_c, (968, 1296), color_from_depth=near_identity)
    assert len(fast) < int((depth > 0).sum())  # the colour camera sees less than the depth camera
    assert torch.equal(fast.points, generic.points)
    torch.testing.assert_close(fast.uv, generic.uv, atol=1e-3, rtol=0)


def test_points_landing_outside_the_colour_image_are_dropped():
    """Naive per-pixel reference on a small frame whose colour camera sees less than the depth one."""
    depth = room_depth(12, 16, dtype=torch.float64, holes=0.2)
    K_d = np.array([[14.0, 0, 7.5], [0, 14.0, 5.5], [0, 0, 1]])
    K_c = np.array([[30.0, 0, 9.0], [0, 30.0, 7.1], [0, 0, 1]])  # no pixel lands exactly on a border
    color_hw = (15, 20)
    expected_points, expected_uv = [], []
    for i in range(12):
        for j in range(16):
            z = float(depth[i, j])
            if not z > 0:
                continue
            x, y = (j - K_d[0, 2]) * z / K_d[0, 0], (i - K_d[1, 2]) * z / K_d[1, 1]
            u, v = K_c[0, 0] * x / z + K_c[0, 2], K_c[1, 1] * y / z + K_c[1, 2]
            if -0.5 <= u < color_hw[1] - 0.5 and -0.5 <= v < color_hw[0] - 0.5:
                expected_points.append((x, y, z))
                expected_uv.append((u, v))
    pairs = rgbd_pairs(depth, K_d, K_c, color_hw)
    assert 0 < len(expected_points) < int((depth > 0).sum())
    np.testing.assert_allclose(pairs.points.numpy(), np.array(expected_points), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pairs.uv.numpy(), np.array(expected_uv), rtol=1e-6, atol=1e-5)


def test_registered_cameras_map_pixels_by_the_resize_rule():
    """Colour K = depth K resized: a depth pixel centre lands at (uv + 0.5) * s - 0.5."""
    depth = room_depth(48, 64, dtype=torch.float64, holes=0.0)
    K_d = scale_intrinsics(torch.tensor(K_DEPTH, dtype=torch.float64), (480, 640), (48, 64))
    K_c = scale_intrinsics(K_d, (48, 64), (97, 130))
    pairs = rgbd_pairs(depth, K_d, K_c, (97, 130))
    _, ij = unproject_depth(depth, K_d)
    assert len(pairs) == len(ij)
    expected = (ij.flip(-1).double() + 0.5) * torch.tensor([130 / 64, 97 / 48], dtype=torch.float64) - 0.5
    assert (pairs.uv.double() - expected).abs().max() < 1e-4
    revalidated(pairs)


def test_color_from_depth_extrinsics():
    depth = room_depth(24, 32, dtype=torch.float64, holes=0.0)
    K = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
    color_from_depth = np.eye(4)
    color_from_depth[0, 3] = -0.05  # colour camera 5 cm to the right of the depth camera
    pairs = rgbd_pairs(depth, K, K, (24, 32), color_from_depth=color_from_depth)
    moved = transform_points(color_from_depth, pairs.points.double())
    uv, _, _ = project_points(moved, K, (24, 32))
    torch.testing.assert_close(pairs.uv.double(), uv, atol=1e-4, rtol=0)
    # points stay in the depth frame: they reproject onto depth pixel centres
    uv_d, _, _ = project_points(pairs.points.double(), K, (24, 32))
    assert (uv_d - uv_d.round()).abs().max() < 1e-4
    assert (uv[:, 0] < uv_d[:, 0]).all()  # shifted left in the colour image


@pytest.mark.parametrize("stride", [2, 4, 8, 16, 32])
def test_pairs_survive_downsampling_to_a_feature_stride(stride):
    K_d = scale_intrinsics(K_DEPTH, (480, 640), (120, 160))
    pairs = rgbd_pairs(room_depth(120, 160), K_d, K_COLOR, (968, 1296))
    ij = pairs.pixel_ij()
    cell = pairs.feature_ij(stride)
    assert ((cell * stride <= ij) & (ij < (cell + 1) * stride)).all()
    grid = pairs.grid_coords()
    assert (grid.abs() <= 1).all()


def test_degenerate_frames():
    empty = rgbd_pairs(torch.zeros(4, 5), torch.eye(3), torch.eye(3), (4, 5))
    assert len(empty) == 0 and empty.points.shape == (0, 3) and empty.uv.shape == (0, 2)
    assert len(empty.select(torch.zeros(0, dtype=torch.bool))) == 0
    assert empty.feature_ij(4).shape == (0, 2) and empty.grid_coords().shape == (0, 2)
    K = torch.tensor([[1.0, 0, 0], [0, 1.0, 3.0], [0, 0, 1]])
    column = rgbd_pairs(torch.ones(7, 1), K, K, (7, 1))  # W = 1
    assert len(column) == 7 and torch.equal(column.pixel_ij()[:, 0], torch.arange(7))
    single = rgbd_pairs(torch.ones(1, 1), torch.eye(3), torch.eye(3), (1, 1))
    assert len(single) == 1 and single.uv.tolist() == [[0.0, 0.0]]


# --- the container ---------------------------------------------------------------------------------


def small_pairs() -> Pairs:
    points = torch.rand(5, 3)
    return Pairs(
        points,
        torch.tensor([0, 1, 4, 4]),
        torch.tensor([0, 0, 1, 0]),
        torch.tensor([[0.0, 0.0], [3.4, 1.0], [9.0, 4.2], [-0.5, -0.5]]),
        ((4, 4), (5, 10)),
    )


def test_select_to_len():
    pairs = small_pairs()
    assert len(pairs) == 4 and pairs.num_points == 5
    sub = pairs.select(pairs.image_index == 0)
    assert len(sub) == 3 and sub.point_index.tolist() == [0, 1, 4] and sub.points is pairs.points
    assert pairs.select(torch.tensor([3, 0])).point_index.tolist() == [4, 0]
    moved = pairs.to("cpu")
    assert moved.device.type == "cpu" and torch.equal(moved.uv, pairs.uv)
    with pytest.raises(ValueError, match="mask"):
        pairs.select(torch.ones(3, dtype=torch.bool))


def test_grid_coords_use_each_pairs_image_size():
    grid = small_pairs().grid_coords()
    # x = (2u + 1) / W - 1 with the W of each pair's own image
    expected = torch.tensor([[1 / 4, 1 / 4], [7.8 / 4, 3 / 4], [19 / 10, 9.4 / 5], [0, 0]]) - 1
    torch.testing.assert_close(grid, expected)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("points", torch.zeros(5, 2), "points"),
        ("points", torch.zeros(5, 3, dtype=torch.long), "points"),
        ("point_index", torch.tensor([0, 1, 4, 5]), "point_index out of range"),
        ("point_index", torch.tensor([0, 1, 4, 4], dtype=torch.int32), "point_index"),
        ("image_index", torch.tensor([0, 0, 2, 0]), "image_index out of range"),
        ("image_index", torch.tensor([0, 0, 1]), "image_index"),
        ("uv", torch.tensor([[0.0, 0.0], [3.4, 1.0], [9.0, 4.2], [3.5, 0.0]]), "outside"),
        ("uv", torch.zeros(4, 3), "uv"),
    ],
)
def test_validation(field, value, match):
    good = small_pairs()
    kwargs = {k: getattr(good, k) for k in ("points", "point_index", "image_index", "uv", "image_hw")}
    kwargs[field] = value
    with pytest.raises((ValueError, TypeError), match=match):
        Pairs(**kwargs)


# --- lidar + cameras -------------------------------------------------------------------------------

# lidar frame: x forward, y left, z up; camera: x right, y down, z forward
CAM_FROM_LIDAR_FRONT = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def camera(yaw: float, name: str, hw=(60, 80)) -> CameraImage:
    """A camera at the lidar origin looking along lidar yaw ``yaw`` (radians, left positive)."""
    c, s = np.cos(yaw), np.sin(yaw)
    lidar_from_yawed = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    K = np.array([[40.0, 0, 39.5], [0, 40.0, 29.5], [0, 0, 1]])
    cam_from_lidar = CAM_FROM_LIDAR_FRONT @ np.linalg.inv(lidar_from_yawed)
    return CameraImage(np.zeros((*hw, 3), np.uint8), K, cam_from_lidar, name)


def sweep(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = 3000
    angle = torch.rand(n, generator=g) * 2 * np.pi
    radius = 0.5 + torch.rand(n, generator=g) * 20
    z = torch.rand(n, generator=g) * 3 - 1.5
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle), z], 1)


def test_lidar_pairs_match_naive_loop_without_occlusion():
    points = sweep()
    cams = [camera(0.0, "front"), camera(0.6, "front_left"), camera(np.pi, "back")]
    pairs = lidar_camera_pairs(points.numpy(), cams, min_depth=1.0, occlusion=False)
    expected = []
    for c, cam in enumerate(cams):
        for n, p in enumerate(points.double().numpy()):
            x, y, z = (cam.camera_from_lidar @ np.append(p, 1.0))[:3]
            if z <= 1.0:
                continue
            u, v = cam.K[0, 0] * x / z + cam.K[0, 2], cam.K[1, 1] * y / z + cam.K[1, 2]
            if -0.5 <= u < cam.hw[1] - 0.5 and -0.5 <= v < cam.hw[0] - 0.5:
                expected.append((n, c, u, v))
    expected = np.array(expected)
    assert pairs.num_points == len(points) and pairs.image_hw == ((60, 80),) * 3
    np.testing.assert_array_equal(pairs.point_index.numpy(), expected[:, 0].astype(np.int64))
    np.testing.assert_array_equal(pairs.image_index.numpy(), expected[:, 1].astype(np.int64))
    np.testing.assert_allclose(pairs.uv.numpy(), expected[:, 2:], atol=1e-3)
    # the overlapping front cameras pair some points twice
    in_both = set(pairs.select(pairs.image_index == 0).point_index.tolist()) & set(
        pairs.select(pairs.image_index == 1).point_index.tolist()
    )
    assert len(in_both) > 0


def test_lidar_min_depth_drops_near_points():
    points = torch.tensor([[0.5, 0.0, 0.0], [1.5, 0.0, 0.0], [-3.0, 0.0, 0.0]])
    pairs = lidar_camera_pairs(points, [camera(0.0, "front")], occlusion=False)
    assert pairs.point_index.tolist() == [1]
    assert torch.allclose(pairs.uv, torch.tensor([[39.5, 29.5]]))


def test_lidar_occlusion_removes_points_behind_an_object():
    wall_y, wall_z = torch.meshgrid(torch.linspace(-3, 3, 60), torch.linspace(-2, 2, 40), indexing="ij")
    wall = torch.stack([torch.full_like(wall_y, 10.0), wall_y, wall_z], -1).reshape(-1, 3)
    post = torch.stack([torch.full((20,), 4.0), torch.zeros(20), torch.linspace(-0.8, 0.8, 20)], 1)
    points = torch.cat([wall, post])
    cam = camera(0.0, "front")
    plain = lidar_camera_pairs(points, [cam], occlusion=False)
    hidden = lidar_camera_pairs(points, [cam], occlusion=True, radius_px=1)
    assert len(hidden) < len(plain)
    kept = set(hidden.point_index.tolist())
    assert set(range(len(wall), len(points))) <= kept  # the post is visible
    # wall points whose pixel is within one pixel of a post pixel are gone
    post_ij = uv_to_ij(plain.select(plain.point_index >= len(wall)).uv)
    wall_sel = plain.select(plain.point_index < len(wall))
    wall_ij = uv_to_ij(wall_sel.uv)
    near_post = ((wall_ij[:, None, :] - post_ij[None, :, :]).abs().amax(-1) <= 1).any(1)
    assert near_post.any()
    assert not (set(wall_sel.point_index[near_post].tolist()) & kept)
    assert set(wall_sel.point_index[~near_post].tolist()) <= kept


def test_lidar_degenerate():
    pairs = lidar_camera_pairs(torch.zeros(0, 3), [camera(0.0, "front")])
    assert len(pairs) == 0 and pairs.num_points == 0
    none = lidar_camera_pairs(sweep(), [])
    assert len(none) == 0 and none.num_points == 3000 and none.image_hw == ()


def test_lidar_pairs_need_only_a_camera_without_pixels():
    from ppkt.geometry import Camera

    points = torch.tensor([[0.0, 0.0, 2.0], [0.5, 0.0, 2.0], [0.0, 0.0, -2.0]])
    K = torch.tensor([[10.0, 0.0, 8.0], [0.0, 10.0, 6.0], [0.0, 0.0, 1.0]])
    pairs = lidar_camera_pairs(points, [Camera(K, torch.eye(4), (12, 16))], min_depth=1.0)
    assert pairs.point_index.tolist() == [0, 1]  # the point behind the camera has no pixel
    torch.testing.assert_close(pairs.uv, torch.tensor([[8.0, 6.0], [10.5, 6.0]]))


def test_rgbd_pairs_image_index_is_a_view_of_one_zero():
    depth = torch.full((4, 5), 2.0)
    K = torch.tensor([[5.0, 0, 2], [0, 5.0, 1.5], [0, 0, 1]])
    pairs = rgbd_pairs(depth, K, K, (4, 5))
    assert torch.equal(pairs.image_index, torch.zeros(20, dtype=torch.long))
    assert pairs.image_index.stride() == (0,)  # no P-long write per frame
    assert torch.equal(pairs.image_index[pairs.point_index > 3], torch.zeros(16, dtype=torch.long))

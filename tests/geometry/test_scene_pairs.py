"""Scene-level pairs on a hand scene: a wall at 3 m, an occluder at 1.5 m hiding its left half."""

import numpy as np
import pytest
import torch

from ppkt.geometry.scene_pairs import PosedView, scene_view_pairs

H = W = 20
K = torch.tensor([[10.0, 0, (W - 1) / 2], [0, 10.0, (H - 1) / 2], [0, 0, 1]], dtype=torch.float64)


def hand_scene():
    xs = np.linspace(-2.85, 2.85, 20)
    wall = np.array([[x, y, 3.0] for x in xs for y in (-0.5, 0.0, 0.5)])
    occluder = np.array([[x, y, 1.5] for x in np.linspace(-1.4, -0.1, 8) for y in (-0.3, 0.3)])
    return torch.tensor(np.concatenate([wall, occluder])), len(wall)


def depth_map(left: float, right: float) -> torch.Tensor:
    depth = torch.full((H, W), right)
    depth[:, : W // 2] = left  # pixel columns 0..9 look along x < 0
    return depth


def pose(tz: float = 0.0) -> torch.Tensor:
    T = torch.eye(4, dtype=torch.float64)
    T[2, 3] = tz
    return T


def view(depth, world_from_camera):
    return PosedView(depth, K, K, world_from_camera, torch.eye(4, dtype=torch.float64))


def naive_visible(points, depth, world_from_camera, abs_tol=0.05, rel_tol=0.02):
    seen = set()
    cam_from_world = torch.linalg.inv(world_from_camera)
    for n, p in enumerate(points.tolist()):
        x, y, z = (cam_from_world @ torch.tensor([*p, 1.0], dtype=torch.float64))[:3].tolist()
        if z <= 0:
            continue
        u, v = K[0, 0].item() * x / z + K[0, 2].item(), K[1, 1].item() * y / z + K[1, 2].item()
        if not (-0.5 <= u < W - 0.5 and -0.5 <= v < H - 0.5):
            continue
        d = float(depth[int(np.floor(v + 0.5)), int(np.floor(u + 0.5))])
        if d > 0 and abs(z - d) <= abs_tol + rel_tol * d:
            seen.add(n)
    return seen


def test_occluder_hides_the_points_behind_it():
    points, n_wall = hand_scene()
    pairs = scene_view_pairs(points, [view(depth_map(1.5, 3.0), pose())], (H, W))
    seen = set(pairs.point_index.tolist())
    wall_x = points[:n_wall, 0]
    hidden = {i for i in range(n_wall) if wall_x[i] < 0}
    in_view_right = {i for i in range(n_wall) if 0 < wall_x[i] < 3.0 * 0.95}
    assert not (seen & hidden)
    assert in_view_right <= seen
    assert set(range(n_wall, len(points))) <= seen  # the occluder itself is seen
    assert seen == naive_visible(points, depth_map(1.5, 3.0), pose())
    # pairs sit at the points' projections
    p = points[pairs.point_index]
    assert torch.allclose(pairs.uv[:, 0].double(), 10 * p[:, 0] / p[:, 2] + 9.5, atol=1e-4)


def test_every_view_has_its_own_occlusion_and_pose():
    points, n_wall = hand_scene()
    views = [
        view(depth_map(1.5, 3.0), pose()),
        view(depth_map(3.0, 3.0), pose()),  # nothing in front of the wall in this view's depth
        view(depth_map(2.5, 4.0), pose(-1.0)),  # one metre further back: same split, other depths
    ]
    pairs = scene_view_pairs(points, views, (H, W))
    for k, v in enumerate(views):
        got = set(pairs.point_index[pairs.image_index == k].tolist())
        assert got == naive_visible(points, v.depth, v.world_from_camera), k
    second = set(pairs.point_index[pairs.image_index == 1].tolist())
    assert {i for i in range(n_wall) if points[i, 0] < 0 and points[i, 0] > -2.85} <= second
    assert not (second & set(range(n_wall, len(points))))  # the occluder contradicts that depth
    assert pairs.image_index.tolist() == sorted(pairs.image_index.tolist())
    assert pairs.image_hw == ((H, W),) * 3


def test_degenerate_inputs():
    points, _ = hand_scene()
    none = scene_view_pairs(points, [], (H, W))
    assert len(none) == 0 and none.points.shape == points.shape
    blind = scene_view_pairs(points, [view(torch.zeros(H, W), pose())], (H, W))  # no valid depth
    assert len(blind) == 0
    behind = scene_view_pairs(points, [view(depth_map(1.5, 3.0), pose(10.0))], (H, W))  # everything behind
    assert len(behind) == 0
    with pytest.raises(ValueError, match="points_world"):
        scene_view_pairs(torch.zeros(4, 2), [], (H, W))

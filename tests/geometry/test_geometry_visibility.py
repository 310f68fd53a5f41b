import numpy as np
import pytest
import torch
from geometry_fixtures import room_depth

from ppkt.geometry import (
    CLIP2SCENE_ABS_TOL,
    OPENSCENE_REL_TOL,
    project_points,
    unproject_depth,
    visible_in_depth,
    zbuffer_visible,
)

K = torch.tensor([[40.0, 0, 15.5], [0, 40.0, 11.5], [0, 0, 1]], dtype=torch.float64)
HW = (24, 32)


def test_points_of_the_depth_map_are_visible_and_points_behind_are_not(dtype):
    depth = room_depth(*HW, dtype=dtype, holes=0.1)
    points, _ = unproject_depth(depth, K)
    assert visible_in_depth(points, K, depth).all()
    behind = points * 1.2  # 20 % further along the same rays: occluded
    assert not visible_in_depth(behind, K, depth).any()
    assert visible_in_depth(behind, K, depth, rel_tol=OPENSCENE_REL_TOL, abs_tol=0.0).all()
    in_front = points * 0.7  # 30 % closer: inconsistent with the measurement either way
    assert not visible_in_depth(in_front, K, depth, rel_tol=OPENSCENE_REL_TOL, abs_tol=0.0).any()


def test_tolerance_rule_hand_computed():
    depth = torch.full(HW, 2.0, dtype=torch.float64)
    depth[0, 0] = 0.0  # hole
    # on the optical axis (pixel (11.5, 15.5) is between pixels; use pixel (12, 16)): z vs d = 2
    ray = torch.tensor([(16 - 15.5) / 40, (12 - 11.5) / 40, 1.0], dtype=torch.float64)
    zs = torch.tensor([1.93, 1.96, 2.0, 2.04, 2.07, 2.45, 2.55], dtype=torch.float64)
    points = ray * zs[:, None]
    assert CLIP2SCENE_ABS_TOL == 0.05
    assert visible_in_depth(points, K, depth).tolist() == [False, True, True, True, False, False, False]
    rel = visible_in_depth(points, K, depth, rel_tol=0.25, abs_tol=0.0)
    assert rel.tolist() == [True, True, True, True, True, True, False]
    both = visible_in_depth(points, K, depth, rel_tol=0.025, abs_tol=0.03)  # 8 cm at 2 m
    assert both.tolist() == [True, True, True, True, True, False, False]
    hole_point = torch.tensor([[(0 - 15.5) / 40 * 2.0, (0 - 11.5) / 40 * 2.0, 2.0]], dtype=torch.float64)
    assert not visible_in_depth(hole_point, K, depth, abs_tol=10.0).any()


def test_outside_or_behind_never_visible():
    depth = torch.full(HW, 2.0)
    points = torch.tensor([[0.0, 0.0, -2.0], [100.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    assert not visible_in_depth(points, K, depth, abs_tol=1e3).any()
    assert not zbuffer_visible(points, K, HW, depth_tol=1e3).any()


def test_degenerate_inputs():
    empty = torch.zeros(0, 3)
    assert visible_in_depth(empty, K, torch.ones(HW)).shape == (0,)
    assert zbuffer_visible(empty, K, HW).shape == (0,)
    one = torch.tensor([[0.0, 0.0, 1.0]])
    assert zbuffer_visible(one, torch.eye(3), (1, 1)).tolist() == [True]
    assert visible_in_depth(one, torch.eye(3), torch.ones(1, 1)).tolist() == [True]


def naive_zbuffer(points: np.ndarray, K: np.ndarray, hw, radius: int, tol: float) -> np.ndarray:
    H, W = hw
    pix = []
    for x, y, z in points:
        if z <= 1e-6:
            pix.append(None)
            continue
        u, v = K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]
        inside = -0.5 <= u < W - 0.5 and -0.5 <= v < H - 0.5
        pix.append((int(np.floor(v + 0.5)), int(np.floor(u + 0.5))) if inside else None)
    visible = np.zeros(len(points), dtype=bool)
    for n, p in enumerate(pix):
        if p is None:
            continue
        nearest = min(
            points[m, 2]
            for m, q in enumerate(pix)
            if q is not None and abs(q[0] - p[0]) <= radius and abs(q[1] - p[1]) <= radius
        )
        visible[n] = points[n, 2] <= nearest + tol
    return visible


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_zbuffer_matches_naive_loop(radius, dtype):
    g = torch.Generator().manual_seed(radius)
    points = torch.randn(300, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.7, 1.5])
    points[:, 2] += 3.0
    points = points.to(dtype)
    got = zbuffer_visible(points, K, HW, radius_px=radius, depth_tol=0.2)
    ref = naive_zbuffer(points.double().numpy(), K.numpy(), HW, radius, 0.2)
    np.testing.assert_array_equal(got.numpy(), ref)
    assert 0 < got.sum() < len(points)


def test_zbuffer_hides_a_wall_behind_an_object():
    wall_depth = torch.full(HW, 4.0, dtype=torch.float64)
    wall, wall_ij = unproject_depth(wall_depth, K)
    box_depth = torch.zeros(HW, dtype=torch.float64)
    box_depth[8:16, 10:20] = 2.0
    box, _ = unproject_depth(box_depth, K)
    points = torch.cat([wall, box])
    visible = zbuffer_visible(points, K, HW)
    behind_box = (wall_ij[:, 0] >= 8) & (wall_ij[:, 0] < 16) & (wall_ij[:, 1] >= 10) & (wall_ij[:, 1] < 20)
    assert torch.equal(visible[: len(wall)], ~behind_box)
    assert visible[len(wall) :].all()


def test_zbuffer_neighbourhood_closes_gaps_in_sparse_clouds():
    # a sparse foreground (every 3rd pixel) in front of a dense background
    wall, wall_ij = unproject_depth(torch.full(HW, 4.0, dtype=torch.float64), K)
    fg_depth = torch.zeros(HW, dtype=torch.float64)
    fg_depth[6:18:3, 6:24:3] = 1.5
    fg, _ = unproject_depth(fg_depth, K)
    points = torch.cat([wall, fg])
    inner = (wall_ij[:, 0] >= 7) & (wall_ij[:, 0] <= 14) & (wall_ij[:, 1] >= 7) & (wall_ij[:, 1] <= 20)
    plain = zbuffer_visible(points, K, HW, radius_px=0)
    dilated = zbuffer_visible(points, K, HW, radius_px=1)
    assert plain[: len(wall)][inner].any()  # seen "through" the gaps
    assert not dilated[: len(wall)][inner].any()
    assert dilated[len(wall) :].all()


def test_memory_is_linear():
    """1M points on a 1000x1000 image: an (N, H*W) mask would need 10^12 bytes."""
    g = torch.Generator().manual_seed(0)
    points = torch.rand(1_000_000, 3, generator=g) * torch.tensor([2.0, 2.0, 5.0])
    points[:, :2] -= 1.0
    Kbig = torch.tensor([[500.0, 0, 499.5], [0, 500.0, 499.5], [0, 0, 1]])
    visible = zbuffer_visible(points, Kbig, (1000, 1000), radius_px=1)
    assert visible.shape == (1_000_000,) and 0 < int(visible.sum()) < 1_000_000
    depth = torch.full((1000, 1000), 2.5)
    assert visible_in_depth(points, Kbig, depth).shape == (1_000_000,)


def test_projection_agrees_with_zbuffer_pixel():
    points = torch.tensor([[0.01, 0.0, 1.0], [0.012, 0.0, 2.0]], dtype=torch.float64)
    uv, _, _ = project_points(points, K, HW)
    assert torch.equal(torch.floor(uv + 0.5)[0], torch.floor(uv + 0.5)[1])  # same pixel
    assert zbuffer_visible(points, K, HW, depth_tol=0.5).tolist() == [True, False]

"""A real RGB-D frame (Middlebury 2014 Motorcycle, from scikit-image) through the readers and pairs."""

import numpy as np
import pytest
import torch
from PIL import Image

from ppkt.data.real_frame import MOTORCYCLE_BASELINE_M, MOTORCYCLE_DOFFS_PX, middlebury_motorcycle_frame
from ppkt.data.scannet import ScanNetFrames

pytest.importorskip("skimage")


def _backproject(depth, K):
    i, j = np.nonzero(depth > 0)
    z = depth[i, j].astype(np.float64)
    return np.stack([(j - K[0, 2]) * z / K[0, 0], (i - K[1, 2]) * z / K[1, 1], z], axis=1), i, j


def test_backprojected_cloud_has_metric_extent(motorcycle_frame):
    frame = motorcycle_frame
    assert frame.color.shape == (500, 741, 3) and frame.depth.shape == (500, 741)
    assert 0.85 < (frame.depth > 0).mean() < 1.0  # ground truth has a few holes
    points, _, _ = _backproject(frame.depth, frame.K_depth)
    # The motorcycle stands 2-3 m from the camera, the wall behind it about 5 m.
    assert 2.0 < points[:, 2].min() < 2.5 and 4.5 < points[:, 2].max() < 5.5
    bike = points[points[:, 2] < 3.2]
    width, height, _ = np.ptp(bike, axis=0)
    assert 1.5 < width < 3.0 and 0.8 < height < 1.8  # a motorcycle, seen from its side


def test_pairs_sample_the_right_colours_in_the_other_stereo_view(motorcycle_frame):
    """Left depth + the right camera as 'colour' camera: colours must agree with the left image."""
    from skimage.data import stereo_motorcycle

    from ppkt.geometry import rgbd_pairs

    _, right, _ = stereo_motorcycle()
    frame = motorcycle_frame
    K_right = frame.K_color.copy()
    K_right[0, 2] += MOTORCYCLE_DOFFS_PX  # doffs = difference of the principal points' x
    right_from_left = np.eye(4)
    right_from_left[0, 3] = -MOTORCYCLE_BASELINE_M  # the right camera sits +baseline along x
    pairs = rgbd_pairs(
        torch.from_numpy(frame.depth),
        torch.from_numpy(frame.K_depth),
        torch.from_numpy(K_right),
        right.shape[:2],
        color_from_depth=torch.from_numpy(right_from_left),
    )
    assert 0.9 * (frame.depth > 0).sum() < len(pairs.points)  # few points leave the right view
    uv = pairs.uv.numpy()
    right_colors = right[np.floor(uv[:, 1] + 0.5).astype(int), np.floor(uv[:, 0] + 0.5).astype(int)]
    points = pairs.points.numpy().astype(np.float64)
    K = frame.K_depth
    left_j = np.round(K[0, 0] * points[:, 0] / points[:, 2] + K[0, 2]).astype(int)
    left_i = np.round(K[1, 1] * points[:, 1] / points[:, 2] + K[1, 2]).astype(int)
    left_colors = frame.color[left_i, left_j]
    error = np.abs(left_colors.astype(float) - right_colors).mean()
    unshifted = np.abs(left_colors.astype(float) - right[left_i, left_j]).mean()
    shuffled = np.abs(
        left_colors.astype(float) - right_colors[np.random.default_rng(0).permutation(len(uv))]
    ).mean()
    assert error < 12 and error < 0.3 * unshifted and error < 0.2 * shuffled


def test_downscaled_depth_pairs_with_full_resolution_colour(motorcycle_frame):
    """Depth and colour of different sizes and K (as in ScanNet) pair up consistently."""
    from ppkt.geometry import rgbd_pairs

    small = middlebury_motorcycle_frame(downscale=4)
    assert small.depth.shape == (125, 185) and small.color.shape == (125, 185, 3)
    pairs = rgbd_pairs(
        torch.from_numpy(small.depth),
        torch.from_numpy(small.K_depth),
        torch.from_numpy(motorcycle_frame.K_color),
        motorcycle_frame.color_hw,
    )
    points, i, j = _backproject(small.depth, small.K_depth)
    assert len(pairs.points) == len(points)
    uv = pairs.uv.numpy()
    full = motorcycle_frame.color[np.floor(uv[:, 1] + 0.5).astype(int), np.floor(uv[:, 0] + 0.5).astype(int)]
    # The pair's full-resolution pixel lies at the centre of the depth pixel's 4x4 block.
    assert np.abs(uv[:, 0] - (4 * j + 1.5)).max() < 1e-3 and np.abs(uv[:, 1] - (4 * i + 1.5)).max() < 1e-3
    error = np.abs(full.astype(float) - small.color[i, j]).mean()
    assert error < 12


def test_real_frame_survives_the_scannet_layout(tmp_path, motorcycle_frame, matrix_writer):
    """Write the real frame as a ScanNet export (jpg + uint16 mm png) and read it back."""
    scene = tmp_path / "scene0000_00"
    for folder in ("color", "depth", "pose", "intrinsic"):
        (scene / folder).mkdir(parents=True)
    Image.fromarray(motorcycle_frame.color).save(scene / "color" / "0.jpg", quality=95)
    Image.fromarray(np.round(motorcycle_frame.depth * 1000).astype(np.uint16)).save(scene / "depth" / "0.png")
    matrix_writer(scene / "pose" / "0.txt", np.eye(4))
    K4 = np.eye(4)
    K4[:3, :3] = motorcycle_frame.K_color
    matrix_writer(scene / "intrinsic" / "intrinsic_color.txt", K4)
    matrix_writer(scene / "intrinsic" / "intrinsic_depth.txt", K4)
    frame = ScanNetFrames(tmp_path)[0]
    assert np.abs(frame.depth - motorcycle_frame.depth).max() <= 0.0005 + 1e-6
    assert np.abs(frame.color.astype(int) - motorcycle_frame.color).mean() < 3
    assert np.allclose(frame.K_color, motorcycle_frame.K_color, atol=1e-6)
    # Colour decoded at 1/4 scale (JPEG DCT scaling) matches a 4x4 block average, with the same K.
    small = ScanNetFrames(tmp_path, color_downscale=4)[0]
    reference = middlebury_motorcycle_frame(downscale=4)
    assert small.color.shape == (125, 186, 3) and small.depth.shape == (500, 741)
    assert np.allclose(small.K_color, reference.K_color) and np.allclose(small.K_depth, frame.K_depth)
    assert np.abs(small.color[:, :185].astype(int) - reference.color).mean() < 4

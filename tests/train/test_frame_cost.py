"""Per-frame cost controls of RGB-D samples: the depth stride (data.max_depth_pixels) and the exact
fast paths of sample building, against the previous computations kept here as references."""

import dataclasses

import numpy as np
import pytest
import torch
from train_fixtures import make_frame

from ppkt.geometry import rgbd_pairs, uv_to_ij
from ppkt.train.config import AugmentConfig, DataConfig, PretrainConfig, validate
from ppkt.train.samples import color_at, depth_stride, rgbd_sample, strided_depth


@pytest.mark.parametrize(
    "hw,max_pixels,expected",
    [
        ((480, 640), None, 1),
        ((480, 640), 307200, 1),
        ((480, 640), 307199, 2),
        ((480, 640), 76800, 2),
        ((480, 640), 20000, 4),
        ((96, 128), 20000, 1),
        ((5, 7), 1, 7),
        ((1, 1), 1, 1),
    ],
)
def test_depth_stride_is_the_smallest_that_fits(hw, max_pixels, expected):
    s = depth_stride(hw, max_pixels)
    assert s == expected
    if max_pixels is not None:
        fits = lambda k: -(-hw[0] // k) * -(-hw[1] // k) <= max_pixels  # noqa: E731
        assert fits(s) and (s == 1 or not fits(s - 1))


def test_strided_depth_keeps_the_points_of_the_kept_pixels():
    frame = make_frame(24, 32, seed=3)
    full = rgbd_pairs(torch.from_numpy(frame.depth), frame.K_depth, frame.K_color, (24, 32))
    for s in (2, 3):
        depth, K = strided_depth(frame.depth, frame.K_depth, s)
        assert depth.shape == (-(-24 // s), -(-32 // s))
        sub = rgbd_pairs(torch.from_numpy(np.ascontiguousarray(depth)), K, frame.K_color, (24, 32))
        # pixel (i, j) of the strided image is pixel (s i, s j): same point, same colour pixel
        rows = torch.arange(0, 24, s)[:, None] * 32 + torch.arange(0, 32, s)[None, :]
        torch.testing.assert_close(sub.points, full.points[rows.reshape(-1)], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(sub.uv, full.uv[rows.reshape(-1)], rtol=1e-6, atol=1e-5)
    same, K1 = strided_depth(frame.depth, frame.K_depth, 1)
    assert same is frame.depth and K1 is frame.K_depth


def test_max_depth_pixels_bounds_the_points_of_a_sample():
    frame = make_frame(48, 64, seed=1)
    aug = AugmentConfig(
        rotate_up=0.0, flip_3d=0.0, scale_min=1.0, scale_max=1.0, hflip=0.0, crop_scale_min=1.0
    )
    full = rgbd_sample(frame, DataConfig(image_hw=(24, 32)), aug, "rgb", np.random.default_rng(0))
    capped = rgbd_sample(
        frame, DataConfig(image_hw=(24, 32), max_depth_pixels=800), aug, "rgb", np.random.default_rng(0)
    )
    assert len(full.points) == 48 * 64 and len(capped.points) == 24 * 32  # stride 2
    torch.testing.assert_close(capped.points, full.points.reshape(48, 64, 3)[::2, ::2].reshape(-1, 3))
    with pytest.raises(ValueError, match="max_depth_pixels"):
        validate(dataclasses.replace(PretrainConfig(), data=DataConfig(max_depth_pixels=0)))


def test_color_at_equals_advanced_indexing():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 7, 9, generator=g)
    uv = torch.rand(500, 2, generator=g) * torch.tensor([9.0, 7.0]) - 0.5
    uv[0] = torch.tensor([8.49, 6.49])  # last pixel
    ij = uv_to_ij(uv)
    assert torch.equal(color_at(image, uv), image[:, ij[:, 0], ij[:, 1]].t())

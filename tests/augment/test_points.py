"""The one point augmentation (``ppkt.augment.points.PointAugmentation``) and its three users."""

import math

import numpy as np
import torch

from ppkt.augment.config import AugmentConfig
from ppkt.augment.points import (
    Z_UP,
    PointAugmentation,
    SceneAugmentation,
    SimilarityDraw,
    augment_points,
    rotation_about_axis,
)
from ppkt.data.boxes import Boxes3D, DetectionScene
from ppkt.data.types import LabeledScene
from ppkt.eval.detection.data import DetectionAugmentation


def test_similarity_hand_case_rotate_then_mirror_then_scale():
    # 90 degrees about z: (1, 2, 3) -> (-2, 1, 3); mirror x -> (2, 1, 3); scale 2 -> (4, 2, 6).
    draw = SimilarityDraw(
        rotation=rotation_about_axis(Z_UP, math.pi / 2), angle=math.pi / 2,
        mirror=torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64), scale=2.0,
    )  # fmt: skip
    out = draw.apply(torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([[4.0, 2.0, 6.0]], dtype=torch.float64))


def test_draw_order_and_what_is_drawn():
    aug = PointAugmentation(rotate_up=1.0, flip=0.5, flip_axes=(0, 1), scale_min=0.8, scale_max=1.2)
    draw = aug.draw(np.random.default_rng(7), Z_UP)
    replay = np.random.default_rng(7)
    angle = replay.uniform(-1.0, 1.0)
    flips = replay.random(2) < 0.5
    scale = replay.uniform(0.8, 1.2)
    assert draw.angle == angle and draw.scale == scale
    expected_mirror = [-1.0 if f else 1.0 for f in flips] + [1.0]
    mirror = draw.mirror.tolist() if draw.mirror is not None else [1.0, 1.0, 1.0]
    assert mirror == expected_mirror
    # Off switches draw nothing: only the scale comes out of the generator.
    off = PointAugmentation(rotate_up=0.0, flip=0.0, scale_min=0.8, scale_max=1.2)
    rng = np.random.default_rng(3)
    assert off.draw(rng, Z_UP).scale == np.random.default_rng(3).uniform(0.8, 1.2)


def test_augmentation_is_a_scaled_isometry_that_keeps_up():
    points = torch.randn(200, 3, dtype=torch.float64)
    up = (0.0, -1.0, 0.0)
    aug = PointAugmentation(rotate_up=math.pi, flip=0.5, flip_axes=(0,), scale_min=0.5, scale_max=2.0)
    for seed in range(5):
        draw = aug.draw(np.random.default_rng(seed), up)
        out = draw.apply(points)
        torch.testing.assert_close(
            torch.cdist(out, out), draw.scale * torch.cdist(points, points), atol=1e-6, rtol=1e-9
        )
        # The up component is only scaled (rotation about up, mirroring of x).
        torch.testing.assert_close(out[:, 1], draw.scale * points[:, 1])


def test_headings_follow_the_points():
    boxes = Boxes3D(
        np.array([[1.0, 2.0, 0.5], [-3.0, 0.5, 1.0]]), np.array([[2.0, 1.0, 1.0], [0.5, 1.5, 2.0]]),
        np.array([0.3, -2.0]), np.array([0, 1]), ("a", "b"),
    )  # fmt: skip
    aug = PointAugmentation(rotate_up=math.pi, flip=0.5, flip_axes=(0, 1), scale_min=0.7, scale_max=1.3)
    mirrors_seen = set()
    for seed in range(16):
        draw = aug.draw(np.random.default_rng(seed), Z_UP)
        mirrors_seen.add(None if draw.mirror is None else tuple(draw.mirror.tolist()))
        moved_corners = draw.apply(
            torch.from_numpy(boxes.corners().reshape(-1, 3).astype(np.float64))
        ).numpy()
        moved = Boxes3D(
            draw.apply(torch.from_numpy(boxes.centers.astype(np.float64))).numpy(), boxes.sizes * draw.scale,
            draw.heading(boxes.headings), boxes.labels, boxes.class_names,
        )  # fmt: skip
        # The same 8 corners, in whatever order the mirrored box lists them.
        got = np.sort(moved.corners().reshape(2, 8, 3), axis=1)
        want = np.sort(moved_corners.reshape(2, 8, 3), axis=1)
        np.testing.assert_allclose(got, want, atol=1e-5)
        # Corners fix a heading only up to pi; the facing direction fixes it fully.
        facing = np.stack([np.cos(boxes.headings), np.sin(boxes.headings), np.zeros(2)], 1)
        moved_facing = draw.apply(torch.from_numpy(facing)).numpy()
        moved_heading = draw.heading(boxes.headings)
        np.testing.assert_allclose(np.cos(moved_heading) * draw.scale, moved_facing[:, 0], atol=1e-6)
        np.testing.assert_allclose(np.sin(moved_heading) * draw.scale, moved_facing[:, 1], atol=1e-6)
    assert len(mirrors_seen) >= 3  # x, y, both and none mirrored were all exercised


def test_pretraining_segmentation_and_detection_share_one_draw():
    rng_points = np.random.default_rng(0)
    points = (rng_points.random((300, 3)) * 4).astype(np.float32)
    # Pretraining: camera frame, x mirrored.
    cfg = AugmentConfig(flip_3d=0.5, scale_min=0.9, scale_max=1.1)
    pre = augment_points(torch.from_numpy(points), cfg, np.random.default_rng(5), torch.Generator())
    shared = PointAugmentation(
        rotate_up=cfg.rotate_up, flip=0.5, flip_axes=(0,), scale_min=0.9, scale_max=1.1
    )
    want = shared.draw(np.random.default_rng(5), (0.0, -1.0, 0.0)).apply(torch.from_numpy(points).double())
    assert torch.equal(pre, want.float())
    # Segmentation: z up, x and y mirrored, then jitter.
    scene = LabeledScene(
        points=points, colors=np.zeros((300, 3), np.uint8), labels=np.zeros(300, np.int64),
        scene_id="s", class_names=("a",),
    )  # fmt: skip
    seg = SceneAugmentation(jitter_std=0.0)(scene, np.random.default_rng(9))
    zup = PointAugmentation(flip_axes=(0, 1), jitter_std=0.0)
    want = zup.draw(np.random.default_rng(9), Z_UP).apply(torch.from_numpy(points).double())
    np.testing.assert_array_equal(seg.points, want.numpy().astype(np.float32))
    # Detection: the same draw moves the points.
    det_scene = DetectionScene(
        points, np.zeros((300, 3), np.uint8), Boxes3D.empty(("a",)), np.full(300, -1, np.int64), "s"
    )
    det = DetectionAugmentation(flip=0.5, rotate_up=math.pi, scale_min=0.9, scale_max=1.1)(
        det_scene, np.random.default_rng(9)
    )
    np.testing.assert_array_equal(det.points, want.numpy().astype(np.float32))


# Outputs of the two functions this augmentation replaced (ppkt at 2ce7be6: pretraining's torch
# augment_points and fine-tuning's numpy SceneAugmentation), pinned so that the same seed keeps
# giving the same points.
PINNED_POINTS = np.array(
    [[0.5, -1.25, 2.0], [1.75, 0.3, 3.5], [-0.8, 0.9, 1.2], [2.2, -0.4, 4.1]], dtype=np.float32
)
PINNED_PRETRAINING = {
    3: [[-0.6316645741462708, -1.3253185749053955, -2.0925097465515137],
        [-0.3088156580924988, 0.318076491355896, -4.137394428253174],
        [-1.3804354667663574, 0.9542293548583984, -0.6577311754226685],
        [-0.22519584000110626, -0.42410194873809814, -4.9281768798828125]],
    11: [[-1.12237548828125, -1.2753745317459106, -1.7789243459701538],
         [-1.3471975326538086, 0.3060899078845978, -3.758396625518799],
         [-1.4490317106246948, 0.918269693851471, -0.25614649057388306],
         [-1.4723811149597168, -0.40811988711357117, -4.513312816619873]],
}  # fmt: skip
PINNED_SEGMENTATION = {
    3: [[1.0853339433670044, 0.8293973207473755, 2.0227649211883545],
        [1.3698939085006714, -1.1778547763824463, 3.5725133419036865],
        [-1.165959119796753, -0.3704783618450165, 1.2183125019073486],
        [2.125138521194458, -0.8023032546043396, 4.16541862487793]],
    11: [[1.1297956705093384, 0.4524424374103546, 1.8143242597579956],
         [0.898693859577179, -1.3296947479248047, 3.1608457565307617],
         [-1.082100510597229, -0.04008983448147774, 1.0902873277664185],
         [1.638218879699707, -1.1917721033096313, 3.7158403396606445]],
}  # fmt: skip


def test_same_seed_same_points_as_before_the_merge():
    for seed, want in PINNED_PRETRAINING.items():
        rng = np.random.default_rng(seed)
        got = augment_points(torch.from_numpy(PINNED_POINTS), AugmentConfig(), rng, torch.Generator())
        np.testing.assert_array_equal(got.numpy(), np.array(want, dtype=np.float32))
    scene = LabeledScene(
        points=PINNED_POINTS, colors=np.zeros((4, 3), np.uint8), labels=np.zeros(4, np.int64),
        scene_id="s", class_names=("a",),
    )  # fmt: skip
    for seed, want in PINNED_SEGMENTATION.items():
        got = SceneAugmentation()(scene, np.random.default_rng(seed))
        np.testing.assert_array_equal(got.points, np.array(want, dtype=np.float32))

import colorsys

import numpy as np
import pytest
from eval_rooms import make_room

from ppkt.augment.color import ColorAugmentation, hsv_to_rgb, rgb_to_hsv
from ppkt.augment.points import SceneAugmentation
from ppkt.eval.config import EvalAugmentConfig

GEOMETRY_OFF = dict(rotate_up=0.0, flip=0.0, scale_min=1.0, scale_max=1.0, jitter_std=0.0)


def test_hsv_matches_hand_values_and_colorsys():
    rgb = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5], [0, 0, 0], [1, 1, 0], [0.2, 0.4, 0.3]])
    hsv = rgb_to_hsv(rgb)
    np.testing.assert_allclose(
        hsv[:6], [[0, 1, 1], [1 / 3, 1, 1], [2 / 3, 1, 1], [0, 0, 0.5], [0, 0, 0], [1 / 6, 1, 1]]
    )
    rng = np.random.default_rng(0)
    colours = rng.random((500, 3))
    expected = np.array([colorsys.rgb_to_hsv(*c) for c in colours])
    np.testing.assert_allclose(rgb_to_hsv(colours), expected, atol=1e-12)
    np.testing.assert_allclose(hsv_to_rgb(rgb_to_hsv(colours)), colours, atol=1e-12)
    assert rgb_to_hsv(np.zeros((0, 3))).shape == (0, 3) and hsv_to_rgb(np.zeros((0, 3))).shape == (0, 3)


def test_colour_steps_off_leave_colours_and_points_alone():
    scene = make_room("a", 0)
    plain = SceneAugmentation()(scene, np.random.default_rng(3))
    assert plain.colors is scene.colors
    coloured = SceneAugmentation(color=ColorAugmentation(translation=0.1, hue_max=0.5))(
        scene, np.random.default_rng(3)
    )
    np.testing.assert_array_equal(coloured.points, plain.points)  # colour draws come after the geometry's
    assert coloured.colors.dtype == np.uint8 and not np.array_equal(coloured.colors, scene.colors)


def test_translation_shifts_every_point_by_one_bounded_offset():
    scene = make_room("a", 0)
    mid = scene.colors.astype(np.int64).clip(40, 215).astype(np.uint8)  # no clipping at the range ends
    scene = type(scene)(scene.points, mid, scene.labels, scene.scene_id, scene.class_names)
    for seed in range(5):
        out = SceneAugmentation(color=ColorAugmentation(translation=0.1), **GEOMETRY_OFF)(
            scene, np.random.default_rng(seed)
        )
        shift = out.colors.astype(np.int64) - mid
        assert (shift.max(axis=0) - shift.min(axis=0) <= 1).all()  # one offset per channel, up to rounding
        assert np.abs(shift).max() <= 0.1 * 255 + 1


def test_jitter_has_the_requested_spread():
    n = 20000
    grey = np.full((n, 3), 128, np.uint8)
    scene = make_room("a", 0)
    scene = type(scene)(np.zeros((n, 3), np.float32), grey, np.zeros(n, np.int64), "grey", scene.class_names)
    out = SceneAugmentation(color=ColorAugmentation(jitter_std=0.05), **GEOMETRY_OFF)(
        scene, np.random.default_rng(0)
    )
    noise = out.colors.astype(np.float64) - 128
    assert abs(noise.mean()) < 0.2 and noise.std() == pytest.approx(0.05 * 255, rel=0.03)


def test_auto_contrast_keeps_the_order_and_widens_the_range():
    scene = make_room("a", 1)
    out = SceneAugmentation(color=ColorAugmentation(auto_contrast=1.0), **GEOMETRY_OFF)(
        scene, np.random.default_rng(0)
    )
    before, after = scene.colors.astype(np.int64), out.colors.astype(np.int64)
    for c in range(3):
        order = np.argsort(before[:, c], kind="stable")
        assert (np.diff(after[order, c]) >= 0).all()
        assert np.ptp(after[:, c]) >= np.ptp(before[:, c])


def test_hue_shift_keeps_value_and_saturation_and_greys():
    scene = make_room("a", 2)
    grey = np.array([[90, 90, 90]], np.uint8)
    colours = np.concatenate([scene.colors[:-1], grey])
    scene = type(scene)(scene.points, colours, scene.labels, scene.scene_id, scene.class_names)
    out = SceneAugmentation(color=ColorAugmentation(hue_max=0.5), **GEOMETRY_OFF)(
        scene, np.random.default_rng(4)
    )
    before, after = rgb_to_hsv(colours / 255.0), rgb_to_hsv(out.colors / 255.0)
    np.testing.assert_allclose(after[:, 2], before[:, 2], atol=1 / 255)
    np.testing.assert_array_equal(out.colors[-1], grey[0])
    saturated = before[:, 1] > 0.3
    hue_change = (after[saturated, 0] - before[saturated, 0]) % 1.0
    assert np.ptp(np.minimum(hue_change, 1 - hue_change)) < 0.05  # one shift for the whole scene
    assert not np.array_equal(out.colors, colours)


def test_config_defaults_are_the_minkowski_recipe_and_reach_the_augmentation():
    aug = EvalAugmentConfig().build()
    assert aug.color == ColorAugmentation(
        auto_contrast=0.2, translation=0.1, jitter_std=0.05, hue_max=0.5, saturation_max=0.2
    )
    scene = make_room("a", 0)
    first = aug(scene, np.random.default_rng(7))
    again = aug(scene, np.random.default_rng(7))
    np.testing.assert_array_equal(first.colors, again.colors)

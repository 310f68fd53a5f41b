import json

import numpy as np
import pytest
from PIL import Image

from ppkt.data.ply import read_ply_vertices
from ppkt.viz.colors import class_palette, colormap, label_colors
from ppkt.viz.figures import (
    correspondence_overlay,
    feature_pca_figure,
    read_metrics,
    segmentation_figure,
    similarity_figure,
    training_curves_figure,
)
from ppkt.viz.panels import save_colored_ply, save_png
from ppkt.viz.pca import fit_pca, pca_colors
from ppkt.viz.render import View, camera_from_world_looking_at, orbit_view, rasterize_points


def _room(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    floor = np.c_[rng.uniform(0, 4, n), rng.uniform(0, 3, n), np.zeros(n)]
    wall = np.c_[rng.uniform(0, 4, n // 2), np.full(n // 2, 3.0), rng.uniform(0, 2.5, n // 2)]
    box = np.c_[rng.uniform(1, 2, n // 2), rng.uniform(1, 1.5, n // 2), rng.uniform(0, 0.8, n // 2)]
    points = np.concatenate([floor, wall, box])
    labels = np.r_[np.zeros(n, int), np.ones(n // 2, int), np.full(n // 2, 2)]
    return points, labels


def _assert_rich_image(image, hw=None, min_colors=10):
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    if hw is not None:
        assert image.shape[:2] == hw
    colors = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colors) > min_colors, f"only {len(colors)} colours"
    assert image.std() > 10  # not blank


def test_look_at_is_a_rotation_and_centre_projects_to_centre():
    cam_from_world = camera_from_world_looking_at(np.array([0.0, -5, 1]), np.array([0.0, 0, 1]))
    R = cam_from_world[:3, :3]
    assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1)
    K = np.array([[100.0, 0, 31.5], [0, 100, 23.5], [0, 0, 1]])
    view = View(K, cam_from_world, (48, 64))
    # target straight ahead -> image centre; a point above the target -> above the centre (smaller v)
    image, index = rasterize_points(
        np.array([[0.0, 0, 1], [0, 0, 1.5]]), np.array([[255, 0, 0], [0, 255, 0]]), view, radius_px=0
    )
    assert index[23, 31] == 0 or index[24, 32] == 0
    ys, _ = np.nonzero(index == 1)
    assert ys.max() < 23


def test_nearest_point_wins():
    view = View(np.array([[50.0, 0, 9.5], [0, 50, 9.5], [0, 0, 1]]), np.eye(4), (20, 20))
    points = np.array([[0.0, 0, 2.0], [0, 0, 1.0], [0, 0, 3.0]])
    colors = np.array([[10, 10, 10], [20, 20, 20], [30, 30, 30]], np.uint8)
    image, index = rasterize_points(points, colors, view, radius_px=1)
    assert index[10, 10] == 1 and tuple(image[10, 10]) == (20, 20, 20)
    empty, empty_index = rasterize_points(np.zeros((0, 3)), np.zeros((0, 3)), view)
    assert (empty_index == -1).all() and (empty == 255).all()


def test_colormap_and_palette():
    c = colormap(np.array([0.0, 0.5, 1.0, np.nan]), 0, 1)
    assert c.shape == (4, 3) and tuple(c[3]) == (0, 0, 0)
    assert c[0].sum() < c[2].sum()  # dark to light
    pal = class_palette(20)
    assert len(np.unique(pal, axis=0)) == 20
    assert tuple(label_colors(np.array([-1]), 20)[0]) == (0, 0, 0)


def test_pca_recovers_dominant_direction_and_is_deterministic():
    rng = np.random.default_rng(0)
    direction = np.array([3.0, 0, 0, 4]) / 5
    feats = rng.normal(size=(500, 1)) * 10 * direction + rng.normal(size=(500, 4)) * 0.1
    mean, basis = fit_pca(feats)
    assert abs(abs(float(basis[:, 0].numpy() @ direction)) - 1) < 1e-3
    assert np.array_equal(pca_colors(feats), pca_colors(feats))
    assert pca_colors(np.zeros((0, 4))).shape == (0, 3)


def test_feature_pca_and_ply(tmp_path):
    points, labels = _room()
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16))
    point_feats = centres[labels] + 0.1 * rng.normal(size=(len(points), 16))
    image = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    pixel_feats = rng.normal(size=(16, 15, 20))
    figure, colors = feature_pca_figure(
        points, point_feats, image, pixel_feats, point_colors=label_colors(labels, 3)
    )
    _assert_rich_image(figure)
    path = save_png(tmp_path / "pca.png", figure)
    assert Image.open(path).size == (figure.shape[1], figure.shape[0])
    save_colored_ply(tmp_path / "pca.ply", points, colors)
    back = read_ply_vertices(tmp_path / "pca.ply")
    assert (
        len(back["x"]) == len(points)
        and len(np.unique(np.c_[back["red"], back["green"], back["blue"]], axis=0)) > 10
    )


def test_similarity_overlay_segmentation(tmp_path):
    points, labels = _room()
    rng = np.random.default_rng(2)
    feats = np.eye(3)[labels] + 0.2 * rng.normal(size=(len(points), 3))
    image = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    sim = similarity_figure(5, points, feats, image, rng.normal(size=(3, 15, 20)), (40.0, 30.0))
    _assert_rich_image(sim)
    view = orbit_view(points, (120, 160))
    uv = rng.uniform(0, 79, size=(500, 2)) * [1, 59 / 79]
    overlay = correspondence_overlay(image, uv, rng.uniform(0.5, 4, 500))
    _assert_rich_image(overlay, (60, 80))
    pred = labels.copy()
    pred[::7] = 1
    seg = segmentation_figure(points, pred, labels, ("floor", "wall", "table"), view=view)
    _assert_rich_image(seg, min_colors=5)


def test_training_curves(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps({"step": s, "loss": 8.0 / (1 + s), "lr": 0.1}) for s in range(50)))
    picture = training_curves_figure(read_metrics(path))
    _assert_rich_image(picture, min_colors=5)
    (tmp_path / "bad.jsonl").write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        read_metrics(tmp_path / "bad.jsonl")


def _lab(rgb):
    """CIELAB of sRGB colours, written out from the CIE formulas (D65 white), independent of ppkt."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    x = (0.4124564 * lin[:, 0] + 0.3575761 * lin[:, 1] + 0.1804375 * lin[:, 2]) / 0.95047
    y = 0.2126729 * lin[:, 0] + 0.7151522 * lin[:, 1] + 0.0721750 * lin[:, 2]
    z = (0.0193339 * lin[:, 0] + 0.1191920 * lin[:, 1] + 0.9503041 * lin[:, 2]) / 1.08883

    def f(t):
        return np.where(t > 216 / 24389, np.cbrt(t), (24389 / 27 * t + 16) / 116)

    return np.stack([116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))], 1)


def test_every_pair_of_class_colours_is_easy_to_tell_apart():
    for n, threshold in ((20, 35.0), (40, 25.0)):
        lab = _lab(class_palette(n))
        distance = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
        np.fill_diagonal(distance, np.inf)
        # a just-noticeable difference is about 2.3 Lab units; the old golden-ratio hues had pairs
        # (chair/desk, window/curtain) under 15
        assert distance.min() > threshold, (n, distance.min())
        background = _lab(np.array([[255, 255, 255], [0, 0, 0]]))  # the canvas and unlabelled points
        assert np.linalg.norm(lab[:, None] - background[None], axis=-1).min() > 20
    assert np.array_equal(class_palette(40)[:20], class_palette(20))  # a class keeps its colour


def test_similarity_has_a_colour_scale_and_the_teacher_is_shown_at_pixel_resolution():
    rng = np.random.default_rng(3)
    points, labels = _room()
    image = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    coarse = rng.normal(size=(4, 4, 5))  # a stride-16 teacher map: 4x5 cells for a 60x80 image
    sim = similarity_figure(5, points, np.eye(3)[labels], image, coarse, (40.0, 30.0))
    top, bottom = (253, 231, 37), (68, 1, 84)  # the colormap's ends, drawn in the colour bars
    flat = {tuple(c) for c in sim.reshape(-1, 3)}
    assert top in flat and bottom in flat
    figure, _ = feature_pca_figure(
        points, rng.normal(size=(len(points), 5)), image, rng.normal(size=(5, 4, 5))
    )
    # the teacher panel (second, 360 px high after the caption and title bars) has far more colours
    # than its 20 cells: upsampled features, not a mosaic of blocks
    h = figure.shape[0]
    teacher = figure[h - 360 :, 480 + 6 : 480 + 6 + 480]
    assert len(np.unique(teacher.reshape(-1, 3), axis=0)) > 200


def test_camera_overlays_are_shown_at_screen_size_with_visible_dots():
    from ppkt.viz.figures import camera_overlays

    rng = np.random.default_rng(4)
    cameras = []
    for k in range(6):
        image = np.full((900, 1600, 3), 128, dtype=np.uint8)
        uv = rng.uniform(0, 1599, size=(300, 2)) * [1, 899 / 1599]
        cameras.append((f"CAM_{k}", image, uv, rng.uniform(1, 50, 300)))
    picture = camera_overlays(cameras)
    assert picture.shape[1] <= 3 * 640 + 2 * 6  # three 640-px cameras a row, not a 4800-px strip
    assert picture.shape[0] < 2 * 400 + 120
    grey = np.all(picture == (191, 191, 191), axis=-1)  # the faded background of each camera
    assert grey.mean() < 0.98  # the dots cover a visible part of the image

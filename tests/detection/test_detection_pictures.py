"""Boxes drawn into a photo: projection of the 12 edges, near-plane clipping, the drawing, and the
photos the readers give (ScanNet layouts with axisAlignment, SUN RGB-D's calib)."""

import math

import numpy as np
import pytest
import torch

from ppkt.data.boxes import Boxes3D, SceneCamera
from ppkt.viz.colors import class_palette
from ppkt.viz.detection import BOX_EDGES, box_edges_uv, detection_image_figure, draw_boxes_in_image

K = np.array([[200.0, 0.0, 160.0], [0.0, 200.0, 120.0], [0.0, 0.0, 1.0]])
HW = (240, 320)
# World x right, y forward, z up -> OpenCV camera: x = x, y = -z, z = y (camera at the origin).
CAMERA_FROM_WORLD = np.eye(4)
CAMERA_FROM_WORLD[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
NAMES = ["cabinet", "bed", "chair"]


def _naive_visible_uv(boxes, k, edge, near=0.01, samples=20001):
    """Reference: sample the edge densely, keep samples in front of the near plane whose
    projection lies in the image, return their uv (the picture's pixels of that edge)."""
    a, b = boxes.corners()[k, BOX_EDGES[edge]].astype(np.float64)
    t = np.linspace(0, 1, samples)[:, None]
    cam = (a + t * (b - a)) @ CAMERA_FROM_WORLD[:3, :3].T
    cam = cam[cam[:, 2] >= near]
    uv = cam[:, :2] / cam[:, 2:] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    inside = (uv[:, 0] >= -0.5) & (uv[:, 0] <= HW[1] - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= HW[0] - 0.5)
    return uv[inside]


def test_box_in_front_projects_to_the_expected_rectangle():
    # 1 m wide, 2 m deep, 0.5 m high, its near face 2 m in front of the camera.
    boxes = Boxes3D([[0.0, 3.0, 0.0]], [[1.0, 2.0, 0.5]], [0.0], [2], tuple(NAMES))
    segments, owner = box_edges_uv(boxes, K, CAMERA_FROM_WORLD, HW)
    assert segments.shape == (12, 2, 2) and (owner == 0).all()
    ends = segments.reshape(-1, 2)
    # Near face (depth 2): u = 160 +- 200 * 0.5 / 2, v = 120 -+ 200 * 0.25 / 2; far face (depth 4) inside it.
    np.testing.assert_allclose(ends.min(0), [110.0, 95.0], atol=1e-9)
    np.testing.assert_allclose(ends.max(0), [210.0, 145.0], atol=1e-9)
    expected = {(u, v) for u in (110.0, 210.0) for v in (95.0, 145.0)}
    expected |= {(u, v) for u in (135.0, 185.0) for v in (107.5, 132.5)}
    assert {(round(u, 6), round(v, 6)) for u, v in ends} == expected
    # Each corner is the end of three edges.
    _, counts = np.unique(np.round(ends, 6), axis=0, return_counts=True)
    assert (counts == 3).all()


def test_edges_crossing_the_camera_plane_are_cut_not_wrapped():
    # Straddles the camera plane: y from -1 to 1 (behind to in front of the camera).
    boxes = Boxes3D([[0.0, 0.0, 0.0]], [[1.0, 2.0, 0.5]], [0.0], [1], tuple(NAMES))
    segments, owner = box_edges_uv(boxes, K, CAMERA_FROM_WORLD, HW)
    ends = segments.reshape(-1, 2)
    assert len(segments) == 8  # far face (4) + 4 edges along y; the face behind is gone
    assert (ends[:, 0] >= -0.5).all() and (ends[:, 0] <= 319.5).all()
    assert (ends[:, 1] >= -0.5).all() and (ends[:, 1] <= 239.5).all()
    # The visible piece of the edge from (0.5, -1, -0.25) to (0.5, 1, -0.25): u = 160 + 100 / y,
    # v = 120 + 50 / y for y in (0, 1], leaving the image at u = 319.5 (1 / y = 1.595).
    assert any(
        np.allclose(s, [[319.5, 199.75], [260.0, 170.0]]) or np.allclose(s, [[260.0, 170.0], [319.5, 199.75]])
        for s in segments
    )
    # Against the dense-sampling reference: every edge's visible samples lie on one segment, whose
    # ends are the extreme samples (projecting the corners behind the camera instead would draw
    # the mirrored edge across the image).
    visible_edges = 0
    for edge in range(12):
        reference = _naive_visible_uv(boxes, 0, edge)
        if len(reference) < 2:
            continue
        visible_edges += 1
        mine = [s for s in segments if _on_segment(reference, s)]
        assert len(mine) >= 1, f"edge {edge}"
        s = mine[0]
        span = np.linalg.norm(s[1] - s[0])
        assert span == pytest.approx(np.linalg.norm(reference[-1] - reference[0]), abs=0.1)
    assert visible_edges == len(segments)


def _on_segment(points, segment, tol=1e-6):
    a, b = segment
    d = b - a
    length = np.linalg.norm(d)
    if length == 0:
        return False
    t = (points - a) @ d / length**2
    foot = a + t[:, None] * d
    return bool(
        ((t >= -1e-6) & (t <= 1 + 1e-6)).all() and (np.linalg.norm(points - foot, axis=1) < 0.05).all()
    )


def test_boxes_behind_or_beside_the_camera_give_nothing():
    behind = Boxes3D([[0.0, -3.0, 0.0], [30.0, 3.0, 0.0]], [[1.0, 1.0, 1.0]] * 2, [0.0, 0.0], [0, 1])
    segments, owner = box_edges_uv(behind, K, CAMERA_FROM_WORLD, HW)
    assert segments.shape == (0, 2, 2) and owner.shape == (0,)
    segments, _ = box_edges_uv(Boxes3D.empty(), K, CAMERA_FROM_WORLD, HW)
    assert segments.shape == (0, 2, 2)
    with pytest.raises(ValueError, match="near"):
        box_edges_uv(behind, K, CAMERA_FROM_WORLD, HW, near=0.0)


def test_drawing_class_colours_solid_truth_dashed_predictions():
    camera = SceneCamera(np.zeros((*HW, 3), np.uint8), K, CAMERA_FROM_WORLD, "test")
    truth = Boxes3D([[0.0, 3.0, 0.0]], [[1.0, 2.0, 0.5]], [0.0], [2], tuple(NAMES))
    # The prediction: 1.2 m wider and 1 m higher, so that its lines lie apart from the truth's.
    predicted = Boxes3D([[0.0, 3.0, 1.0], [0.0, 3.0, 1.0]], [[2.2, 2.0, 0.5]] * 2, [0.0, 0.0], [1, 0])
    picture = draw_boxes_in_image(
        camera, truth, predicted, np.array([0.9, 0.1]), NAMES, score_threshold=0.5, line_width=1
    )
    assert picture.shape == (*HW, 3) and picture.dtype == np.uint8
    palette = class_palette(len(NAMES))
    # The truth's left upright of the near face (u = 110, v 95..145) is solid, in the chair colour.
    column = picture[100:140, 110]
    assert (column == palette[2]).all(axis=1).all()
    # The prediction's near face has u = 160 -+ 200 * 1.1 / 2 = 50 / 270 and v from the top of the
    # image to 120 - 200 * 0.75 / 2 = 45: dashed, in the bed colour.
    column = picture[0:45, 50]
    drawn = (column == palette[1]).all(axis=1)
    assert 0.3 < drawn.mean() < 0.9
    # The second prediction scores under the threshold: its class colour appears nowhere.
    assert not (picture.reshape(-1, 3) == palette[0]).all(axis=1).any()
    figure = detection_image_figure(
        camera, truth, predicted, np.array([0.9, 0.1]), NAMES, score_threshold=0.5, title="t"
    )
    assert figure.shape[1] > HW[1] and figure.shape[0] > HW[0]  # legend beside, caption above


def test_scannet_photo_is_in_the_aligned_frame(tmp_path):
    from scannet_fixtures import write_frames, write_scan

    from ppkt.data.scannet_boxes import read_scannet_detection_scene, read_scannet_scene_camera

    a = math.radians(30)
    alignment = np.array(
        [
            [math.cos(a), -math.sin(a), 0, 0.5],
            [math.sin(a), math.cos(a), 0, -1.0],
            [0, 0, 1, 0.1],
            [0, 0, 0, 1],
        ]
    )
    write_scan(tmp_path, alignment=alignment)
    scene, _ = read_scannet_detection_scene(tmp_path / "scene0000_00")
    chair = scene.boxes.centers[0].astype(np.float64)
    raw = np.linalg.inv(alignment) @ np.r_[chair, 1.0]
    # Both frames stand 2 m before the chair (raw -y); frame 0 looks away (raw -y), frame 1 at the
    # chair's centre (raw +y): by default frame 1 is drawn, the chair on its principal point.
    away, towards = np.eye(4), np.eye(4)
    away[:3, :3] = [[-1, 0, 0], [0, 0, -1], [0, -1, 0]]
    away[:3, 3] = raw[:3] - [0, 2, 0]
    towards[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # camera z (forward) = raw +y, y (down) = -z
    towards[:3, 3] = raw[:3] - [0, 2, 0]
    Kc = np.array([[50.0, 0, 31.5], [0, 50, 23.5], [0, 0, 1]])
    write_frames(tmp_path / "scene0000_00", Kc, [away, towards])
    camera = read_scannet_scene_camera(tmp_path, "scene0000_00", scene.boxes)
    assert camera.name == "scene0000_00/1" and camera.hw == (48, 64)
    cam = camera.camera_from_world @ np.r_[chair, 1.0]
    np.testing.assert_allclose(cam[:3], [0, 0, 2], atol=1e-6)
    np.testing.assert_allclose(camera.K, Kc, atol=1e-6)
    assert read_scannet_scene_camera(tmp_path, "scene0000_00", scene.boxes, "0").name == "scene0000_00/0"
    with pytest.raises(ValueError, match="no posed frame '7'"):
        read_scannet_scene_camera(tmp_path, "scene0000_00", frame_id="7")
    write_scan(tmp_path, "scene0001_00")
    with pytest.raises(FileNotFoundError, match="no posed colour frame"):
        read_scannet_scene_camera(tmp_path, "scene0001_00")


def test_sunrgbd_photo_follows_the_toolbox_projection(tmp_path):
    from PIL import Image

    from ppkt.data.sunrgbd import read_sunrgbd_calib, read_sunrgbd_camera

    tilt = math.radians(10)
    Rtilt = np.array([[1, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], [0, math.sin(tilt), math.cos(tilt)]])
    K_matlab = np.array([[529.5, 0, 365.0], [0, 529.5, 265.0], [0, 0, 1]])
    (tmp_path / "calib").mkdir()
    (tmp_path / "image").mkdir()
    column_major = [" ".join(f"{v:.12g}" for v in m.reshape(-1, order="F")) for m in (Rtilt, K_matlab)]
    (tmp_path / "calib" / "000001.txt").write_text("\n".join(column_major) + "\n")
    Image.fromarray(np.zeros((530, 730, 3), np.uint8)).save(tmp_path / "image" / "000001.jpg")
    camera = read_sunrgbd_camera(tmp_path, "000001")
    assert camera.hw == (530, 730)
    # read3dPoints.m: 1-based pixel (x, y) at depth z -> (x - cx) z / fx, z, -(y - cy) z / fy, then Rtilt.
    x, y, z = 101.0, 51.0, 2.5
    point = Rtilt @ [(x - 365.0) * z / 529.5, z, -(y - 265.0) * z / 529.5]
    from ppkt.geometry.camera import project_points, transform_points

    cam = transform_points(camera.camera_from_world, torch.tensor(point[None]))
    uv, depth, _ = project_points(cam, camera.K, camera.hw)
    np.testing.assert_allclose(uv[0].numpy(), [x - 1, y - 1], atol=1e-9)  # 0-based pixel centres
    assert float(depth[0]) == pytest.approx(z)
    (tmp_path / "calib" / "000002.txt").write_text("1 0 0\n")
    with pytest.raises(ValueError, match="000002.txt"):
        read_sunrgbd_calib(tmp_path / "calib" / "000002.txt")

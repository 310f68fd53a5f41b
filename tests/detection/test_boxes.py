import math

import numpy as np
import pytest

from ppkt.data.boxes import (
    SCANNET_DETECTION_CLASS_NAMES,
    SCANNET_DETECTION_NYU40_IDS,
    SUNRGBD_DETECTION_CLASS_NAMES,
    Boxes3D,
    DetectionScene,
    nyu40_to_scannet_detection,
    validate_boxes,
)


def test_class_lists():
    assert len(SCANNET_DETECTION_CLASS_NAMES) == len(SCANNET_DETECTION_NYU40_IDS) == 18
    assert len(SUNRGBD_DETECTION_CLASS_NAMES) == 10
    mapped = nyu40_to_scannet_detection(np.array([1, 3, 39, 22, 0, 300, -4]))
    assert mapped.tolist() == [-1, 0, 17, -1, -1, -1, -1]


def test_boxes_are_frozen_and_checked():
    b = Boxes3D([[0, 0, 0]], [[1, 2, 3]], [0.0], [2])
    assert b.centers.dtype == np.float32 and b.labels.dtype == np.int64 and len(b) == 1
    with pytest.raises(ValueError):
        b.centers[0, 0] = 5.0
    with pytest.raises(ValueError, match="same length"):
        Boxes3D(np.zeros((2, 3)), np.ones((1, 3)), [0.0], [0])
    assert len(Boxes3D.empty()) == 0 and Boxes3D.empty().corners().shape == (0, 8, 3)


def test_corners_and_contains_with_heading():
    # A 2 x 1 x 1 box turned by 90 degrees: its own x (length 2) lies along world y.
    b = Boxes3D([[1, 1, 0.5]], [[2, 1, 1]], [math.pi / 2], [0])
    corners = b.corners()[0]
    assert np.allclose(corners[:, 0].min(), 0.5) and np.allclose(corners[:, 0].max(), 1.5)
    assert np.allclose(corners[:, 1].min(), 0.0, atol=1e-6) and np.allclose(corners[:, 1].max(), 2.0)
    assert np.allclose(corners[:4, 2], 0.0) and np.allclose(corners[4:, 2], 1.0)
    inside = b.contains(np.array([[1.0, 1.9, 0.5], [1.9, 1.0, 0.5]]))
    assert inside.tolist() == [[True, False]]
    assert b.contains(np.array([[1.55, 1.0, 0.5]]), margin=0.1).all()


def test_validate_boxes_names_each_problem():
    boxes = Boxes3D(
        [[0, 0, 0], [0, 0, 0], [np.nan, 0, 0], [0, 0, 0], [5, 5, 5]],
        [[1, 1, 1], [1, 0, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 7, 1],
    )
    points = np.array([[0.1, 0.1, 0.1]])
    kept, issues = validate_boxes(boxes, num_classes=3, points=points)
    assert [(i.index, i.reason) for i in issues] == [
        (1, "non-positive size"), (2, "non-finite"), (3, "unknown class"), (4, "no points"),
    ]  # fmt: skip
    assert len(kept) == 1 and kept.labels.tolist() == [0]


def test_detection_scene_checks_instances():
    boxes = Boxes3D([[0, 0, 0]], [[1, 1, 1]], [0], [0])
    pts = np.zeros((2, 3), np.float32)
    DetectionScene(pts, np.zeros((2, 3), np.uint8), boxes, np.array([0, -1]), "s")
    with pytest.raises(ValueError, match="instance ids"):
        DetectionScene(pts, np.zeros((2, 3), np.uint8), boxes, np.array([1, -1]), "s")


def test_boxes_copy_their_inputs():
    centers = np.zeros((1, 3), np.float32)
    Boxes3D(centers, np.ones((1, 3)), [0.0], [0])
    centers[0, 0] = 1.0  # the caller's array stays writable

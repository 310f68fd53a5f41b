import hashlib
import math

import numpy as np
import pytest

from ppkt.data.boxes import SCANNET_DETECTION_CLASS_NAMES
from ppkt.data.synthetic import ensure_dataset
from ppkt.data.synthetic.boxes import read_synthetic_detection_scene, scene_boxes
from ppkt.data.synthetic.layout import CHAIR, OTHERFURNITURE, PILLOW, Part, Room, Scene


def _part(center, half, yaw, label, instance, kind="box"):
    return Part(kind, np.array(center, float), np.array(half, float), yaw, label, None, instance)


def test_boxes_from_parts_by_object_and_class():
    yaw = math.pi / 6
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, -s], [s, c]])
    origin = np.array([2.0, 1.0])
    # A chair: seat (local centre (0, 0), half 0.2 x 0.2 x 0.02 at z 0.45) and back (local (0, 0.18)).
    seat_xy, back_xy = origin + rot @ [0, 0], origin + rot @ [0, 0.18]
    parts = [
        _part([*seat_xy, 0.45], [0.2, 0.2, 0.02], yaw, CHAIR, 1),
        _part([*back_xy, 0.7], [0.2, 0.02, 0.25], yaw, CHAIR, 1),
        _part([4, 4, 0.3], [0.1, 0.1, 0.3], 0.0, OTHERFURNITURE, 2, kind="cylinder"),
        _part([1, 4, 0.5], [0.3, 0.2, 0.05], 0.0, PILLOW, 3),  # not a detection class
    ]
    scene = Scene(
        Room(np.array([5.0, 5, 3]), None, (None,) * 4, None), parts, np.zeros((1, 3)), np.ones(3), 0.4
    )
    boxes, nyu = scene_boxes(scene)
    assert nyu.tolist() == [CHAIR, OTHERFURNITURE]
    assert [SCANNET_DETECTION_CLASS_NAMES[k] for k in boxes.labels] == ["chair", "garbagebin"]
    # Chair box in its own frame: x in [-0.2, 0.2], y in [-0.2, 0.2], z in [0.43, 0.95].
    np.testing.assert_allclose(boxes.sizes[0], [0.4, 0.4, 0.52], atol=1e-6)
    np.testing.assert_allclose(boxes.centers[0], [*origin, 0.69], atol=1e-6)
    assert boxes.headings[0] == pytest.approx(yaw)
    np.testing.assert_allclose(boxes.sizes[1], [0.2, 0.2, 0.6], atol=1e-6)


def _tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_synthetic_rooms_as_detection_scenes(tmp_path):
    root = ensure_dataset(
        scenes=2, frames_per_scene=1, image_hw=(24, 32), max_points=8000, cache_dir=tmp_path, progress=False
    )
    before = _tree_digest(root)
    for sid in ("scene0000_00", "scene0001_00"):
        scene = read_synthetic_detection_scene(root, sid)
        assert len(scene.boxes) >= 3
        assert (scene.boxes.sizes > 0).all() and np.isfinite(scene.boxes.centers).all()
        assert set(np.unique(scene.instance_ids)) == {-1, *range(len(scene.boxes))}  # every box has points
        # The points of each object fill its box: their extent in the box frame is the box size
        # (up to the sampling spacing), and they all lie inside it.
        for k in range(len(scene.boxes)):
            pts = scene.points[scene.instance_ids == k]
            box = scene.boxes.select(np.array([k]))
            assert box.contains(pts, margin=0.011).all()
            if len(pts) > 50:
                h = float(box.headings[0])
                local = (pts[:, :2] - box.centers[0, :2]) @ np.array(
                    [[math.cos(h), -math.sin(h)], [math.sin(h), math.cos(h)]]
                )
                extent = local.max(0) - local.min(0)
                assert np.all(extent > box.sizes[0, :2] - 0.2)
    assert _tree_digest(root) == before  # boxes are computed, nothing is written


def test_synthetic_boxes_need_the_manifest_version(tmp_path):
    root = ensure_dataset(
        scenes=1, frames_per_scene=1, image_hw=(24, 32), max_points=3000, cache_dir=tmp_path, progress=False
    )
    manifest = root / "synthetic.json"
    manifest.write_text(manifest.read_text().replace('"version": "3"', '"version": "2"'))
    with pytest.raises(ValueError, match="generator version"):
        read_synthetic_detection_scene(root, "scene0000_00")
    with pytest.raises(FileNotFoundError):
        read_synthetic_detection_scene(tmp_path, "scene0000_00")

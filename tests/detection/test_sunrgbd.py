"""SUN RGB-D boxes and points from a fixture in the sunrgbd_trainval layout."""

import math

import numpy as np
import pytest

from ppkt.data.sunrgbd import SunRGBDDetectionSource, read_sunrgbd_labels


def write_export(root):
    scipy_io = pytest.importorskip("scipy.io")
    for sub in ("depth", "label", "calib"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    # A chair: centre (1, 2, 0.4), half extents l=0.3 (box x), w=0.2 (box y), h=0.4, x axis at 30 deg.
    a = math.radians(30)
    local = rng.uniform(-1, 1, (200, 3)) * [0.3, 0.2, 0.4]
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    chair = local @ rot.T + [1, 2, 0.4]
    floor = np.c_[rng.uniform(-2, 4, (300, 2)), np.full(300, -0.01)]
    xyz = np.concatenate([chair, floor])
    instance = np.c_[xyz, rng.uniform(0, 1, (len(xyz), 3))]
    scipy_io.savemat(root / "depth" / "000001.mat", {"instance": instance})
    lines = [
        f"chair 10 20 30 40 1 2 0.4 0.2 0.3 0.4 {math.cos(a)} {math.sin(a)}",
        "wall 0 0 10 10 0 3 1 2 0.05 1.5 1 0",  # not a benchmark class
        "table 0 0 10 10 2 2",  # malformed
        "bed 0 0 10 10 3 3 0.3 0 1 0.3 1 0",  # zero size
    ]
    (root / "label" / "000001.txt").write_text("\n".join(lines) + "\n")
    (root / "calib" / "000001.txt").write_text("1 0 0 0 1 0 0 0 1\n529.5 0 0 0 529.5 0 365 265 1\n")
    (root / "train_data_idx.txt").write_text("1\n")
    return chair


def test_sunrgbd_boxes_follow_ppkt_conventions(tmp_path):
    chair = write_export(tmp_path)
    boxes, skips = read_sunrgbd_labels(tmp_path / "label" / "000001.txt")
    assert [(s.line, s.reason) for s in skips] == [(3, "malformed"), (4, "non-positive size")]
    assert len(boxes) == 1 and boxes.class_names[boxes.labels[0]] == "chair"
    np.testing.assert_allclose(boxes.sizes[0], [0.6, 0.4, 0.8], atol=1e-6)
    assert boxes.headings[0] == pytest.approx(math.radians(30), abs=1e-6)
    # The chair's points fill exactly that box.
    assert boxes.contains(chair, margin=1e-5).all()
    source = SunRGBDDetectionSource(tmp_path)
    assert source.scene_ids("train") == ["000001"]
    scene = source.read("000001")
    assert (scene.instance_ids == 0).sum() == 200 and scene.colors.dtype == np.uint8
    assert [s.reason for s in source.skips["000001"]] == ["malformed", "non-positive size"]
    from ppkt.eval.detection.data import check_detection_scenes

    check = check_detection_scenes(SunRGBDDetectionSource(tmp_path), ["000001"])
    assert check.named == ["000001: line 3 (malformed)", "000001: line 4 (non-positive size)"]


def test_sunrgbd_bad_files(tmp_path):
    write_export(tmp_path)
    (tmp_path / "val_data_idx.txt").write_text("one\n")
    source = SunRGBDDetectionSource(tmp_path)
    with pytest.raises(ValueError, match="val_data_idx"):
        source.scene_ids("val")
    with pytest.raises(FileNotFoundError, match="000002.mat"):
        source.read("000002")


def test_check_data_counts_and_names_bad_sunrgbd_annotations(tmp_path, capsys):
    """The registry knows the export (detection, check-data through its scan hook, the detection
    opener); check-data counts the annotations left out by reason and names them."""
    from ppkt.cli import main
    from ppkt.data.check import scan_dataset
    from ppkt.data.registry import SceneRequest, detect, open_detection_scenes

    root = tmp_path / "sunrgbd_trainval"
    write_export(root)
    (root / "val_data_idx.txt").write_text("1\n2\n")  # scene 2 has no files
    assert detect(root).format == "sunrgbd"
    assert isinstance(open_detection_scenes("sunrgbd", SceneRequest(root)), SunRGBDDetectionSource)
    with pytest.raises(ValueError, match="scene_lists"):
        open_detection_scenes("sunrgbd", SceneRequest(root, scene_lists=tmp_path))
    with pytest.raises(ValueError, match="no 3D boxes"):
        open_detection_scenes("tum", SceneRequest(root))
    report = scan_dataset(root)
    assert (report.format, report.frames_found, report.frames_usable) == ("sunrgbd", 2, 1)
    assert report.skipped == {"unreadable scene": 1} and "000002" in report.examples["unreadable scene"][0]
    assert "boxes: 1 usable, 2 annotations left out (malformed 1, non-positive size 1)" in report.notes
    assert "left out: 000001: line 4 (non-positive size)" in report.notes
    assert main(["check-data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "format: sunrgbd" in out and "000001: line 3 (malformed)" in out


def test_strict_check_data_stops_at_the_first_unreadable_scene_in_one_pass(tmp_path, monkeypatch):
    from ppkt.data.check import scan_dataset

    root = tmp_path / "sunrgbd_trainval"
    write_export(root)
    (root / "val_data_idx.txt").write_text("1\n2\n")  # scene 2 has no files
    reads = []
    real_read = SunRGBDDetectionSource.read
    monkeypatch.setattr(
        SunRGBDDetectionSource, "read", lambda self, sid: reads.append(sid) or real_read(self, sid)
    )
    with pytest.raises(FileNotFoundError, match="000002"):
        scan_dataset(root, strict=True)
    assert reads == ["000001", "000002"]  # each scene read once, the bad one last
    reads.clear()
    (root / "val_data_idx.txt").write_text("1\n")
    scan_dataset(root, strict=True)
    assert reads == ["000001"]  # not once to check readability and again for the boxes

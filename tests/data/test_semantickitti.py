import numpy as np
import pytest
from outdoor_fixtures import KITTI_R0_RECT, kitti_P2, kitti_tr_velo_to_cam, write_semantickitti

from ppkt.data.lidar_common import BAD_LABELS
from ppkt.data.report import FrameError
from ppkt.data.semantickitti import (
    SEMANTICKITTI19_CLASS_NAMES,
    SemanticKittiSamples,
    read_semantickitti_labels,
    semantickitti_lut,
)
from ppkt.data.types import IGNORE_LABEL


def test_learning_map_by_hand():
    lut = semantickitti_lut()
    names = dict(enumerate(SEMANTICKITTI19_CLASS_NAMES))
    assert len(SEMANTICKITTI19_CLASS_NAMES) == 19
    assert names[lut[10]] == names[lut[252]] == "car"
    assert (
        names[lut[13]]
        == names[lut[16]]
        == names[lut[20]]
        == names[lut[257]]
        == names[lut[259]]
        == "other-vehicle"
    )
    assert names[lut[60]] == names[lut[40]] == "road"  # lane-marking -> road
    assert names[lut[254]] == "person" and names[lut[253]] == "bicyclist" and names[lut[258]] == "truck"
    assert names[lut[81]] == "traffic-sign" and names[lut[72]] == "terrain"
    for ignored in (0, 1, 52, 99):
        assert lut[ignored] == IGNORE_LABEL
    assert lut[2] == -2 and lut[100] == -2  # ids the dataset does not define
    assert sorted(set(lut[lut >= 0].tolist())) == list(range(19))


def test_labels_split_semantic_and_instance_bits(tmp_path):
    raw = np.array([10 | (7 << 16), 252 | (3 << 16), 0, 60, 99 | (1 << 16)], dtype="<u4")
    raw.tofile(tmp_path / "a.label")
    labels, instance = read_semantickitti_labels(tmp_path / "a.label", 5)
    car, road = SEMANTICKITTI19_CLASS_NAMES.index("car"), SEMANTICKITTI19_CLASS_NAMES.index("road")
    assert labels.tolist() == [car, car, IGNORE_LABEL, road, IGNORE_LABEL]
    assert instance.tolist() == [7, 3, 0, 0, 1] and labels.dtype == np.int64
    np.array([10, 300, 2], dtype="<u4").tofile(tmp_path / "b.label")
    with pytest.raises(FrameError, match=r"b\.label: unknown label id \(ids \[2, 300\] on 2") as info:
        read_semantickitti_labels(tmp_path / "b.label", 3)
    assert info.value.reason == BAD_LABELS
    with pytest.raises(FrameError, match=r"b\.label: label count mismatch \(3 labels .* of 4 points"):
        read_semantickitti_labels(tmp_path / "b.label", 4)
    (tmp_path / "c.label").write_bytes(b"\0" * 7)
    with pytest.raises(FrameError, match=r"c\.label: truncated file \(size 7 bytes is not a multiple of 4\)"):
        read_semantickitti_labels(tmp_path / "c.label", 2)


def test_sequences_splits_and_root_variants(tmp_path):
    seq_root = write_semantickitti(tmp_path, sequences=("00", "08"), frames=3)
    all_frames = SemanticKittiSamples(tmp_path)
    assert len(all_frames) == 6 and all_frames.records[0].sample_id == "00/000000"
    assert [r.sample_id for r in SemanticKittiSamples(tmp_path, split="val").records] == [
        "08/000000", "08/000001", "08/000002",
    ]  # fmt: skip
    assert len(SemanticKittiSamples(tmp_path, split="train")) == 3
    assert len(SemanticKittiSamples(tmp_path / "dataset")) == 6 and len(SemanticKittiSamples(seq_root)) == 6
    assert len(SemanticKittiSamples(tmp_path, sequences=["08"], frame_step=2)) == 2
    with pytest.raises(FrameError, match="no sequence of split 'test'"):
        SemanticKittiSamples(tmp_path, split="test")
    with pytest.raises(ValueError, match="unknown SemanticKITTI split"):
        SemanticKittiSamples(tmp_path, split="training")


def test_sample_labels_points_and_camera(tmp_path):
    seq_root = write_semantickitti(tmp_path, sequences=("08",), frames=1)
    sample = SemanticKittiSamples(tmp_path, with_images=True)[0]
    raw_points = np.fromfile(seq_root / "08" / "velodyne" / "000000.bin", dtype="<f4").reshape(-1, 4)
    raw_labels = np.fromfile(seq_root / "08" / "labels" / "000000.label", dtype="<u4")
    assert np.array_equal(sample.points, raw_points[:, :3]) and np.array_equal(
        sample.intensity, raw_points[:, 3]
    )
    assert np.array_equal(sample.labels, semantickitti_lut()[raw_labels & 0xFFFF])
    assert sample.class_names == SEMANTICKITTI19_CLASS_NAMES and sample.sample_id == "08/000000"
    (camera,) = sample.images
    # The odometry Tr is already rectified: projection == P2 @ Tr (== P2 @ R0_rect @ Tr_velo_to_cam).
    R0 = np.eye(4)
    R0[:3, :3] = KITTI_R0_RECT
    full = kitti_P2() @ R0 @ np.vstack([kitti_tr_velo_to_cam(), [0, 0, 0, 1]])
    points = np.random.default_rng(0).uniform(5, 40, (30, 3))
    homogeneous = np.concatenate([points, np.ones((30, 1))], 1).T
    x = full @ homogeneous
    ours = camera.K @ (camera.camera_from_lidar @ homogeneous)[:3]
    assert np.allclose(ours[:2] / ours[2], x[:2] / x[2], atol=1e-9)
    unlabeled = SemanticKittiSamples(tmp_path, with_labels=False)[0]
    assert unlabeled.labels is None and unlabeled.images == [] and unlabeled.class_names == ()


def test_missing_labels_image_and_calibration_name_the_file(tmp_path):
    seq_root = write_semantickitti(tmp_path, sequences=("08",), frames=3)
    (seq_root / "08" / "labels" / "000000.label").unlink()
    (seq_root / "08" / "image_2" / "000001.png").unlink()
    data = SemanticKittiSamples(tmp_path, with_images=True)
    with pytest.raises(FrameError, match=r"000000\.label: missing file \(label file\)"):
        data[0]
    with pytest.raises(FrameError, match=r"000001\.png: missing file \(camera image\)"):
        data[1]
    (seq_root / "08" / "calib.txt").write_text("P2: 1 2 3\n")
    with pytest.raises(FrameError, match=r"calib\.txt: bad calibration \(P2 has 3 values, expected 12\)"):
        SemanticKittiSamples(tmp_path, with_images=True)[2]
    with pytest.raises(FrameError, match="no SemanticKITTI sequences"):
        SemanticKittiSamples(tmp_path / "empty")


def test_check_data_scans_semantickitti(tmp_path):
    from ppkt.data.check import detect_format, scan_dataset
    from ppkt.data.lidar_common import BAD_LABELS

    seq_root = write_semantickitti(tmp_path, sequences=("00", "08"), frames=2, num_points=300)
    (seq_root / "08" / "image_2" / "000000.png").unlink()
    import shutil

    shutil.rmtree(seq_root / "00" / "image_2")
    assert detect_format(tmp_path) == "semantickitti" and detect_format(seq_root) == "semantickitti"
    assert detect_format(seq_root.parent) == "semantickitti"
    report = scan_dataset(tmp_path)
    assert report.frames_found == 4 and report.skipped == {"missing file": 1} and report.frames_usable == 3
    assert any("sequence 00: no image_2" in note for note in report.notes)
    np.array([7] * 300, dtype="<u4").tofile(seq_root / "00" / "labels" / "000001.label")
    assert scan_dataset(tmp_path, "semantickitti").skipped == {"missing file": 1, BAD_LABELS: 1}


def test_scene_source_for_segmentation(tmp_path):
    from ppkt.data.semantickitti import SemanticKittiSceneSource

    write_semantickitti(tmp_path, sequences=("00", "08"), frames=2)
    source = SemanticKittiSceneSource(tmp_path)
    assert source.scene_ids("val") == ["08/000000", "08/000001"] and source.scene_ids("train") == [
        "00/000000", "00/000001",
    ]  # fmt: skip
    scene = source.read("08/000001")
    sample = SemanticKittiSamples(tmp_path, sequences=["08"])[1]
    assert np.array_equal(scene.labels, sample.labels) and np.array_equal(scene.points, sample.points)
    assert scene.class_names == SEMANTICKITTI19_CLASS_NAMES and scene.colors.shape == (40, 3)
    with pytest.raises(FrameError, match="missing file"):
        source.read("08/000009")

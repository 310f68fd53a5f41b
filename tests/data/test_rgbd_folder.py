"""The rgbd-folder reader: layout, camera file, and every bad file counted and named."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from ppkt.data.check import scan_dataset
from ppkt.data.report import FrameError
from ppkt.data.rgbd_folder import RGBDFolderFrames, read_camera_file, write_rgbd_folder

K_COLOR = np.array([[120.0, 0.0, 39.5], [0.0, 120.0, 29.5], [0.0, 0.0, 1.0]])
K_DEPTH = np.array([[60.0, 0.0, 19.5], [0.0, 60.0, 14.5], [0.0, 0.0, 1.0]])


def write(folder, n=6, poses=True):
    colors = [np.full((60, 80, 3), 20 * i, np.uint8) for i in range(n)]
    depths = [np.full((30, 40), 2000 + i, np.uint16) for i in range(n)]
    pose_list = [np.eye(4) for _ in range(n)] if poses else None
    return write_rgbd_folder(folder, colors, depths, K_COLOR, K_DEPTH, pose_list, depth_scale=2000.0)


def test_reads_frames_with_their_own_intrinsics_scale_and_poses(tmp_path):
    seq = write(tmp_path / "seq")
    frames = RGBDFolderFrames(seq)
    assert len(frames) == 6 and frames.report.frames_skipped == 0
    frame = frames[3]
    assert frame.scene_id == "seq" and frame.frame_id == "000003"
    assert frame.color_hw == (60, 80) and frame.depth_hw == (30, 40)
    assert np.allclose(frame.K_color, K_COLOR) and np.allclose(frame.K_depth, K_DEPTH)
    assert frame.depth[0, 0] == pytest.approx(2003 / 2000.0) and np.allclose(
        frame.world_from_camera, np.eye(4)
    )
    assert len(RGBDFolderFrames(tmp_path, frame_skip=2)) == 3  # a folder of sequences


def test_yaml_camera_file_defaults_and_no_poses(tmp_path):
    seq = write(tmp_path / "seq", n=2, poses=False)
    (seq / "rgbd.json").unlink()
    (seq / "rgbd.yaml").write_text("color_intrinsics: [60, 60, 19.5, 14.5]\ndepth_scale: 1000\n")
    frames = RGBDFolderFrames(seq)
    assert np.allclose(frames[0].K_depth, K_DEPTH) and frames[0].world_from_camera is None
    assert any("no pose/ folder" in note for note in frames.report.notes)
    assert np.allclose(frames[0].color_from_depth, np.eye(4))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("depth_scale: 1000\n", "color_intrinsics is required"),
        ("color_intrinsics: [1, 2, 3]\ndepth_scale: 1000\n", "must be [fx, fy, cx, cy]"),
        ("color_intrinsics: [0, 1, 2, 3]\ndepth_scale: 1000\n", "focal lengths must be positive"),
        ("color_intrinsics: [1, 1, 2, 3]\ndepth_scale: -5\n", "depth_scale must be a positive number"),
        ("color_intrinsics: [1, 1, 2, 3]\ndepth_scale: 1\nfx: 3\n", "unknown keys ['fx']"),
        ("color_intrinsics: [1, 1, 2, 3]\ndepth_scale: 1\ncolor_from_depth: [1, 2]\n", "must be 4x4"),
        ("[unclosed", "not readable"),
    ],
)
def test_bad_camera_file_names_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "rgbd.yaml"
    path.write_text(text)
    with pytest.raises(FrameError, match=re.escape(message)) as info:
        read_camera_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_every_bad_file_is_a_counted_named_skip(tmp_path):
    seq = write(tmp_path / "seq", n=8)
    (seq / "depth" / "000000.png").unlink()  # missing depth
    (seq / "color" / "000001.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")  # undecodable
    Image.fromarray(np.full((60, 80), 1000, np.uint16)).save(seq / "depth" / "000002.png")  # other size
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(seq / "color" / "000003.jpg")  # wrong size
    (seq / "pose" / "000004.txt").write_text("nan " * 16)  # non-finite pose
    (seq / "pose" / "000005.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0")  # wrong column count
    (seq / "pose" / "000006.txt").unlink()  # missing pose
    report = scan_dataset(seq)
    assert report.format == "rgbd-folder" and report.frames_found == 8 and report.frames_usable == 1
    assert report.skipped == {
        "missing file": 1,
        "undecodable image": 1,
        "size mismatch": 2,  # 000002: depth 80x60 where the scene's are 40x30; 000003: colour 8x6
        "invalid pose": 2,
        "missing pose": 1,
    }, report.format_text()
    examples = " ".join(e for v in report.examples.values() for e in v)
    for name in ("000000.png", "000001.jpg", "000003.jpg", "000004.txt", "000005.txt", "000006.txt"):
        assert name in examples
    assert "expected 4x4 numbers, found 12" in examples and "non-finite" in examples


def test_bad_camera_file_loses_its_sequence_only(tmp_path):
    write(tmp_path / "a", n=2)
    bad = write(tmp_path / "b", n=3)
    (bad / "rgbd.json").write_text(json.dumps({"color_intrinsics": [1, 1, 1, 1]}))
    frames = RGBDFolderFrames(tmp_path)
    assert len(frames) == 2 and frames.report.skipped == {"bad intrinsics": 3}
    with pytest.raises(FrameError, match="depth_scale is required"):
        RGBDFolderFrames(tmp_path, strict=True)
    with pytest.raises(FileNotFoundError, match="no rgbd-folder sequence"):
        RGBDFolderFrames(tmp_path / "a" / "color")

import numpy as np
import pytest
from PIL import Image

from ppkt.data.report import FrameError
from ppkt.data.rgbd_sequences import (
    SEVEN_SCENES_K,
    SevenScenesFrames,
    TumFrames,
    nearest,
    quaternion_to_matrix,
)


def _write_7scenes_seq(seq_dir, n, images_for_frame, suffix=".png", hw=(30, 40)):
    frame_images, rigid_pose = images_for_frame
    seq_dir.mkdir(parents=True)
    for i in range(n):
        color, depth = frame_images(i, color_hw=hw, depth_hw=hw)
        depth[1, 1] = 65535  # 7-Scenes' other invalid value
        Image.fromarray(color).save(seq_dir / f"frame-{i:06d}.color{suffix}")
        Image.fromarray(depth).save(seq_dir / f"frame-{i:06d}.depth.png")
        # 7-Scenes writes poses tab-separated with a trailing tab.
        text = "\n".join("\t".join(f"{v:.9e}" for v in row) + "\t" for row in rigid_pose(i))
        (seq_dir / f"frame-{i:06d}.pose.txt").write_text(text + "\n")


def test_seven_scenes_layout(tmp_path, images_for_frame):
    _, rigid_pose = images_for_frame
    # 7-Scenes' default K is for 640x480 images.
    _write_7scenes_seq(tmp_path / "chess" / "seq-01", 4, images_for_frame, hw=(480, 640))
    _write_7scenes_seq(tmp_path / "chess" / "seq-02", 3, images_for_frame, suffix=".jpg", hw=(480, 640))
    frames = SevenScenesFrames(tmp_path)
    assert len(frames) == 7 and frames.report.frames_skipped == 0
    frame = frames[2]
    assert frame.scene_id == "chess/seq-01" and frame.frame_id == "000002"
    assert frame.depth[0, 0] == 0 and frame.depth[1, 1] == 0 and frame.depth[5, 5] == pytest.approx(1.02)
    assert np.allclose(frame.world_from_camera, rigid_pose(2))
    assert np.array_equal(frame.K_color, SEVEN_SCENES_K) and "585" in frames.report.notes[0]
    assert frames[5].scene_id == "chess/seq-02"
    assert len(SevenScenesFrames(tmp_path, frame_skip=2)) == 4


def test_tsdf_fusion_intrinsics_file_and_bad_pose(tmp_path, images_for_frame):
    _write_7scenes_seq(tmp_path / "data", 3, images_for_frame)
    (tmp_path / "camera-intrinsics.txt").write_text("300 0 19.5\n0 300 14.5\n0 0 1\n")
    (tmp_path / "data" / "frame-000001.pose.txt").write_text("inf " * 16)
    frames = SevenScenesFrames(tmp_path)
    assert len(frames) == 2 and frames.report.skipped == {"invalid pose": 1}
    assert frames[0].K_depth[0, 0] == 300.0
    with pytest.raises(FrameError, match="frame-000001.pose.txt"):
        SevenScenesFrames(tmp_path, strict=True)


def test_seven_scenes_bad_intrinsics_file(tmp_path, images_for_frame):
    _write_7scenes_seq(tmp_path / "seq", 5, images_for_frame)
    (tmp_path / "camera-intrinsics.txt").write_text("-5 0 19.5\n0 300 14.5\n0 0 1\n")
    frames = SevenScenesFrames(tmp_path, frame_skip=2)
    assert (
        len(frames) == 0
        and frames.report.frames_found == 3
        and frames.report.skipped == {"bad intrinsics": 3}
    )
    assert "camera-intrinsics.txt" in frames.report.examples["bad intrinsics"][0]
    with pytest.raises(FrameError, match="focal lengths must be positive"):
        SevenScenesFrames(tmp_path, strict=True)


def test_seven_scenes_missing_colour(tmp_path, images_for_frame):
    _write_7scenes_seq(tmp_path / "seq", 2, images_for_frame)
    (tmp_path / "seq" / "frame-000000.color.png").unlink()
    frames = SevenScenesFrames(tmp_path, K=np.array([[50.0, 0, 20], [0, 50, 15], [0, 0, 1]]))
    assert len(frames) == 1 and frames.report.skipped == {"missing file": 1}


def _write_tum(seq_dir, images_for_frame, n=5, gt=True):
    frame_images, _ = images_for_frame
    (seq_dir / "rgb").mkdir(parents=True)
    (seq_dir / "depth").mkdir()
    rgb_lines, depth_lines = ["# color images", "# file: 'x.bag'", "# timestamp filename"], ["# depth"]
    for i in range(n):
        t = 100.0 + i / 30
        color, depth = frame_images(i, color_hw=(480, 640), depth_hw=(480, 640))
        Image.fromarray(color).save(seq_dir / "rgb" / f"{t:.6f}.png")
        Image.fromarray((depth.astype(np.uint32) * 5).astype(np.uint16)).save(
            seq_dir / "depth" / f"{t + 0.004:.6f}.png"
        )
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t + 0.004:.6f} depth/{t + 0.004:.6f}.png")
    # A colour frame with no depth near it.
    rgb_lines.append("200.000000 rgb/200.000000.png")
    (seq_dir / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (seq_dir / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    if gt:
        lines = ["# ground truth trajectory", "# timestamp tx ty tz qx qy qz qw"]
        for k in range(int(n / 30 * 100) + 3):  # 100 Hz, covering the frames
            t = 100.0 + k / 100
            # 90 degrees about z: q = (0, 0, sin 45, cos 45).
            lines.append(f"{t:.4f} 1.0 2.0 {k * 0.01:.4f} 0 0 0.7071068 0.7071068")
        (seq_dir / "groundtruth.txt").write_text("\n".join(lines) + "\n")


def test_tum_association_scale_pose_and_default_intrinsics(tmp_path, images_for_frame):
    seq = tmp_path / "rgbd_dataset_freiburg1_xyz"
    _write_tum(seq, images_for_frame)
    frames = TumFrames(seq)
    assert frames.report.frames_found == 6 and len(frames) == 5
    assert frames.report.skipped == {"unmatched timestamp": 1}
    frame = frames[2]
    # Depth written as mm * 5 = 5000 units per metre.
    assert frame.depth[5, 5] == pytest.approx(1.02) and frame.depth[0, 0] == 0
    assert frame.K_color[0, 0] == 517.3 and frame.K_color[1, 2] == 255.3
    pose = frame.world_from_camera
    assert np.allclose(pose[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-6)
    # Frame 2 at t = 100.0667 -> nearest ground truth k = 7 (t = 100.07), tz = 0.07.
    assert np.allclose(pose[:3, 3], [1.0, 2.0, 0.07])
    assert frame.frame_id == "100.066667"
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])  # centred: K must fit the 640x480 images
    assert TumFrames(tmp_path, K=K)[0].K_depth[0, 0] == 500.0  # parent folder of sequences


def test_tum_without_groundtruth_and_missing_pose(tmp_path, images_for_frame):
    _write_tum(tmp_path / "a", images_for_frame, gt=False)
    frames = TumFrames(tmp_path / "a")
    assert len(frames) == 5 and frames[0].world_from_camera is None
    assert frames[0].K_color[0, 0] == 525.0
    seq = tmp_path / "b"
    _write_tum(seq, images_for_frame)
    with open(seq / "groundtruth.txt", "a") as handle:
        handle.write("150.0 0 0 0 0 0 0 1\n")
    # 150.5: files exist, depth 0.01 s away, but no pose within 0.02 s; 160: colour file missing.
    with open(seq / "rgb.txt", "a") as handle:
        handle.write("150.5 rgb/100.000000.png\n160.0 rgb/none.png\n")
    with open(seq / "depth.txt", "a") as handle:
        handle.write("150.51 depth/100.004000.png\n160.0 depth/100.004000.png\n")
    frames = TumFrames(seq)
    assert frames.report.skipped == {"missing pose": 1, "missing file": 1, "unmatched timestamp": 1}
    assert any("none.png" in e for e in frames.report.examples["missing file"])


def test_nearest_and_quaternion():
    index, diff = nearest(np.array([0.0, 1.04, 2.6, 9.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    assert index.tolist() == [0, 1, 3, 3] and np.allclose(diff, [0, 0.04, 0.4, 6.0])
    rng = np.random.default_rng(0)
    q = rng.normal(size=4)
    R = quaternion_to_matrix(q)
    assert np.allclose(R.T @ R, np.eye(3)) and np.isclose(np.linalg.det(R), 1)
    assert np.allclose(quaternion_to_matrix(np.array([0, 0, 0, 1.0])), np.eye(3))


def test_tum_broken_list_file_loses_only_its_sequence(tmp_path, images_for_frame):
    _write_tum(tmp_path / "good", images_for_frame, n=2)
    _write_tum(tmp_path / "bad", images_for_frame, n=2)
    (tmp_path / "bad" / "depth.txt").write_text("not-a-time depth/x.png\n")
    frames = TumFrames(tmp_path)
    assert len(frames) == 2 and frames.report.skipped["unreadable"] == 1
    assert "depth.txt:1: bad timestamp" in frames.report.examples["unreadable"][0]
    with pytest.raises(ValueError, match="bad timestamp"):
        TumFrames(tmp_path, strict=True)

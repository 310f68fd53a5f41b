import struct
import zlib

import numpy as np
import pytest

from ppkt.data.report import FrameError
from ppkt.data.sens import SensFrames, SensScenes, read_sens_header, write_sens

K_COLOR = np.array([[120.0, 0.0, 39.5], [0.0, 120.0, 29.5], [0.0, 0.0, 1.0]])
K_DEPTH = np.array([[60.0, 0.0, 19.5], [0.0, 60.0, 14.5], [0.0, 0.0, 1.0]])


@pytest.fixture
def sens_file(tmp_path, images_for_frame):
    frame_images, rigid_pose = images_for_frame
    colors, depths, poses = zip(*[(*frame_images(i), rigid_pose(i)) for i in range(7)], strict=True)
    poses = list(poses)
    poses[4] = np.full((4, 4), -np.inf)  # ScanNet's "tracking lost" pose
    return write_sens(tmp_path / "scene0000_00.sens", colors, depths, poses, K_COLOR, K_DEPTH)


def _handwritten_sens(path, color_jpeg: bytes, depth: np.ndarray, pose: np.ndarray) -> None:
    """One frame written field by field from the published layout (independent of write_sens)."""
    name = b"StructureSensor"
    k_color, k_depth = np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32)
    k_color[:3, :3], k_depth[:3, :3] = K_COLOR, K_DEPTH
    depth_data = zlib.compress(depth.astype("<u2").tobytes())
    blob = struct.pack("<I", 4) + struct.pack("<Q", len(name)) + name
    for m in (k_color, np.eye(4), k_depth, np.eye(4)):
        blob += struct.pack("<16f", *np.asarray(m, np.float32).ravel())
    blob += struct.pack("<i", 2) + struct.pack("<i", 1)  # jpeg, zlib_ushort
    blob += struct.pack("<IIII", 80, 60, 40, 30) + struct.pack("<f", 1000.0) + struct.pack("<Q", 1)
    blob += struct.pack("<16f", *pose.astype(np.float32).ravel())
    blob += struct.pack("<QQQQ", 11, 12, len(color_jpeg), len(depth_data)) + color_jpeg + depth_data
    path.write_bytes(blob)


def test_handwritten_file_matches_the_published_layout(tmp_path, images_for_frame):
    from io import BytesIO

    from PIL import Image

    frame_images, rigid_pose = images_for_frame
    color, depth = frame_images(2)
    buffer = BytesIO()
    Image.fromarray(color).save(buffer, format="JPEG", quality=95)
    _handwritten_sens(tmp_path / "one.sens", buffer.getvalue(), depth, rigid_pose(2))
    header = read_sens_header(tmp_path / "one.sens")
    assert header.sensor_name == "StructureSensor" and header.num_frames == 1
    assert header.color_compression == "jpeg" and header.depth_compression == "zlib_ushort"
    assert header.color_hw == (60, 80) and header.depth_hw == (30, 40) and header.depth_shift == 1000.0
    frame = SensFrames(tmp_path / "one.sens", frame_skip=1)[0]
    assert np.array_equal(frame.depth, depth.astype(np.float32) / 1000)
    assert np.abs(frame.color.astype(int) - color).max() <= 8
    assert np.allclose(frame.world_from_camera, rigid_pose(2), atol=1e-6)
    assert np.allclose(frame.K_color, K_COLOR) and np.allclose(frame.K_depth, K_DEPTH)


def test_frames_and_invalid_pose(sens_file, images_for_frame):
    frame_images, rigid_pose = images_for_frame
    frames = SensFrames(sens_file, frame_skip=1)
    assert len(frames) == 6 and frames.report.skipped == {"invalid pose": 1}
    assert "#frame4" in frames.report.examples["invalid pose"][0]
    ids = [f.frame_id for f in frames]
    assert ids == ["0", "1", "2", "3", "5", "6"]
    frame = frames[4]  # stream frame 5
    assert frame.scene_id == "scene0000_00" and frame.frame_id == "5"
    assert frame.depth[3, 3] == pytest.approx(frame_images(5)[1][3, 3] / 1000)
    assert np.allclose(frame.world_from_camera, rigid_pose(5), atol=1e-5)
    with pytest.raises(FrameError, match="invalid pose"):
        SensFrames(sens_file, frame_skip=1, strict=True)


def test_frame_skip_seeks_over_frames(sens_file):
    frames = SensFrames(sens_file, frame_skip=3)
    assert [f.frame_id for f in frames] == ["0", "3", "6"]
    assert frames.report.frames_found == 3


def test_depth_scale_override(sens_file):
    frame = SensFrames(sens_file, frame_skip=1, depth_scale=2000.0)[1]
    assert frame.depth[3, 3] == pytest.approx(1010 / 2000)


def test_truncated_file_keeps_complete_frames(sens_file):
    data = sens_file.read_bytes()
    sens_file.write_bytes(data[: len(data) - 50])  # cut inside the last frame
    frames = SensFrames(sens_file, frame_skip=1)
    assert [f.frame_id for f in frames] == ["0", "1", "2", "3", "5"]
    assert frames.report.skipped == {"invalid pose": 1, "truncated file": 1}
    assert frames.report.frames_found == 7
    with pytest.raises(FrameError, match="truncated"):
        SensFrames(sens_file, frame_skip=1, strict=True)


def test_file_cut_inside_header(sens_file):
    sens_file.write_bytes(sens_file.read_bytes()[:100])
    with pytest.raises(FrameError, match="truncated") as info:
        SensFrames(sens_file)
    assert info.value.path == str(sens_file)


def test_not_a_sens_file(tmp_path):
    path = tmp_path / "x.sens"
    path.write_bytes(struct.pack("<I", 3) + b"\0" * 200)
    with pytest.raises(FrameError, match="version 3"):
        SensFrames(path)


def test_corrupt_depth_stream_names_the_frame(tmp_path, images_for_frame):
    frame_images, rigid_pose = images_for_frame
    color, depth = frame_images(0)
    path = write_sens(tmp_path / "c.sens", [color], [depth], [rigid_pose(0)], K_COLOR, K_DEPTH)
    data = bytearray(path.read_bytes())
    data[-20:] = b"\0" * 20  # damage the end of the zlib stream
    path.write_bytes(bytes(data))
    with pytest.raises(FrameError, match="undecodable image") as info:
        SensFrames(path, frame_skip=1)[0]
    assert info.value.path.endswith("c.sens#frame0")


def test_png_colour_round_trip_is_exact(tmp_path, images_for_frame):
    frame_images, rigid_pose = images_for_frame
    color, depth = frame_images(1)
    path = write_sens(
        tmp_path / "p.sens", [color], [depth], [rigid_pose(1)], K_COLOR, K_DEPTH, color_compression="png"
    )
    assert np.array_equal(SensFrames(path, frame_skip=1)[0].color, color)


def test_scenes_of_a_scannet_download(tmp_path, images_for_frame):
    frame_images, rigid_pose = images_for_frame
    for scene, n in (("scene0000_00", 3), ("scene0001_00", 4)):
        colors, depths = zip(*[frame_images(10 * int(scene[-4]) + i) for i in range(n)], strict=True)
        poses = [rigid_pose(i) for i in range(n)]
        write_sens(tmp_path / scene / f"{scene}.sens", colors, depths, poses, K_COLOR, K_DEPTH)
    (tmp_path / "scannetv2_val.txt").write_text("scene0001_00\nscene0002_00\n")
    frames = SensScenes(tmp_path, frame_skip=1)
    assert len(frames) == 7 and frames.report.frames_usable == 7
    assert [(f.scene_id, f.frame_id) for f in frames][2:4] == [("scene0000_00", "2"), ("scene0001_00", "0")]
    assert frames[-1].frame_id == "3" and frames.describe(3).endswith("scene0001_00.sens#frame0")
    with pytest.raises(IndexError):
        frames[7]
    # A split naming a scene that was not downloaded: counted, the others still read.
    val = SensScenes(tmp_path, split="val", frame_skip=2)
    assert len(val) == 2 and val.report.skipped == {"missing file": 1}
    assert "scene0002_00.sens" in val.report.examples["missing file"][0]
    with pytest.raises(FrameError):
        SensScenes(tmp_path, split="val", strict=True)

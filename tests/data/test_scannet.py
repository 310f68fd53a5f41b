import numpy as np
import pytest
from PIL import Image

from ppkt.data.ply import write_ply_vertices
from ppkt.data.report import FrameError
from ppkt.data.scannet import ScanNetFrames, read_scannet_scene, scannet_split
from ppkt.data.types import IGNORE_LABEL


def test_frames_decode_to_project_conventions(scannet_root, images_for_frame):
    frame_images, rigid_pose = images_for_frame
    frames = ScanNetFrames(scannet_root, frame_skip=1)
    assert len(frames) == 12 and frames.report.frames_usable == 12 and frames.report.frames_skipped == 0
    frame = frames[3]
    color, depth_mm = frame_images(3)
    assert frame.scene_id == "scene0000_00" and frame.frame_id == "3"
    assert frame.color.shape == (60, 80, 3) and frame.color.dtype == np.uint8
    assert np.abs(frame.color.astype(int) - color).max() <= 8  # JPEG
    assert frame.depth.dtype == np.float32 and frame.depth.shape == (30, 40)
    assert frame.depth[5, 5] == pytest.approx(depth_mm[5, 5] / 1000.0) and frame.depth[0, 0] == 0
    # The 4x4 intrinsic files give their 3x3 part; colour and depth differ.
    assert frame.K_color[0, 0] == 120.0 and frame.K_depth[0, 0] == 60.0 and frame.K_color.shape == (3, 3)
    assert np.allclose(frame.world_from_camera, rigid_pose(3), atol=1e-6)


def test_depth_scale_is_configurable(scannet_root):
    frame = ScanNetFrames(scannet_root, frame_skip=1, depth_scale=500.0)[0]
    assert frame.depth[5, 5] == pytest.approx(2.0)


def test_frame_skip_uses_frame_numbers(tmp_path, scannet_writer):
    scannet_writer(tmp_path, "scene0000_00", 8, id_format="{:06d}")  # zero-padded names
    frames = ScanNetFrames(tmp_path, frame_skip=3)
    assert [frames.records[i].frame_id for i in range(len(frames))] == ["000000", "000003", "000006"]
    assert frames.report.frames_found == 3


def test_numeric_sort_not_lexicographic(tmp_path, scannet_writer):
    scannet_writer(tmp_path, "s", 12)
    ids = [r.frame_id for r in ScanNetFrames(tmp_path, frame_skip=1).records]
    assert ids == [str(i) for i in range(12)]


def test_split_and_scenes(scannet_root):
    assert scannet_split(scannet_root, "val") == ["scene0001_00"]
    frames = ScanNetFrames(scannet_root, split="train", frame_skip=1)
    assert {r.scene_id for r in frames.records} == {"scene0000_00"}
    frames = ScanNetFrames(scannet_root, scenes=["scene0001_00"], frame_skip=2)
    assert len(frames) == 3
    with pytest.raises(FileNotFoundError, match="scannetv2_test.txt"):
        scannet_split(scannet_root, "test")


def test_single_scene_folder_and_frame_list(scannet_root, tmp_path):
    frames = ScanNetFrames(scannet_root / "scene0000_00", frame_skip=1)
    assert len(frames) == 6 and frames[0].scene_id == "scene0000_00"
    listing = tmp_path / "frames.txt"
    listing.write_text("# chosen frames\nscene0000_00 000004\nscene0001_00/1\n")
    frames = ScanNetFrames(scannet_root, frame_list=listing)
    assert [(r.scene_id, r.frame_id) for r in frames.records] == [
        ("scene0000_00", "4"),
        ("scene0001_00", "1"),
    ]


@pytest.mark.parametrize(
    "pose_text, reason",
    [
        ("-inf -inf -inf -inf\n" * 4, "non-finite"),
        ("nan 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "non-finite"),
        ("2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "not a rotation"),
        ("-1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "not a rotation"),  # a reflection
        ("1 0 0\n0 1 0\n", "expected 4x4"),
        ("garbage", "not numbers"),
    ],
)
def test_invalid_poses_are_skipped_and_counted(scannet_root, pose_text, reason):
    bad = scannet_root / "scene0000_00" / "pose" / "2.txt"
    bad.write_text(pose_text)
    frames = ScanNetFrames(scannet_root, frame_skip=1)
    assert len(frames) == 11 and frames.report.frames_found == 12
    assert frames.report.skipped == {"invalid pose": 1}
    assert (
        str(bad) in frames.report.examples["invalid pose"][0]
        and reason in frames.report.examples["invalid pose"][0]
    )
    assert "2" not in [r.frame_id for r in frames.records if r.scene_id == "scene0000_00"]
    with pytest.raises(FrameError, match="invalid pose") as info:
        ScanNetFrames(scannet_root, frame_skip=1, strict=True)
    assert info.value.path == str(bad)


def test_missing_files_and_bad_intrinsics(scannet_root):
    scene = scannet_root / "scene0000_00"
    (scene / "depth" / "1.png").unlink()
    (scene / "color" / "4.jpg").unlink()
    (scannet_root / "scene0001_00" / "intrinsic" / "intrinsic_depth.txt").write_text("0 0 0\n")
    frames = ScanNetFrames(scannet_root, frame_skip=1)
    assert frames.report.skipped == {"missing file": 2, "bad intrinsics": 6}
    assert len(frames) == 4 and frames.report.frames_usable == 4
    assert any(str(scene / "depth" / "1.png") in e for e in frames.report.examples["missing file"])


def test_corrupt_image_raises_naming_the_file(scannet_root):
    frames = ScanNetFrames(scannet_root, frame_skip=1)
    path = scannet_root / "scene0000_00" / "color" / "0.jpg"
    path.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(FrameError, match="undecodable image") as info:
        frames[0]
    assert info.value.path == str(path)


def test_eight_bit_depth_is_rejected(scannet_root):
    path = scannet_root / "scene0000_00" / "depth" / "0.png"
    Image.fromarray(np.full((30, 40), 7, dtype=np.uint8)).save(path)
    with pytest.raises(FrameError, match="16-bit"):
        ScanNetFrames(scannet_root, frame_skip=1)[0]


def test_intrinsics_for_another_size_is_a_size_mismatch(scannet_root, matrix_writer):
    K4 = np.eye(4)
    K4[:3, :3] = [[1000, 0, 640], [0, 1000, 480], [0, 0, 1]]  # made for 1280x960 colour
    matrix_writer(scannet_root / "scene0000_00" / "intrinsic" / "intrinsic_color.txt", K4)
    with pytest.raises(FrameError, match="size mismatch"):
        ScanNetFrames(scannet_root, frame_skip=1)[0]


def test_frames_25k_intrinsics_location(scannet_root):
    """scannet_frames_25k keeps intrinsics_color.txt / intrinsics_depth.txt in the scene folder."""
    scene = scannet_root / "scene0000_00"
    for camera in ("color", "depth"):
        (scene / "intrinsic" / f"intrinsic_{camera}.txt").rename(scene / f"intrinsics_{camera}.txt")
    (scene / "intrinsic").rmdir()
    frames = ScanNetFrames(scene, frame_skip=1)
    assert len(frames) == 6 and frames[0].K_depth[0, 0] == 60.0 and frames[0].K_color[0, 0] == 120.0


def test_color_downscale_adjusts_K(scannet_root):
    full = ScanNetFrames(scannet_root, frame_skip=1)[0]
    half = ScanNetFrames(scannet_root, frame_skip=1, color_downscale=2)[0]
    assert half.color.shape == (30, 40, 3) and half.depth.shape == full.depth.shape
    # Pixel centre u in the full image is u' = (u + 0.5) / 2 - 0.5 in the half one.
    assert half.K_color[0, 0] == 60.0 and half.K_color[0, 2] == (39.5 + 0.5) / 2 - 0.5
    block_mean = full.color.reshape(30, 2, 40, 2, 3).mean(axis=(1, 3))
    assert np.abs(half.color - block_mean).mean() < 4
    with pytest.raises(ValueError, match="color_downscale"):
        ScanNetFrames(scannet_root, color_downscale=3)


def test_works_as_torch_dataset(scannet_root):
    from torch.utils.data import DataLoader

    frames = ScanNetFrames(scannet_root, frame_skip=1)
    loader = DataLoader(frames, batch_size=None, num_workers=0, collate_fn=lambda f: f.frame_id)
    assert len(list(loader)) == 12


def _write_labelled_scene(scene_dir, labels, n_mesh=None):
    scene_dir.mkdir(parents=True)
    n = len(labels) if n_mesh is None else n_mesh
    rng = np.random.default_rng(0)
    xyz = rng.random((n, 3), dtype=np.float32)
    rgb = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    name = scene_dir.name
    cols = {
        "x": xyz[:, 0],
        "y": xyz[:, 1],
        "z": xyz[:, 2],
        "red": rgb[:, 0],
        "green": rgb[:, 1],
        "blue": rgb[:, 2],
    }
    write_ply_vertices(scene_dir / f"{name}_vh_clean_2.ply", cols)
    write_ply_vertices(scene_dir / f"{name}_vh_clean_2.labels.ply", {"label": np.asarray(labels, np.uint16)})
    return xyz, rgb


def test_read_labelled_scene(tmp_path):
    nyu40 = [1, 2, 0, 22, 39, 40, 14, 255]
    xyz, rgb = _write_labelled_scene(tmp_path / "scene0007_00", nyu40)
    scene = read_scannet_scene(tmp_path / "scene0007_00")
    assert scene.scene_id == "scene0007_00" and scene.num_points == 8
    assert np.array_equal(scene.points, xyz) and np.array_equal(scene.colors, rgb)
    ignore = IGNORE_LABEL
    assert scene.labels.tolist() == [0, 1, ignore, ignore, 19, ignore, 12, ignore]
    assert scene.class_names[12] == "desk" and len(scene.class_names) == 20


def test_labelled_scene_vertex_count_mismatch_names_both_files(tmp_path):
    _write_labelled_scene(tmp_path / "scene0008_00", [1, 2, 3], n_mesh=4)
    with pytest.raises(ValueError, match="vertex count mismatch") as info:
        read_scannet_scene(tmp_path / "scene0008_00")
    assert "_vh_clean_2.ply" in str(info.value) and "_vh_clean_2.labels.ply" in str(info.value)


def test_labelled_scene_missing_labels_file(tmp_path):
    _write_labelled_scene(tmp_path / "scene0009_00", [1, 2])
    (tmp_path / "scene0009_00" / "scene0009_00_vh_clean_2.labels.ply").unlink()
    with pytest.raises(FileNotFoundError, match="labels.ply"):
        read_scannet_scene(tmp_path / "scene0009_00")

"""Every registered dataset format on a tiny fixture in its real on-disk layout: format detection and
check-data counts, the frames pretraining reads (one pretraining step for every RGB-D format), and
one fine-tuning step for the formats with labels."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import get_args, get_type_hints

import numpy as np
import pytest
from PIL import Image

from ppkt.config import apply_overrides
from ppkt.data import registry
from ppkt.data.check import scan_dataset
from ppkt.data.ply import write_ply_vertices
from ppkt.data.registry import DATASETS, FrameRequest, NoUsableData, SceneRequest, detect, open_frames
from ppkt.data.rgbd_folder import write_rgbd_folder
from ppkt.data.sens import write_sens
from ppkt.eval.config import EvalDataConfig
from ppkt.train.config import DataConfig

K_COLOR = np.array([[120.0, 0.0, 39.5], [0.0, 120.0, 29.5], [0.0, 0.0, 1.0]])  # 80x60 colour
K_DEPTH = np.array([[60.0, 0.0, 19.5], [0.0, 60.0, 14.5], [0.0, 0.0, 1.0]])  # 40x30 depth


def level_pose(index: int) -> np.ndarray:
    """A camera looking horizontally in a z-up world (OpenCV: y down), turning by 20 deg a frame."""
    yaw = math.radians(20 * index)
    forward = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    right = np.cross(down, forward)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = [0.1 * index, 0.0, 1.5]
    return pose


def slam_pose(index: int) -> np.ndarray:
    """``level_pose`` in a SLAM world: the first camera's frame (up = -y), as 7-Scenes and TUM have."""
    return np.linalg.inv(level_pose(0)) @ level_pose(index)


def images(index: int, color_hw=(60, 80), depth_hw=(30, 40)) -> tuple[np.ndarray, np.ndarray]:
    color = np.zeros((*color_hw, 3), dtype=np.uint8)
    color[..., 0] = 40 * index
    color[..., 1] = np.linspace(0, 255, color_hw[1], dtype=np.uint8)[None, :]
    depth = np.full(depth_hw, 1500 + 10 * index, dtype=np.uint16)
    depth[0, 0], depth[1, 1] = 0, 65535  # the two invalid values
    return color, depth


def write_matrix(path: Path, matrix: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(" ".join(f"{v:f}" for v in row) for row in matrix) + "\n")


# ----------------------------------------------------------------------------- fixtures, one a format
def write_scannet(root: Path) -> int:
    scene = root / "scene0000_00"
    for name, K in (("intrinsic_color.txt", K_COLOR), ("intrinsic_depth.txt", K_DEPTH)):
        K4 = np.eye(4)
        K4[:3, :3] = K
        write_matrix(scene / "intrinsic" / name, K4)
    for folder in ("color", "depth"):
        (scene / folder).mkdir(parents=True, exist_ok=True)
    for i in range(3):
        color, depth = images(i)
        Image.fromarray(color).save(scene / "color" / f"{i}.jpg", quality=95)
        Image.fromarray(depth).save(scene / "depth" / f"{i}.png")
        write_matrix(scene / "pose" / f"{i}.txt", level_pose(i))
    # Labelled mesh: a floor and a wall (NYU40 2 and 1), read by fine-tuning.
    rng = np.random.default_rng(0)
    floor = np.c_[rng.uniform(0, 2, (200, 2)), np.zeros(200)]
    wall = np.c_[np.zeros(200), rng.uniform(0, 2, (200, 2))]
    points = np.concatenate([floor, wall]).astype(np.float32)
    nyu40 = np.repeat([2, 1], 200).astype(np.uint16)
    columns = {"x": points[:, 0], "y": points[:, 1], "z": points[:, 2]}
    for channel, value in (("red", 100), ("green", 150), ("blue", 200)):
        columns[channel] = np.where(nyu40 == 2, value, 255 - value).astype(np.uint8)
    write_ply_vertices(scene / "scene0000_00_vh_clean_2.ply", columns)
    write_ply_vertices(scene / "scene0000_00_vh_clean_2.labels.ply", {"label": nyu40})
    for split in ("train", "val"):
        (root / f"scannetv2_{split}.txt").write_text("scene0000_00\n")
    return 3


def write_scannet_sens(root: Path) -> int:
    pairs = [images(i) for i in range(3)]
    write_sens(
        root / "scene0000_00" / "scene0000_00.sens",
        [c for c, _ in pairs],
        [d for _, d in pairs],
        [level_pose(i) for i in range(3)],
        K_COLOR,
        K_DEPTH,
    )
    return 3


def write_7scenes(root: Path) -> int:
    """The official layout: <scene>/seq-XX/frame-XXXXXX.{color,depth}.png + .pose.txt, 640x480, no K file."""
    seq = root / "chess" / "seq-01"
    seq.mkdir(parents=True)
    for i in range(2):
        color, depth = images(i, (480, 640), (480, 640))
        Image.fromarray(color).save(seq / f"frame-{i:06d}.color.png")
        Image.fromarray(depth).save(seq / f"frame-{i:06d}.depth.png")
        write_matrix(seq / f"frame-{i:06d}.pose.txt", slam_pose(i))
    return 2


def write_7scenes_flat(root: Path) -> int:
    """The common flat layout: frame-XXXXXX.color.jpg / .depth.png / .pose.txt + camera-intrinsics.txt."""
    root.mkdir(parents=True)
    write_matrix(root / "camera-intrinsics.txt", K_DEPTH)
    for i in range(3):
        color, depth = images(i, (30, 40), (30, 40))
        Image.fromarray(color).save(root / f"frame-{i:06d}.color.jpg", quality=95)
        Image.fromarray(depth).save(root / f"frame-{i:06d}.depth.png")
        write_matrix(root / f"frame-{i:06d}.pose.txt", slam_pose(i))
    return 3


def write_tum(root: Path) -> int:
    seq = root / "rgbd_dataset_freiburg1_xyz"
    (seq / "rgb").mkdir(parents=True)
    (seq / "depth").mkdir()
    rgb, dep, gt = [], [], []
    for i in range(2):
        t = 100.0 + i / 30
        color, depth = images(i, (480, 640), (480, 640))
        Image.fromarray(color).save(seq / "rgb" / f"{t:.6f}.png")
        Image.fromarray(depth).save(seq / "depth" / f"{t + 0.004:.6f}.png")
        rgb.append(f"{t:.6f} rgb/{t:.6f}.png")
        dep.append(f"{t + 0.004:.6f} depth/{t + 0.004:.6f}.png")
        pose = slam_pose(i)
        w = math.sqrt(max(1e-12, 1 + np.trace(pose[:3, :3]))) / 2
        q = [
            (pose[2, 1] - pose[1, 2]) / (4 * w),
            (pose[0, 2] - pose[2, 0]) / (4 * w),
            (pose[1, 0] - pose[0, 1]) / (4 * w),
            w,
        ]
        gt.append(f"{t:.6f} {' '.join(f'{v:.7f}' for v in pose[:3, 3])} {' '.join(f'{v:.7f}' for v in q)}")
    (seq / "rgb.txt").write_text("\n".join(rgb) + "\n")
    (seq / "depth.txt").write_text("\n".join(dep) + "\n")
    (seq / "groundtruth.txt").write_text("\n".join(gt) + "\n")
    return 2


def write_rgbd_folder_fixture(root: Path) -> int:
    pairs = [images(i) for i in range(3)]
    poses = [slam_pose(i) for i in range(3)]
    write_rgbd_folder(root / "capture", [c for c, _ in pairs], [d for _, d in pairs], K_COLOR, K_DEPTH, poses)
    return 3


def write_s3dis(root: Path) -> int:
    """Two areas, one room each; one malformed row (a stray control character, as in the release)."""
    rng = np.random.default_rng(0)
    base = root / "Stanford3dDataset_v1.2_Aligned_Version"
    for area in ("Area_1", "Area_5"):
        annotations = base / area / "office_1" / "Annotations"
        annotations.mkdir(parents=True)
        for k, (name, z) in enumerate((("floor", 0.0), ("ceiling", 2.5), ("chair", 0.5), ("stairs", 1.0))):
            xyz = np.c_[rng.uniform(0, 3, (150, 2)), np.full(150, z)]
            rgb = np.full((150, 3), 40 * k + 20)
            lines = [
                " ".join(f"{v:.3f}" for v in p) + " " + " ".join(str(v) for v in c)
                for p, c in zip(xyz, rgb, strict=False)
            ]
            if area == "Area_5" and name == "ceiling":
                lines[7] = "1.0 2.0 2.5 103.0\x100000 5 6"
            (annotations / f"{name}_1.txt").write_text("\n".join(lines) + "\n")
        (annotations / ".DS_Store").write_bytes(b"\0\1")
    return 2


def write_nuscenes_fixture(root: Path) -> int:
    from outdoor_fixtures import write_nuscenes

    write_nuscenes(root, scenes=("scene-0061", "scene-0655"), num_points=400, with_lidarseg=True)
    return 4


def write_kitti_fixture(root: Path) -> int:
    from outdoor_fixtures import write_kitti_object

    return len(write_kitti_object(root, frames=3, num_points=400))


def write_kitti_raw_fixture(root: Path) -> int:
    from outdoor_fixtures import write_kitti_raw

    write_kitti_raw(root, frames=3, num_points=400)
    return 3


def write_semantickitti_fixture(root: Path) -> int:
    from outdoor_fixtures import write_semantickitti

    write_semantickitti(root, sequences=("00",), frames=3, num_points=400)
    return 3


FIXTURES = {
    "scannet": write_scannet,
    "scannet-sens": write_scannet_sens,
    "7scenes": write_7scenes,
    "tum": write_tum,
    "rgbd-folder": write_rgbd_folder_fixture,
    "s3dis": write_s3dis,
    "nuscenes": write_nuscenes_fixture,
    "kitti": write_kitti_fixture,
    "kitti-raw": write_kitti_raw_fixture,
    "semantickitti": write_semantickitti_fixture,
}
"""Format -> writer of a tiny dataset in its real layout, returning the usable frames (rooms) it has."""

RGBD = [name for name, spec in DATASETS.items() if spec.modality == "rgbd" and name != "synthetic"]
LABELLED = ["scannet", "s3dis"]


def test_every_format_has_a_fixture_and_a_config_value():
    # synthetic is generated, not read: tests/data/test_scannet_synthetic.py covers it; sunrgbd
    # (3D boxes only) is covered by tests/detection/test_sunrgbd.py.
    assert set(DATASETS) - {"synthetic", "sunrgbd"} == set(FIXTURES)
    frame_kinds = {n for n, s in DATASETS.items() if s.open_frames is not None}
    assert set(get_args(get_type_hints(DataConfig)["kind"])) == frame_kinds
    labelled = {n for n, s in DATASETS.items() if s.open_scenes is not None} - {"nuscenes", "semantickitti"}
    scene_kinds = set(get_args(get_type_hints(EvalDataConfig)["kind"]))
    assert labelled <= scene_kinds and scene_kinds <= {n for n, s in DATASETS.items() if s.open_scenes}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_detection_and_check_data_counts(tmp_path, name):
    root = tmp_path / name
    usable = FIXTURES[name](root)
    found = detect(root)
    assert found.format == name
    report = scan_dataset(root, frame_skip=1)
    assert report.format == name and report.frames_usable == usable, report.format_text()
    if name == "s3dis":
        assert report.skipped == {"malformed row": 1}
        assert "ceiling_1.txt:8" in report.examples["malformed row"][0]
        assert any("'stairs' read as clutter" in note for note in report.notes)
    else:
        assert report.frames_skipped == 0, report.format_text()


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("tum", "rgbd_dataset_freiburg1_xyz/rgb"),
        ("rgbd-folder", "capture/color"),
        ("scannet", "scene0000_00/pose"),
    ],
)
def test_detection_one_level_above_or_below(tmp_path, name, inside):
    root = tmp_path / "data" / name
    FIXTURES[name](root)
    below = detect(tmp_path / "data")  # the root is one level below the path given
    assert below.format == name and below.root == root and "one level below" in below.note
    above = detect(root / inside)  # the path given is a folder inside a sequence / scene
    assert above.format == name and above.root == (root / inside).parent and "one level above" in above.note
    report = scan_dataset(tmp_path / "data", frame_skip=1)
    assert report.format == name and report.notes[0].startswith(f"read {root}")
    assert report.frames_usable == scan_dataset(root, frame_skip=1).frames_usable > 0


@pytest.mark.parametrize("name", RGBD)
def test_one_pretraining_step_on_every_rgbd_format(tmp_path, name):
    from ppkt.train.loop import pretrain
    from tiny_pretrain import tiny_config

    root = tmp_path / name
    if not DATASETS[name].open_frames:
        pytest.skip(f"{name} has no frames")
    FIXTURES[name](root)
    overrides = {"data.kind": name, "data.root": str(root), "data.frame_skip": "1", "data.split": "none"}
    cfg = tiny_config(tmp_path / "run", **overrides, **{"optim.steps": "1", "data.max_depth": "3"})
    result = pretrain(cfg)
    assert result.step == 1 and all(math.isfinite(v) for v in result.losses.values())
    assert result.skipped_frames == 0


@pytest.mark.parametrize("name", LABELLED)
def test_one_finetuning_step_on_every_labelled_format(tmp_path, name):
    from ppkt.eval.finetune import finetune
    from ppkt.eval.presets import get_preset

    root = tmp_path / name
    FIXTURES[name](root)
    preset = {"scannet": "finetune-scannet", "s3dis": "finetune-s3dis"}[name]
    tiny = {
        "data.root": str(root), "model.voxel_size": "0.25", "data.num_workers": "0",
        "model.backbone": "res16unet14", "model.width": "0.25", "optim.steps": "1", "optim.batch_size": "1",
        "run.eval_every": "1", "run.progress": "false", "run.device": "cpu", "augment.max_points": "300",
        "run.out": str(tmp_path / "run"),
    }  # fmt: skip
    cfg = apply_overrides(get_preset(preset), tiny)
    result = finetune(cfg)
    assert math.isfinite(result.best.miou) and result.best.num_points > 0
    assert (tmp_path / "run" / "splits").is_dir() and not (root / "splits").exists()


def test_nothing_usable_is_one_line_naming_the_root(tmp_path):
    root = tmp_path / "capture"
    write_rgbd_folder_fixture(root)
    for depth in (root / "capture" / "depth").iterdir():
        depth.unlink()
    with pytest.raises(NoUsableData) as info:
        open_frames("rgbd-folder", FrameRequest(root))
    message = str(info.value)
    assert "\n" not in message and str(root) in message and "missing file" in message
    with pytest.raises(ValueError, match="has no frames"):
        open_frames("s3dis", FrameRequest(root))
    with pytest.raises(ValueError, match="no labelled scenes"):
        registry.open_scenes("tum", SceneRequest(root))
    with pytest.raises(ValueError, match="unknown dataset format 'kinect'"):
        open_frames("kinect", FrameRequest(root))
    # options of one format given to another are errors, not silently ignored
    with pytest.raises(ValueError, match="color_from_depth is for data.kind 7scenes.*rgbd.yaml"):
        open_frames("rgbd-folder", FrameRequest(root, color_from_depth=root / "x.txt"))
    with pytest.raises(ValueError, match="label_set nyu40 is for data.kind scannet"):
        registry.open_scenes("s3dis", SceneRequest(root, label_set="nyu40"))


def test_colour_and_depth_of_different_sizes_pair_consistently(tmp_path):
    """Every reader whose colour and depth differ keeps each K: a depth pixel lands on the same
    colour pixel through either reader (ScanNet export, .sens, rgbd-folder of the same frames)."""
    from ppkt.geometry import rgbd_pairs

    write_scannet(tmp_path / "a")
    write_scannet_sens(tmp_path / "b")
    write_rgbd_folder_fixture(tmp_path / "c")
    frames = [
        open_frames(kind, FrameRequest(tmp_path / d, frame_skip=1, up_axis="z"))[1]
        for kind, d in (("scannet", "a"), ("scannet-sens", "b"), ("rgbd-folder", "c"))
    ]
    uvs = []
    for frame in frames:
        assert frame.color_hw == (60, 80) and frame.depth_hw == (30, 40)
        import torch

        pairs = rgbd_pairs(torch.from_numpy(frame.depth), frame.K_depth, frame.K_color, frame.color_hw)
        uvs.append(pairs.uv)
        # the two invalid depth values give no point in any reader
        assert frame.depth[0, 0] == 0 and frame.depth[1, 1] == 0
    assert all(len(uv) == len(uvs[0]) and np.allclose(uv, uvs[0]) for uv in uvs)
    # K_color = 2 K_depth shifted by 0.5 px: depth pixel ij = (0, 1), the first valid one, is at colour
    # uv = (2 * 1 + 0.5, 2 * 0 + 0.5)
    assert np.allclose(uvs[0][0].numpy(), [2.5, 0.5])


def test_slam_poses_are_rotated_to_a_z_up_world(tmp_path):
    from ppkt.data.gravity import mean_camera_up

    for name in ("7scenes", "tum", "rgbd-folder"):
        root = tmp_path / name
        FIXTURES[name](root)
        raw = open_frames(name, FrameRequest(root, frame_skip=1, up_axis="z"))
        raw_up = mean_camera_up([raw[i].world_from_camera for i in range(len(raw))])
        assert np.allclose(raw_up, [0, -1, 0], atol=1e-3), name
        report = scan_dataset(root, frame_skip=1)
        assert any(
            "poses not gravity-aligned (mean camera up = (+0.00, -1.00, +0.00)" in n for n in report.notes
        )
        for up_axis in ("auto", "-y"):
            aligned = open_frames(name, FrameRequest(root, frame_skip=1, up_axis=up_axis))
            ups = [aligned[i].world_from_camera for i in range(len(aligned))]
            assert np.allclose(mean_camera_up(ups), [0, 0, 1], atol=1e-3), (name, up_axis)
    scannet = tmp_path / "scannet"
    write_scannet(scannet)
    assert not any("gravity" in n for n in scan_dataset(scannet, frame_skip=1).notes)


def test_7scenes_flat_and_official_layouts_read_the_same_way(tmp_path):
    write_7scenes_flat(tmp_path / "flat")
    frames = open_frames("7scenes", FrameRequest(tmp_path / "flat", up_axis="z"))
    assert len(frames) == 3 and np.allclose(frames[0].K_color, K_DEPTH)
    assert frames[2].frame_id == "000002" and np.allclose(frames[2].world_from_camera, slam_pose(2))
    write_7scenes(tmp_path / "official")
    official = open_frames("7scenes", FrameRequest(tmp_path / "official", up_axis="z"))
    assert official[1].scene_id == "chess/seq-01" and official.report.notes  # default K noted
    assert scan_dataset(tmp_path / "flat").frames_usable == 3


def test_sens_frames_match_the_export(tmp_path):
    write_scannet(tmp_path / "export")
    write_scannet_sens(tmp_path / "sens")
    exported = open_frames("scannet", FrameRequest(tmp_path / "export", frame_skip=1))
    streamed = open_frames("scannet-sens", FrameRequest(tmp_path / "sens", frame_skip=1))
    assert len(exported) == len(streamed) == 3
    for a, b in zip(exported, streamed, strict=False):
        assert np.array_equal(a.depth, b.depth) and np.allclose(a.world_from_camera, b.world_from_camera)
        assert np.abs(a.color.astype(int) - b.color.astype(int)).mean() < 3  # both JPEG at quality 95


def test_frame_request_defaults_follow_the_format(tmp_path):
    write_scannet(tmp_path / "s")
    assert len(open_frames("scannet", FrameRequest(tmp_path / "s"))) == 1  # every 25th frame: 0
    assert len(open_frames("scannet", replace(FrameRequest(tmp_path / "s"), frame_skip=1))) == 3


def test_7scenes_color_from_depth_reaches_the_frames_and_the_pairs(tmp_path):
    import torch

    from ppkt.geometry import rgbd_pairs

    write_7scenes_flat(tmp_path / "flat")
    transform = np.eye(4)
    transform[0, 3] = 0.025  # 2.5 cm baseline: at 1.5 m and f = 60 px, 1 px to the right
    write_matrix(tmp_path / "color_from_depth.txt", transform)
    request = FrameRequest(tmp_path / "flat", up_axis="z")
    plain = open_frames("7scenes", request)[0]
    shifted = open_frames("7scenes", replace(request, color_from_depth=tmp_path / "color_from_depth.txt"))[0]
    assert np.allclose(shifted.color_from_depth, transform) and np.allclose(plain.color_from_depth, np.eye(4))
    uv = [
        rgbd_pairs(
            torch.from_numpy(f.depth), f.K_depth, f.K_color, f.color_hw, color_from_depth=f.color_from_depth
        )
        for f in (plain, shifted)
    ]
    first = uv[1].point_index[0]
    assert torch.allclose(uv[1].uv[0] - uv[0].uv[uv[0].point_index == first][0], torch.tensor([1.0, 0.0]))
    write_matrix(tmp_path / "bad.txt", np.full((4, 4), np.inf))
    with pytest.raises(ValueError, match="invalid pose"):
        open_frames("7scenes", replace(request, color_from_depth=tmp_path / "bad.txt"))

"""Pretraining on lidar + camera data: tiny nuScenes / SemanticKITTI / KITTI datasets in their
on-disk formats go through the readers, the pair pipeline and two optimisation steps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from outdoor_fixtures import write_kitti_object, write_kitti_raw, write_nuscenes, write_semantickitti

from ppkt.config import apply_overrides
from ppkt.data.types import CameraImage, LidarCameraSample
from ppkt.train import loop
from ppkt.train.batch import Collator
from ppkt.train.config import AugmentConfig, DataConfig
from ppkt.train.dataset import PretrainDataset
from ppkt.train.presets import get_preset
from ppkt.train.samples import lidar_sample

TINY = {
    "data.image_hw": "30,40",
    "data.frame_skip": "1",
    "data.num_workers": "0",
    "teacher.stage": "stride8",
    "model.width": "0.25",
    "model.voxel_size": "0.5",
    "model.input_features": "constant",
    "loss.num_pairs": "64",
    "optim.batch_size": "2",
    "optim.steps": "2",
    "optim.warmup_steps": "0",
    "run.cpu_threads": "1",
    "run.progress": "false",
    "run.tensorboard": "false",
    "run.log_every": "1",
}
NUSC_SCENES = ("scene-0061", "scene-0655")  # both in SLidR's slidr_parametrize split
NO_AUGMENT = AugmentConfig(
    rotate_up=0.0, scale_min=1.0, scale_max=1.0, flip_3d=0.0, hflip=0.0, crop_scale_min=1.0
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_two_steps(tmp_path, **overrides):
    cfg = apply_overrides(get_preset("demo"), {**TINY, "run.out": str(tmp_path / "run"), **overrides})
    result = loop.pretrain(cfg)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return result, metrics


def test_nuscenes_pretrain_two_steps_teacher_sees_all_six_cameras(tmp_path, teacher_calls):
    root = tmp_path / "nuscenes"
    write_nuscenes(root, scenes=NUSC_SCENES, num_points=400, with_lidarseg=False)
    result, metrics = run_two_steps(
        tmp_path, **{"data.kind": "nuscenes", "data.root": str(root), "data.split": "none"}
    )
    assert result.step == 2 and all(math.isfinite(v) for v in result.losses.values())
    assert all(m["pairs"] > 0 for m in metrics) and result.skipped_frames == 0
    assert teacher_calls == [2 * 6, 2 * 6]  # batch of 2 samples x 6 cameras, every step


def test_nuscenes_sample_pairs_cover_several_cameras_at_training_size(tmp_path):
    root = tmp_path / "nuscenes"
    write_nuscenes(root, scenes=NUSC_SCENES, num_points=400, with_lidarseg=False)
    cfg = apply_overrides(get_preset("demo"), {**TINY, "data.kind": "nuscenes", "data.root": str(root)})
    cfg = apply_overrides(cfg, {"data.split": "none"})
    frames = loop.build_frames(cfg)
    assert len(frames) == 4 and frames.beam_spacing_deg > 1
    dataset = PretrainDataset(frames, cfg.data, NO_AUGMENT, "constant", seed=0)
    sample = dataset[0]
    assert sample.images.shape == (6, 3, 30, 40)
    assert len(sample.pair_image.unique()) >= 3
    uv = sample.pair_uv
    assert (uv >= -0.5).all() and (uv[:, 0] < 40 - 0.5).all() and (uv[:, 1] < 30 - 0.5).all()
    # Collated, pair_image indexes the batch's 12 images and each pair's image is of its own sample.
    second = dataset[1]
    batch = Collator(0.5)([sample, second])
    assert batch.images.shape[0] == 12 and batch.image_frame.tolist() == [0] * 6 + [1] * 6
    assert torch.equal(batch.image_frame[batch.pair_image], batch.pair_frame)
    assert torch.equal(batch.pair_image[batch.pair_frame == 1], second.pair_image + 6)
    assert torch.equal(batch.images[6:], second.images)


def test_semantickitti_pretrain_two_steps(tmp_path, teacher_calls):
    write_semantickitti(tmp_path / "skitti", sequences=("00", "01"), num_points=400, with_labels=False)
    result, metrics = run_two_steps(
        tmp_path,
        **{"data.kind": "semantickitti", "data.root": str(tmp_path / "skitti"), "data.split": "train"},
    )
    assert result.step == 2 and all(math.isfinite(v) for v in result.losses.values())
    assert all(m["pairs"] > 0 for m in metrics)
    assert teacher_calls == [2, 2]  # one image_2 per sweep


def test_kitti_object_frames_and_split(tmp_path):
    write_kitti_object(tmp_path / "kitti", frames=3, num_points=50)
    cfg = apply_overrides(
        get_preset("demo"), {**TINY, "data.kind": "kitti", "data.root": str(tmp_path / "kitti")}
    )
    frames = loop.build_frames(cfg)  # split "train" = ImageSets/train.txt (2 of the 3 frames)
    assert [r.sample_id for r in frames.records] == ["training/000000", "training/000001"]
    thinned = loop.build_frames(apply_overrides(cfg, {"data.frame_skip": "2", "data.split": "none"}))
    assert [r.sample_id for r in thinned.records] == ["training/000000", "training/000002"]


def test_kitti_raw_frames_all_drives_or_named_ones(tmp_path):
    drive = write_kitti_raw(tmp_path / "raw", frames=4)
    cfg = apply_overrides(
        get_preset("demo"), {**TINY, "data.kind": "kitti-raw", "data.root": str(tmp_path / "raw")}
    )
    assert len(loop.build_frames(cfg)) == 4  # "train" = every drive: KITTI raw has no official split
    named = apply_overrides(cfg, {"data.split": drive.name, "data.frame_skip": "2"})
    assert [r.sample_id for r in loop.build_frames(named).records] == [
        f"{drive.name}/0000000000",
        f"{drive.name}/0000000002",
    ]
    with pytest.raises(ValueError, match="not found"):
        loop.build_frames(apply_overrides(cfg, {"data.split": "2011_09_26_drive_9999_sync"}))
    with pytest.raises(ValueError, match="data.root is required"):
        loop.build_frames(apply_overrides(cfg, {"data.root": "none"}))


def test_corrupt_sweep_is_skipped_and_counted(tmp_path):
    root = tmp_path / "nuscenes"
    fixture = write_nuscenes(root, scenes=NUSC_SCENES, num_points=400, with_lidarseg=False)
    # A truncated download: not a whole number of 5-float records.
    path = fixture.lidar_paths[0]
    path.write_bytes(path.read_bytes()[:-3])
    result, metrics = run_two_steps(
        tmp_path,
        **{"data.kind": "nuscenes", "data.root": str(root), "data.split": "none", "optim.steps": "4"},
    )
    assert result.step == 4 and all(math.isfinite(v) for v in result.losses.values())
    # 4 samples, batch 2, two epochs: the corrupt one is met once per epoch.
    assert result.skipped_frames == 2 and metrics[-1]["skipped_frames"] == 2


def test_samples_left_out_at_indexing_are_reported(tmp_path):
    root = tmp_path / "nuscenes"
    write_nuscenes(root, scenes=NUSC_SCENES, num_points=400, with_lidarseg=False)
    # Drop one camera key frame of one sample: the reader leaves that sample out when indexing.
    table = root / "v1.0-mini" / "sample_data.json"
    rows = json.loads(table.read_text())
    drop = next(r["token"] for r in rows if r["is_key_frame"] and "__CAM_BACK__" in r["filename"])
    table.write_text(json.dumps([r for r in rows if r["token"] != drop]))
    result, _ = run_two_steps(
        tmp_path, **{"data.kind": "nuscenes", "data.root": str(root), "data.split": "none"}
    )
    assert result.step == 2 and result.index_skipped == {"missing camera": 1}


def test_unreadable_image_and_non_finite_points_never_crash(tmp_path):
    root = tmp_path / "nuscenes"
    write_nuscenes(root, scenes=NUSC_SCENES, num_points=400, with_lidarseg=False)
    cfg = apply_overrides(
        get_preset("demo"),
        {**TINY, "data.kind": "nuscenes", "data.root": str(root), "data.split": "none"},
    )
    frames = loop.build_frames(cfg)
    frames.records[1].cameras[2].path.write_bytes(b"not a jpeg")
    dataset = PretrainDataset(frames, cfg.data, cfg.augment, "constant", seed=0)
    sample = dataset[1]
    assert sample.name == frames.records[2].sample_token
    assert len(sample.skipped) == 1 and "undecodable" in sample.skipped[0].lower()

    good = frames[0]
    points = good.points.copy()
    points[::7] = np.nan
    out = lidar_sample(
        LidarCameraSample(points, None, good.images, None, "nan"), cfg.data, NO_AUGMENT, "constant",
        np.random.default_rng(0),
    )  # fmt: skip
    assert torch.isfinite(out.points).all() and out.pair_point.numel() > 0


def wall_with_background(beam_px: int = 4):
    """A foreground wall at 5 m on image rows 0, 4, 8, ... (lidar beams ``beam_px`` rows apart)
    and a background wall at 20 m on the rows between them, seen by one 60x80 camera."""
    h, w, f = 60, 80, 100.0
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    uu, vv = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    near = (vv % beam_px) == 0
    far = (vv % beam_px) == beam_px // 2
    z = np.where(near, 5.0, 20.0)
    keep = near | far
    u, v, z = uu[keep], vv[keep], z[keep]
    points = np.stack([(u - K[0, 2]) / f * z, (v - K[1, 2]) / f * z, z], axis=1).astype(np.float32)
    image = np.zeros((h, w, 3), dtype=np.uint8)
    sample = LidarCameraSample(points, None, [CameraImage(image, K, np.eye(4), "cam")], None, "wall")
    # The beam spacing that occlusion_radius_px turns into half the row spacing (2 px).
    spacing_deg = float(np.rad2deg(beam_px / f))
    return sample, z > 10, spacing_deg


def test_lidar_pairs_use_the_beam_spacing_occlusion_radius():
    sample, background, spacing_deg = wall_with_background()
    data = DataConfig(kind="nuscenes", image_hw=(60, 80))
    rng = np.random.default_rng(0)
    with_radius = lidar_sample(sample, data, NO_AUGMENT, "constant", rng, beam_spacing_deg=spacing_deg)
    per_pixel = lidar_sample(sample, data, NO_AUGMENT, "constant", rng, beam_spacing_deg=None)
    hidden = torch.from_numpy(background)
    assert hidden[per_pixel.pair_point].sum() > 0  # a per-pixel z-buffer lets the background through
    assert hidden[with_radius.pair_point].sum() == 0
    assert (~hidden[with_radius.pair_point]).sum() == (~hidden).sum()  # every wall point stays paired


def test_lidar_pairs_are_computed_at_the_training_size():
    sample, background, spacing_deg = wall_with_background()
    data = DataConfig(kind="nuscenes", image_hw=(30, 40))
    out = lidar_sample(sample, data, NO_AUGMENT, "constant", np.random.default_rng(0), beam_spacing_deg=None)
    assert out.images.shape == (1, 3, 30, 40)
    # At half size the foreground rows are 2 px apart: the pair pixels lie on a 30x40 grid.
    uv = out.pair_uv
    assert (uv[:, 0] < 39.5).all() and (uv[:, 1] < 29.5).all() and uv[:, 1].max() > 20


def test_cli_slidr_preset_runs_one_step_on_tiny_nuscenes(tmp_path, teacher_calls):
    from ppkt.cli import main

    root = tmp_path / "nuscenes"
    write_nuscenes(root, version="v1.0-trainval", scenes=NUSC_SCENES, num_points=400, with_lidarseg=False)
    args = [
        "pretrain",
        "--preset",
        "slidr-ppkt",
        "--data.root",
        str(root),
        "--run.out",
        str(tmp_path / "run"),
    ]
    for key, value in {
        **TINY,
        "teacher.name": "efficientnet_lite0",
        "model.backbone": "res16unet14",
        "optim.epochs": "none",
    }.items():
        if key not in ("optim.steps",):
            args += [f"--{key}", value]
    assert main([*args, "--optim.steps", "1"]) == 0
    assert teacher_calls == [2 * 6]

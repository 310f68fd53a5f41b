"""Scene-level samples (data.pairs=scene): the scene cloud paired with several posed views."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from train_fixtures import make_frame

from ppkt.data.ply import write_ply_vertices
from ppkt.geometry import unproject_depth
from ppkt.train.batch import Collator
from ppkt.train.dataset import PretrainDataset
from ppkt.train.loop import pretrain
from ppkt.train.scene_samples import SceneCloud, SceneIndex, read_scene_cloud
from tiny_pretrain import tiny_config


class SceneFrames(list):
    """Frames with the scene index the loop uses for data.pairs=scene."""

    scene_index: SceneIndex | None = None


def scene_frames(count=6):
    frames = SceneFrames(make_frame(seed=i, name=f"{i:06d}") for i in range(count))
    # The cloud: every frame's back-projected depth (identity poses), plus a far point nobody sees.
    clouds = []
    for f in frames:
        pts, _ = unproject_depth(torch.from_numpy(f.depth), torch.from_numpy(f.K_depth))
        clouds.append(pts.numpy())
    points = np.concatenate([*clouds, [[0.0, 0.0, -50.0]]]).astype(np.float32)
    colors = np.full(points.shape, 200, dtype=np.uint8)
    cloud = SceneCloud(points, colors)
    frames.scene_index = SceneIndex([f.scene_id for f in frames], lambda scene: cloud)
    return frames, cloud


def test_sample_holds_the_whole_cloud_and_several_views(tmp_path):
    frames, cloud = scene_frames()
    cfg = tiny_config(
        tmp_path / "run", **{"data.pairs": "scene", "data.scene_views": "3", "augment.crop_scale_min": "1"}
    )
    dataset = PretrainDataset(
        frames, cfg.data, cfg.augment, cfg.model.input_features, seed=0, scenes=frames.scene_index
    )
    sample = dataset[(2, 0)]
    assert sample.points.shape[0] == cloud.points.shape[0]  # unpaired points stay in the input
    assert sample.images.shape[0] == 3
    assert set(sample.pair_image.tolist()) == {0, 1, 2}
    assert sample.name.startswith("scene0000_00/000002+2")
    assert (cloud.points.shape[0] - 1) not in set(sample.pair_point.tolist())  # the far point is unseen
    # the frame's own points pair with its own image (view 0)
    own = set(sample.pair_point[sample.pair_image == 0].tolist())
    offset = sum(int((f.depth > 0).sum()) for f in frames[:2])
    assert (
        len(own & set(range(offset, offset + int((frames[2].depth > 0).sum()))))
        > 0.9 * (frames[2].depth > 0).sum()
    )
    batch = Collator(cfg.model.voxel_size)([sample, dataset[(0, 0)]])
    assert batch.images.shape[0] == 6 and batch.pair_frame.max() == 1
    # the same key draws the same views
    again = dataset[(2, 0)]
    assert torch.equal(again.pair_point, sample.pair_point)


@pytest.mark.parametrize("name", ["infonce", "cosine", "superpixel-infonce"])
def test_pretraining_smoke_with_scene_pairs(tmp_path, name):
    frames, _ = scene_frames()
    cfg = tiny_config(
        tmp_path / "run",
        **{
            "data.pairs": "scene",
            "data.scene_views": "2",
            "loss.name": name,
            "loss.superpixels": "12",
            "optim.steps": "4",
            "optim.lr": "0.05",
        },
    )
    result = pretrain(cfg, frames=frames)
    losses = list(result.losses.values())
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert max(losses) - min(losses) > 1e-4


def test_scene_pairs_need_a_scene_layout_and_no_teacher_cache(tmp_path):
    frames = [make_frame(seed=0)]
    cfg = tiny_config(
        tmp_path / "run", **{"data.pairs": "scene", "optim.steps": "1", "optim.batch_size": "1"}
    )
    with pytest.raises(ValueError, match="ScanNet-layout"):
        pretrain(cfg, frames=frames)
    with pytest.raises(ValueError, match="teacher.cache"):
        PretrainDataset(frames, cfg.data, cfg.augment, "rgb", seed=0, teacher_cache=object(), scenes=object())


def test_read_scene_cloud(tmp_path):
    path = tmp_path / "scene0000_00_vh_clean_2.ply"
    cols = {"x": np.array([0.0, 1.0], np.float32), "y": np.zeros(2, np.float32), "z": np.ones(2, np.float32)}
    write_ply_vertices(
        path,
        {
            **cols,
            "red": np.array([1, 2], np.uint8),
            "green": np.zeros(2, np.uint8),
            "blue": np.zeros(2, np.uint8),
        },
    )
    cloud = read_scene_cloud(path)
    assert cloud.points.shape == (2, 3) and cloud.colors[:, 0].tolist() == [1, 2]
    write_ply_vertices(path, cols)
    with pytest.raises(ValueError, match="red"):
        read_scene_cloud(path)
    with pytest.raises(FileNotFoundError, match="vh_clean_2"):
        read_scene_cloud(tmp_path / "missing.ply")


def test_scene_pairs_refuse_lidar_data(tmp_path):
    from ppkt.train.loop import scene_index

    cfg = tiny_config(tmp_path / "run", **{"data.pairs": "scene", "data.kind": "nuscenes"})
    with pytest.raises(ValueError, match="nuscenes"):
        scene_index(cfg, [])

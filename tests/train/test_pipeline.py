import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from train_fixtures import make_frame

from ppkt.augment.image import augment_image
from ppkt.augment.points import rotation_about_axis
from ppkt.geometry import rgbd_pairs
from ppkt.train.batch import Collator
from ppkt.train.config import AugmentConfig, DataConfig
from ppkt.train.dataset import PretrainDataset
from ppkt.train.sampler import StepBatchSampler
from ppkt.train.samples import rgbd_sample

DATA = DataConfig(kind="synthetic", image_hw=(24, 32), min_depth=0.1, max_depth=10.0)
NO_AUG = AugmentConfig(
    rotate_up=0.0, scale_min=1.0, scale_max=1.0, flip_3d=0.0, hflip=0.0, crop_scale_min=1.0
)


def bilinear(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Sample ``(3, H, W)`` at ``uv`` with the project's convention (pixel centres at integers)."""
    H, W = image.shape[1:]
    grid = torch.stack([(2 * uv[:, 0] + 1) / W - 1, (2 * uv[:, 1] + 1) / H - 1], dim=1).view(1, 1, -1, 2)
    return F.grid_sample(image[None].double(), grid.double(), align_corners=False)[0, :, 0].t()


@pytest.mark.parametrize("seed", range(8))
def test_colour_at_pair_survives_2d_augmentation(seed):
    h, w = 48, 64
    frame = make_frame(h, w)
    original = rgbd_pairs(torch.from_numpy(frame.depth), frame.K_depth, frame.K_color, (h, w))
    # An exactly linear float ramp (the uint8 one is rounded): R = u / (w-1), G = v / (h-1).
    u = torch.arange(w, dtype=torch.float64).expand(h, w) / (w - 1)
    v = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w) / (h - 1)
    image = torch.stack([u, v, torch.full_like(u, 0.5)])
    aug = AugmentConfig(hflip=0.5, crop_scale_min=0.5)
    new_image, new_uv, keep = augment_image(image, original.uv, aug, (h, w), np.random.default_rng(seed))
    assert 0 < keep.sum() <= len(original)
    before = bilinear(image, original.uv[keep])
    after = bilinear(new_image, new_uv)
    # Bilinear sampling reproduces a linear ramp exactly, except within a pixel of the border (clamping).
    inner = (new_uv[:, 0] >= 1) & (new_uv[:, 0] <= w - 2) & (new_uv[:, 1] >= 1) & (new_uv[:, 1] <= h - 2)
    assert inner.sum() > 0.5 * keep.sum()
    torch.testing.assert_close(after[inner], before[inner], atol=1e-5, rtol=0)
    assert (new_uv[:, 0] >= -0.5).all() and (new_uv[:, 0] < w - 0.5).all()
    assert (new_uv[:, 1] >= -0.5).all() and (new_uv[:, 1] < h - 0.5).all()


def test_crop_drops_pairs_outside_and_flip_mirrors():
    image = torch.rand(3, 10, 20)
    uv = torch.tensor([[0.0, 0.0], [19.0, 9.0], [10.0, 5.0]])
    flip_only = AugmentConfig(hflip=1.0, crop_scale_min=1.0)
    out, new_uv, keep = augment_image(image, uv, flip_only, (10, 20), np.random.default_rng(0))
    assert keep.all()
    torch.testing.assert_close(new_uv, torch.tensor([[19.0, 0.0], [0.0, 9.0], [9.0, 5.0]]))
    torch.testing.assert_close(out, image.flip(-1))
    crop = AugmentConfig(hflip=0.0, crop_scale_min=0.5)
    _, _, keep = augment_image(image, uv, crop, (10, 20), np.random.default_rng(1))
    assert not keep.all()  # a half-size crop cannot hold two opposite corners


def test_no_augmentation_is_identity():
    frame = make_frame()
    sample = rgbd_sample(frame, DATA, NO_AUG, "rgb", np.random.default_rng(0))
    pairs = rgbd_pairs(torch.from_numpy(frame.depth), frame.K_depth, frame.K_color, (24, 32))
    torch.testing.assert_close(sample.points, pairs.points)
    torch.testing.assert_close(sample.pair_uv, pairs.uv)
    # rgb features are the pixel colour minus 0.5
    expected = (
        torch.from_numpy(frame.color).float()[pairs.pixel_ij()[:, 0], pairs.pixel_ij()[:, 1]] / 255 - 0.5
    )
    torch.testing.assert_close(sample.features[sample.pair_point], expected)


@pytest.mark.parametrize("points_frame,up,across", [("camera", 1, [0, 2]), ("world", 2, [0, 1])])
def test_3d_augmentation_rotates_about_up_and_keeps_pairs(points_frame, up, across):
    frame = make_frame()
    data = dataclasses.replace(DATA, points_frame=points_frame)
    aug = AugmentConfig(
        rotate_up=3.0, scale_min=0.8, scale_max=1.2, flip_3d=0.5, hflip=0.0, crop_scale_min=1.0
    )
    plain = rgbd_sample(frame, data, NO_AUG, "rgb", np.random.default_rng(0))
    moved = rgbd_sample(frame, data, aug, "rgb", np.random.default_rng(3))
    assert moved.points.shape == plain.points.shape
    # Rotation about the up axis (camera: y, world: z) and mirroring x keep it up to the common scale.
    ratio = moved.points[:, up] / plain.points[:, up]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), atol=1e-5)
    assert 0.8 <= ratio[0] <= 1.2
    # Distances from the axis scale by the same factor: points were not shuffled.
    r_plain = plain.points[:, across].norm(dim=1)
    r_moved = moved.points[:, across].norm(dim=1)
    torch.testing.assert_close(r_moved, r_plain * ratio[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(moved.pair_point, plain.pair_point)


def test_world_frame_points_follow_the_pose():
    frame = make_frame()
    pose = np.eye(4)
    pose[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # a level camera in a z-up world
    pose[:3, 3] = [1.0, 2.0, 1.5]
    frame.world_from_camera = pose
    camera = rgbd_sample(
        frame, dataclasses.replace(DATA, points_frame="camera"), NO_AUG, "rgb", np.random.default_rng(0)
    )
    world = rgbd_sample(
        frame, dataclasses.replace(DATA, points_frame="world"), NO_AUG, "rgb", np.random.default_rng(0)
    )
    expected = camera.points.double() @ torch.tensor(pose[:3, :3]).T + torch.tensor(pose[:3, 3])
    torch.testing.assert_close(world.points, expected.float())
    # camera y points down, so world z of points below the camera centre is below 1.5 m
    below = camera.points[:, 1] > 0
    assert (world.points[below, 2] < 1.5).all()
    torch.testing.assert_close(world.pair_uv, camera.pair_uv)
    frame.world_from_camera = None  # no pose: the camera frame is used
    no_pose = rgbd_sample(
        frame, dataclasses.replace(DATA, points_frame="world"), NO_AUG, "rgb", np.random.default_rng(0)
    )
    torch.testing.assert_close(no_pose.points, camera.points)


def test_rotation_about_axis_is_a_rotation():
    R = rotation_about_axis((0.0, -1.0, 0.0), 0.7)
    torch.testing.assert_close(R @ R.t(), torch.eye(3, dtype=torch.float64))
    assert torch.det(R).item() == pytest.approx(1.0)
    torch.testing.assert_close(
        R @ torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64),
        torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64),
    )


def test_elastic_distortion_moves_points_smoothly():
    frame = make_frame()
    aug = dataclasses.replace(NO_AUG, elastic=True, elastic_granularity=0.2, elastic_magnitude=0.05)
    plain = rgbd_sample(frame, DATA, NO_AUG, "rgb", np.random.default_rng(0))
    moved = rgbd_sample(frame, DATA, aug, "rgb", np.random.default_rng(0))
    shift = (moved.points - plain.points).norm(dim=1)
    assert shift.max() > 0 and shift.max() < 0.2
    assert torch.isfinite(moved.points).all()


def test_collate_global_indices(frames):
    dataset = PretrainDataset(frames, DATA, AugmentConfig(), "rgb", seed=0)
    samples = [dataset[(i, 0)] for i in range(3)]
    batch = Collator(0.05)(samples)
    assert batch.batch_size == 3 and batch.images.shape == (3, 3, 24, 32)
    sparse = batch.sparse
    assert sparse.point_offsets.tolist()[-1] == sparse.point_to_voxel.numel()
    voxel_frame = sparse.tensor.coords[sparse.point_to_voxel[batch.pair_point], 0]
    assert torch.equal(voxel_frame, batch.pair_frame)
    assert torch.equal(batch.image_frame[batch.pair_image], batch.pair_frame)
    for b, s in enumerate(samples):
        mine = batch.pair_frame == b
        torch.testing.assert_close(batch.pair_uv[mine], s.pair_uv)
        assert torch.equal(batch.pair_point[mine] - sparse.point_offsets[b], s.pair_point)
    assert sparse.tensor.feats.shape == (sparse.tensor.num_sites, 3) and sparse.voxel_size == 0.05
    per_frame = torch.bincount(sparse.tensor.coords[:, 0], minlength=3)
    assert sparse.voxel_offsets.tolist() == [0, *per_frame.cumsum(0).tolist()]
    moved = batch.to("cpu")  # a device move carries the sparse batch whole, with a new SparseTensor
    assert moved.sparse.tensor is not sparse.tensor and moved.sparse.voxel_size == sparse.voxel_size
    for name in ("point_to_voxel", "point_offsets", "voxel_offsets"):
        assert torch.equal(getattr(moved.sparse, name), getattr(sparse, name))
    assert torch.equal(moved.sparse.tensor.feats, sparse.tensor.feats)


def test_augmentation_depends_only_on_seed_epoch_index(frames):
    a = PretrainDataset(frames, DATA, AugmentConfig(), "rgb", seed=1)
    b = PretrainDataset(frames, DATA, AugmentConfig(), "rgb", seed=1)
    assert torch.equal(a[(2, 5)].points, b[(2, 5)].points)
    assert not torch.equal(a[(2, 5)].points, a[(2, 6)].points)


def test_unusable_frames_are_skipped_and_counted(frames):
    broken = make_frame(name="broken")
    broken.depth[:] = 0.0
    dataset = PretrainDataset([broken, broken, *frames], DATA, AugmentConfig(), "rgb", seed=0)
    sample = dataset[(0, 0)]
    assert sample.name == "scene0000_00/000000"
    assert len(sample.skipped) == 2 and "pairs" in sample.skipped[0]
    batch = Collator(0.05)([sample, dataset[(3, 0)]])
    assert len(batch.skipped) == 2
    with pytest.raises(ValueError, match="3 consecutive unusable frames.*pairs: 3"):
        PretrainDataset([broken] * 3, DATA, AugmentConfig(), "rgb", seed=0)[(0, 0)]


def test_step_batch_sampler_shards_and_resumes():
    full = StepBatchSampler(23, 2, seed=3, total_steps=12, world_size=2, rank=0)
    other = StepBatchSampler(23, 2, seed=3, total_steps=12, world_size=2, rank=1)
    assert full.steps_per_epoch == 5
    a, b = list(full), list(other)
    assert len(a) == 12
    for step in range(5):  # within an epoch the ranks see disjoint frames, each frame at most once
        assert not set(a[step]) & set(b[step])
    seen = [k for batch in a[:5] + b[:5] for k in batch]
    assert len(seen) == len(set(seen)) == 20
    resumed = list(StepBatchSampler(23, 2, seed=3, total_steps=12, start_step=7, world_size=2, rank=0))
    assert resumed == a[7:]
    assert a[5][0][1] == 1  # epoch number travels with the key
    with pytest.raises(ValueError, match="fewer than batch_size"):
        StepBatchSampler(3, 2, seed=0, total_steps=1, world_size=2)


def test_dataloader_workers_give_the_same_batches(frames):
    dataset = PretrainDataset(frames, DATA, AugmentConfig(), "rgb", seed=0)
    sampler = StepBatchSampler(len(frames), 2, seed=0, total_steps=2)

    def batches(workers):
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, num_workers=workers, collate_fn=Collator(0.05)
        )
        return list(loader)

    for a, b in zip(batches(0), batches(1), strict=True):
        assert a.names == b.names
        assert torch.equal(a.sparse.tensor.coords, b.sparse.tensor.coords)
        assert torch.equal(a.pair_uv, b.pair_uv)
        assert torch.equal(a.images, b.images)


def test_colour_augmentation_reaches_the_3d_input_only():
    frame = make_frame()
    coloured = dataclasses.replace(NO_AUG, color_translation=0.1, color_hue_max=0.5, color_jitter_std=0.05)
    plain = rgbd_sample(frame, DATA, NO_AUG, "rgb", np.random.default_rng(0), keep_teacher_image=True)
    moved = rgbd_sample(frame, DATA, coloured, "rgb", np.random.default_rng(0), keep_teacher_image=True)
    torch.testing.assert_close(moved.points, plain.points)
    torch.testing.assert_close(moved.pair_uv, plain.pair_uv)
    torch.testing.assert_close(moved.images, plain.images)  # the teacher sees the real image
    torch.testing.assert_close(moved.teacher_image, plain.teacher_image)
    change = (moved.features - plain.features).abs()
    assert change.mean() > 0.02 and moved.features.min() >= -0.5 and moved.features.max() <= 0.5
    again = rgbd_sample(frame, DATA, coloured, "rgb", np.random.default_rng(0), keep_teacher_image=True)
    torch.testing.assert_close(again.features, moved.features)

"""Pretraining with a teacher feature cache (teacher.cache): equivalence, staleness, missing frames."""

from __future__ import annotations

import json

import pytest
import torch
from train_fixtures import make_frame

from ppkt.teachers import StaleCacheError, TeacherFeatureCache, build_teacher, cache_teacher_features
from ppkt.train.batch import Collator
from ppkt.train.dataset import PretrainDataset
from ppkt.train.loop import pretrain
from ppkt.train.sampler import StepBatchSampler
from tiny_pretrain import tiny_config

NO_2D_AUGMENT = {"augment.hflip": "0", "augment.crop_scale_min": "1.0"}


def two_step_config(out, **extra):
    return tiny_config(out, **{"optim.steps": "2", **extra})


@pytest.fixture
def frames():
    # Colour at twice the training size, so the cache's and the pipeline's resize both run.
    return [make_frame(48, 64, seed=i, name=f"{i:06d}") for i in range(6)]


def write_cache(root, frames, *, stage="stride8", image_hw=(24, 32)) -> TeacherFeatureCache:
    teacher = build_teacher("efficientnet_lite0", stage=stage)
    cache = TeacherFeatureCache(root, teacher.identity, image_hw)
    cache_teacher_features(frames, teacher, cache, progress=False)
    return cache


def assert_losses_close(a: dict[int, float], b: dict[int, float]) -> None:
    assert a.keys() == b.keys()
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-2), step


def test_cached_features_equal_teacher_on_pipeline_image(tmp_path, frames):
    """The cache key and resize match the pipeline: cached maps == teacher(un-augmented training image)."""
    cache = write_cache(tmp_path / "cache", frames)
    cfg = two_step_config(tmp_path / "run", **NO_2D_AUGMENT)
    teacher = build_teacher("efficientnet_lite0", stage="stride8")
    plain = PretrainDataset(frames, cfg.data, cfg.augment, "rgb", seed=0)
    cached = PretrainDataset(frames, cfg.data, cfg.augment, "rgb", seed=0, teacher_cache=cache)
    for i in (0, 3):
        sample = plain[(i, 0)]
        expected = teacher(sample.images)[0]
        got = cached[(i, 0)].teacher_features
        assert got is not None and got.dtype == torch.float16
        torch.testing.assert_close(got.float(), expected, rtol=2e-3, atol=2e-3)
        # Without 2D augmentation the teacher pixel of a pair is its training pixel.
        torch.testing.assert_close(cached[(i, 0)].pair_uv_teacher, sample.pair_uv)


def test_teacher_uv_is_the_unaugmented_pixel(tmp_path, frames):
    cache = write_cache(tmp_path / "cache", frames[:1])
    cfg = two_step_config(tmp_path / "run", **{"augment.hflip": "1.0", "augment.crop_scale_min": "0.6"})
    unaugmented = two_step_config(tmp_path / "run", **NO_2D_AUGMENT)
    sample = PretrainDataset(frames, cfg.data, cfg.augment, "rgb", seed=0, teacher_cache=cache)[(0, 0)]
    reference = PretrainDataset(frames, unaugmented.data, unaugmented.augment, "rgb", seed=0)[(0, 0)]
    # One pair per point: map points to their un-augmented pixel.
    uv_of_point = torch.full((int(reference.points.shape[0]), 2), float("nan"))
    uv_of_point[reference.pair_point] = reference.pair_uv
    assert sample.pair_point.numel() < reference.pair_point.numel()  # the crop dropped pairs
    torch.testing.assert_close(sample.pair_uv_teacher, uv_of_point[sample.pair_point])
    assert not torch.allclose(sample.pair_uv, sample.pair_uv_teacher)  # flipped and cropped
    # A frame missing from the cache carries its un-augmented image for the teacher.
    missing = PretrainDataset(frames, cfg.data, cfg.augment, "rgb", seed=0, teacher_cache=cache)[(1, 0)]
    assert missing.teacher_features is None
    torch.testing.assert_close(missing.teacher_image, reference_image(frames[1], cfg))


def reference_image(frame, cfg):
    from ppkt.data.images import prepare_image

    return prepare_image(frame.color, tuple(cfg.data.image_hw))


def test_cached_run_matches_uncached_without_2d_augmentation(tmp_path, frames, teacher_calls):
    cache = write_cache(tmp_path / "cache", frames)
    plain = pretrain(two_step_config(tmp_path / "plain", **NO_2D_AUGMENT), frames=frames)
    assert teacher_calls == [2, 2]  # the hook sees the uncached run's teacher
    teacher_calls.clear()
    cfg = two_step_config(tmp_path / "cached", **NO_2D_AUGMENT, **{"teacher.cache": str(cache.root)})
    result = pretrain(cfg, frames=frames)
    assert teacher_calls == []  # everything cached: the teacher never ran
    assert result.teacher_uncached_frames == 0
    assert_losses_close(result.losses, plain.losses)
    lines = [json.loads(line) for line in (tmp_path / "cached" / "metrics.jsonl").read_text().splitlines()]
    assert [rec["teacher_uncached_frames"] for rec in lines] == [0, 0]


def test_missing_frame_runs_the_teacher_and_is_counted(tmp_path, frames, teacher_calls):
    """With 2D augmentation on, a frame missing from the cache gets the same (un-augmented) teacher
    features as a cached one, computed by the teacher, and is counted."""
    cache = write_cache(tmp_path / "cache", frames)
    full = pretrain(two_step_config(tmp_path / "full", **{"teacher.cache": str(cache.root)}), frames=frames)
    assert teacher_calls == []
    sampler = StepBatchSampler(len(frames), 2, seed=0, total_steps=2)
    steps = [[index for index, _ in sampler.batch_for_step(s)] for s in range(2)]
    gone = steps[0][0]
    cache.path(frames[gone].scene_id, frames[gone].frame_id).unlink()
    partial = two_step_config(tmp_path / "partial", **{"teacher.cache": str(cache.root)})
    result = pretrain(partial, frames=frames)
    expected = sum(batch.count(gone) for batch in steps)
    assert result.teacher_uncached_frames == expected >= 1
    assert teacher_calls == [1] * expected  # only the missing image went through the teacher
    assert_losses_close(result.losses, full.losses)
    lines = [json.loads(line) for line in (tmp_path / "partial" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["teacher_uncached_frames"] == expected


def test_empty_cache_folder_computes_everything_through_workers(tmp_path, frames, teacher_calls):
    """Worker processes read the cache; a cache missing every frame falls back for all of them."""
    cache = write_cache(tmp_path / "cache", [])
    cfg = two_step_config(tmp_path / "run", **{"teacher.cache": str(cache.root), "data.num_workers": "1"})
    result = pretrain(cfg, frames=frames)
    assert result.teacher_uncached_frames == 4 and teacher_calls == [2, 2]


@pytest.mark.parametrize(
    ("cache_kwargs", "field"),
    [({"stage": "stride16"}, "teacher_identity"), ({"image_hw": (32, 48)}, "image_hw")],
)
def test_stale_cache_is_refused(tmp_path, frames, cache_kwargs, field):
    cache = write_cache(tmp_path / "cache", frames[:1], **cache_kwargs)
    cfg = two_step_config(tmp_path / "run", **{"teacher.cache": str(cache.root)})
    with pytest.raises(StaleCacheError, match=field) as err:
        pretrain(cfg, frames=frames)
    message = str(err.value)
    assert str(cache.root / "manifest.json") in message and "requested" in message
    identity = build_teacher("efficientnet_lite0", stage="stride8").identity
    if field == "teacher_identity":
        assert cache.manifest.teacher_identity in message and identity in message
    else:
        assert "[32, 48]" in message and "[24, 32]" in message


def test_folder_without_manifest_is_refused(tmp_path, frames):
    (tmp_path / "empty").mkdir()
    cfg = two_step_config(tmp_path / "run", **{"teacher.cache": str(tmp_path / "empty")})
    with pytest.raises(FileNotFoundError, match="ppkt cache-teacher"):
        pretrain(cfg, frames=frames)
    assert not (tmp_path / "empty" / "manifest.json").exists()


def test_collated_cache_batch_moves_with_its_fields(tmp_path, frames):
    cache = write_cache(tmp_path / "cache", frames[:1])
    cfg = two_step_config(tmp_path / "run")
    dataset = PretrainDataset(frames, cfg.data, cfg.augment, "rgb", seed=0, teacher_cache=cache)
    batch = Collator(cfg.model.voxel_size)([dataset[(0, 0)], dataset[(1, 0)]]).to("cpu")
    assert batch.teacher_cached.tolist() == [True, False] and batch.num_teacher_uncached == 1
    assert batch.teacher_features.shape[0] == 2 and batch.teacher_images.shape == (1, 3, 24, 32)
    assert batch.teacher_image_hw == (24, 32) and batch.pair_uv_teacher.shape == batch.pair_uv.shape


def test_model_samples_cached_maps_at_the_unaugmented_pixels(tmp_path, frames):
    """With 2D augmentation on, the cached path equals the teacher on the un-augmented images sampled
    at ``pair_uv_teacher``, for cached and recomputed frames alike, and differs from the augmented path."""
    from ppkt.data.images import prepare_image
    from ppkt.train.model import build_model

    cache = write_cache(tmp_path / "cache", frames[:1])
    cfg = two_step_config(tmp_path / "run", **{"augment.hflip": "1.0"})
    model = build_model(cfg)
    dataset = PretrainDataset(frames, cfg.data, cfg.augment, "rgb", seed=0, teacher_cache=cache)
    batch = Collator(cfg.model.voxel_size)([dataset[(0, 0)], dataset[(1, 0)]])
    assert batch.teacher_cached.tolist() == [True, False]
    with torch.no_grad():
        got = model.pixel_embeddings(batch)
        images = torch.stack([prepare_image(frames[i].color, (24, 32)) for i in (0, 1)])
        expected = model.upl.sample(
            model.teacher(images),
            batch.pair_uv_teacher,
            batch.pair_image,
            (24, 32),
            stride=model.teacher.stride,
        )
        augmented = model.upl.sample(
            model.teacher(batch.images),
            batch.pair_uv,
            batch.pair_image,
            (24, 32),
            stride=model.teacher.stride,
        )
    torch.testing.assert_close(got, expected, rtol=0, atol=5e-3)
    assert (got - augmented).abs().max() > 0.05


def test_cli_refuses_a_stale_cache_with_exit_2(tmp_path, frames, capsys):
    from ppkt.cli import main

    cache = write_cache(tmp_path / "cache", frames[:1], stage="stride16")
    argv = ["pretrain", "--preset", "demo", "--run.out", str(tmp_path / "run"), "--run.progress", "false"]
    argv += ["--data.image_hw", "24,32", "--teacher.stage", "stride8", "--teacher.cache", str(cache.root)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "teacher_identity" in err and str(cache.root) in err


def test_training_image_is_the_cache_preparation(frames):
    """Samples and the cache prepare images with one function: without 2D augmentation a sample's
    image is bit-for-bit the image the cache feeds the teacher (resize from 48x64 included)."""
    import numpy as np

    from ppkt.data.images import prepare_image
    from ppkt.train.samples import FrameSkipped, rgbd_sample

    cfg = tiny_config("unused", **NO_2D_AUGMENT)
    for frame in frames[:2]:
        sample = rgbd_sample(frame, cfg.data, cfg.augment, "rgb", np.random.default_rng(0))
        expected = prepare_image(frame.color, tuple(cfg.data.image_hw))
        assert expected.shape == (3, 24, 32)
        assert torch.equal(sample.images[0], expected)
    with pytest.raises(ValueError, match=r"uint8, got \(48, 64, 3\) float32"):
        prepare_image(frames[0].color.astype(np.float32), (24, 32))
    bad = make_frame(48, 64, seed=0)
    bad.color = bad.color.astype(np.uint16)
    with pytest.raises(FrameSkipped, match="uint16"):
        rgbd_sample(bad, cfg.data, cfg.augment, "rgb", np.random.default_rng(0))

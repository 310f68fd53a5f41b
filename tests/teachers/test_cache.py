"""The teacher feature cache: round trip, staleness, atomic writes, DataLoader workers."""

import numpy as np
import pytest
import torch

from ppkt.data.images import prepare_image
from ppkt.data.types import RGBDFrame
from ppkt.teachers import (
    StaleCacheError,
    TeacherFeatureCache,
    build_teacher,
    cache_teacher_features,
)


def _frame(scene: str, index: int, hw=(48, 64)) -> RGBDFrame:
    rng = np.random.default_rng(index)
    return RGBDFrame(
        color=rng.integers(0, 256, (*hw, 3), dtype=np.uint8),
        depth=np.ones(hw, np.float32),
        K_color=np.eye(3),
        K_depth=np.eye(3),
        world_from_camera=np.eye(4),
        scene_id=scene,
        frame_id=f"{index:06d}",
    )


def test_put_get_round_trip_in_float16(tmp_path):
    cache = TeacherFeatureCache(tmp_path, "t/last/abc", (48, 64))
    features = torch.randn(16, 2, 3)
    assert cache.get("scene0000_00", "000000") is None
    cache.put("scene0000_00", "000000", features)
    got = cache.get("scene0000_00", "000000")
    assert got.dtype == torch.float16 and got.shape == (16, 2, 3)
    torch.testing.assert_close(got.float(), features, atol=2e-3, rtol=1e-3)
    assert ("scene0000_00", "000000") in cache
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("identity,hw,what", [("other/last/abc", (48, 64), "teacher_identity"),
                                              ("t/last/abc", (96, 128), "image_hw")])  # fmt: skip
def test_stale_cache_is_refused(tmp_path, identity, hw, what):
    TeacherFeatureCache(tmp_path, "t/last/abc", (48, 64))
    with pytest.raises(StaleCacheError, match=what):
        TeacherFeatureCache(tmp_path, identity, hw)


def test_file_of_another_teacher_is_refused(tmp_path):
    TeacherFeatureCache(tmp_path / "a", "a/x/1", (8, 8)).put("s", "f", torch.zeros(1, 1, 1))
    (tmp_path / "b" / "s").mkdir(parents=True)
    (tmp_path / "a" / "s" / "f.safetensors").rename(tmp_path / "b" / "s" / "f.safetensors")
    with pytest.raises(StaleCacheError, match="a/x/1"):
        TeacherFeatureCache(tmp_path / "b", "b/x/1", (8, 8)).get("s", "f")


def test_bad_names_and_values_are_refused(tmp_path):
    cache = TeacherFeatureCache(tmp_path, "t", (8, 8))
    with pytest.raises(ValueError, match="file name"):
        cache.put("../escape", "f", torch.zeros(1, 1, 1))
    with pytest.raises(ValueError, match="non-finite"):
        cache.put("s", "f", torch.full((1, 1, 1), float("nan")))


def test_cache_teacher_features_matches_the_teacher_and_skips_cached_frames(tmp_path):
    teacher = build_teacher("efficientnet_lite0", stage="stride16")
    frames = [_frame("scene0000_00", i) for i in range(3)] + [_frame("scene0001_00", 7)]
    cache = TeacherFeatureCache(tmp_path, teacher.identity, (32, 48))
    stats = cache_teacher_features(frames, teacher, cache, batch_size=3, progress=False)
    assert (stats.written, stats.already_cached) == (4, 0)
    expected = teacher(prepare_image(frames[3].color, (32, 48))[None])[0]
    got = cache.get("scene0001_00", "000007")
    assert got.shape == (112, 2, 3)
    torch.testing.assert_close(got.float(), expected, atol=1e-2, rtol=1e-2)
    again = cache_teacher_features(frames, teacher, cache, progress=False)
    assert (again.written, again.already_cached) == (0, 4)
    other = build_teacher("efficientnet_lite0", stage="stride8")
    with pytest.raises(StaleCacheError):
        cache_teacher_features(frames, other, cache, progress=False)


def test_prepare_image_resizes_to_unit_range():
    image = prepare_image(np.full((10, 20, 3), 255, np.uint8), (5, 10))
    assert image.shape == (3, 5, 10) and image.dtype == torch.float32
    torch.testing.assert_close(image, torch.ones(3, 5, 10))


class _CachedDataset(torch.utils.data.Dataset):
    def __init__(self, root):
        self.root = root

    def __len__(self):
        return 6

    def __getitem__(self, index):
        cache = TeacherFeatureCache(self.root, "t/last/abc", (8, 8))
        return cache.get("scene", f"{index:06d}")


def test_dataloader_workers_read_the_cache(tmp_path):
    cache = TeacherFeatureCache(tmp_path, "t/last/abc", (8, 8))
    for i in range(6):
        cache.put("scene", f"{i:06d}", torch.full((2, 1, 1), float(i)))
    loader = torch.utils.data.DataLoader(_CachedDataset(tmp_path), batch_size=2, num_workers=2)
    values = torch.cat([batch[:, 0, 0, 0] for batch in loader])
    assert values.tolist() == [0, 1, 2, 3, 4, 5]

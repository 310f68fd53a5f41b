import pytest
import torch

from ppkt.data.superpixels import (
    SuperpixelCache,
    Superpixels,
    method_identity,
    slic_superpixels,
    superpixels_at,
)


def two_colour_image(h=24, w=32):
    image = torch.zeros(3, h, w)
    image[0, :, : w // 2] = 1.0  # red left half
    image[2, :, w // 2 :] = 1.0  # blue right half
    return image


def test_segments_respect_a_colour_edge_and_cover_the_image():
    labels = slic_superpixels(two_colour_image(), 12)
    assert labels.shape == (24, 32) and labels.dtype == torch.long
    left, right = set(labels[:, :16].unique().tolist()), set(labels[:, 16:].unique().tolist())
    assert not (left & right)
    assert sorted(left | right) == list(range(len(left | right)))  # contiguous, none empty
    assert 6 <= len(left | right) <= 16


def test_deterministic_and_about_the_requested_count():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 48, 64, generator=g)
    a, b = slic_superpixels(image, 50), slic_superpixels(image.clone(), 50)
    assert torch.equal(a, b)
    assert 35 <= int(a.max()) + 1 <= 60


def test_uniform_image_gives_the_grid():
    labels = slic_superpixels(torch.full((3, 20, 20), 0.5), 4)
    # 2x2 grid of 10x10 squares
    assert torch.equal(labels[:10, :10], torch.full((10, 10), int(labels[0, 0])))
    assert len(set(labels[::10, ::10].flatten().tolist())) == 4


def test_close_to_scikit_image_on_a_piecewise_image():
    skimage = pytest.importorskip("skimage.segmentation")
    image = torch.zeros(3, 40, 40)
    image[:, :20, :20] = torch.tensor([1.0, 0, 0])[:, None, None]
    image[:, 20:, :] = torch.tensor([0, 1.0, 0])[:, None, None]
    ours = slic_superpixels(image, 16)
    theirs = torch.from_numpy(skimage.slic(image.permute(1, 2, 0).numpy(), n_segments=16, start_label=0))
    # both respect the three colour regions: no segment straddles them
    regions = torch.zeros(40, 40, dtype=torch.long)
    regions[:20, 20:] = 1
    regions[20:, :] = 2
    for labels in (ours, theirs):
        for label in labels.unique().tolist():
            assert regions[labels == label].unique().numel() == 1


def test_superpixels_at_pixel_centres():
    labels = torch.arange(12).reshape(3, 4)
    uv = torch.tensor([[0.0, 0.0], [3.0, 2.0], [1.4, 0.6], [-0.5, 2.4]])
    assert superpixels_at(labels, uv).tolist() == [0, 11, 5, 8]


def test_cache_round_trip_and_stale_settings(tmp_path):
    image = two_colour_image()
    source = Superpixels(12, tmp_path / "sp")
    first = source.labels(image, "scene0000_00", "000010", (24, 32))
    stored = tmp_path / "sp" / "scene0000_00" / "000010.safetensors"
    assert stored.is_file()
    cache = SuperpixelCache(tmp_path / "sp", method_identity(12), (24, 32))
    assert torch.equal(cache.get("scene0000_00", "000010"), first)
    # a cached map is returned as stored, not recomputed
    cache.put("scene0000_00", "000011", torch.zeros(24, 32, dtype=torch.long))
    assert source.labels(image, "scene0000_00", "000011", (24, 32)).abs().sum() == 0
    assert cache.get("scene0000_00", "missing") is None
    with pytest.raises(ValueError, match="other settings"):
        SuperpixelCache(tmp_path / "sp", method_identity(30), (24, 32))
    with pytest.raises(ValueError, match="cache file name"):
        cache.path("../x", "1")
    with pytest.raises(ValueError, match="image_hw|cache is"):
        cache.put("s", "f", torch.zeros(5, 5))
    assert not list((tmp_path / "sp").rglob("*.tmp"))


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        slic_superpixels(torch.zeros(24, 32), 4)
    with pytest.raises(ValueError, match="num_segments"):
        slic_superpixels(torch.zeros(3, 4, 4), 0)

"""augment_image's pixel remap: the numba loop gives the torch path's bits and draws the same
random numbers (``ppkt.utils.compiled``)."""

import numpy as np
import pytest
import torch

from ppkt.augment.config import AugmentConfig
from ppkt.augment.image import augment_image
from ppkt.utils.compiled import compiled_kernels

pytest.importorskip("numba")
from ppkt.augment import _kernels  # noqa: E402  (imports numba)


def run(enabled: bool, image, uv, cfg, out_hw, seed):
    rng = np.random.default_rng(seed)
    with compiled_kernels(enabled):
        result = augment_image(image, uv, cfg, out_hw, rng)
    return result, rng.random()  # the next draw: both paths consumed the same numbers


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_bits_and_same_draws(dtype):
    g = torch.Generator().manual_seed(0)
    H, W = 60, 80
    image = torch.rand(3, H, W, generator=g)
    uv = torch.rand(3000, 2, generator=g, dtype=dtype) * torch.tensor([W, H], dtype=dtype) - 0.5
    edges = torch.tensor([[-0.5, -0.5], [W - 0.5, 0.0], [W - 0.50001, H - 0.50001], [0.0, float("nan")]])
    uv = torch.cat([uv, edges.to(dtype)])
    for cfg in (AugmentConfig(), AugmentConfig(hflip=0.0), AugmentConfig(hflip=1.0, crop_scale_min=0.3)):
        for seed in range(6):
            for out_hw in ((24, 32), (60, 80), (7, 5)):
                (a, next_a), (b, next_b) = (run(e, image, uv, cfg, out_hw, seed) for e in (False, True))
                assert next_a == next_b
                for x, y in zip(a, b, strict=True):
                    assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)


def test_compiled_path_is_taken(monkeypatch):
    calls = []
    original = _kernels.crop_resize_uv
    monkeypatch.setattr(_kernels, "crop_resize_uv", lambda *a: calls.append(1) or original(*a))
    uv = torch.rand(10, 2) * 10
    run(True, torch.rand(3, 12, 12), uv, AugmentConfig(), (6, 6), 0)
    run(False, torch.rand(3, 12, 12), uv, AugmentConfig(), (6, 6), 0)
    run(True, torch.rand(3, 12, 12), uv.half(), AugmentConfig(), (6, 6), 0)  # float16: torch
    (_, new_uv, _), _ = run(
        True, torch.rand(3, 12, 12), uv.clone().requires_grad_(), AugmentConfig(), (6, 6), 0
    )
    assert new_uv.requires_grad  # a uv with a gradient keeps it: torch
    assert calls == [1]


def test_float32_rounding_at_the_far_edge_drops_the_pair_on_both_paths():
    # Full-image crop, no flip: u' = (u + 0.5) * 32 / 80 - 0.5. For u = 79.5 - 1e-7 that is
    # 31.5 - 4e-8 in float64, which rounds to 31.5 in float32: outside a 32-wide image.
    cfg = AugmentConfig(hflip=0.0, crop_scale_min=1.0)
    uv = torch.tensor([[79.5 - 1e-7, 10.0], [40.0, 10.0]], dtype=torch.float64)
    for enabled in (False, True):
        (_, new_uv, keep), _ = run(enabled, torch.rand(3, 60, 80), uv, cfg, (24, 32), 0)
        assert keep.tolist() == [False, True] and new_uv.shape == (1, 2)

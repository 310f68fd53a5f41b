"""The UPL: sampling at pair pixels equals the full-resolution upsampled map."""

import pytest
import torch
import torch.nn.functional as F

from ppkt.teachers import UpsamplingProjection


def _all_pixels(H: int, W: int, B: int) -> tuple[torch.Tensor, torch.Tensor]:
    v, u = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    uv = torch.stack([u.reshape(-1), v.reshape(-1)], dim=1).float().repeat(B, 1)
    batch_index = torch.arange(B).repeat_interleave(H * W)
    return uv, batch_index


@pytest.mark.parametrize("stride", [None, 8])
def test_sample_equals_full_map_at_integer_pixels(stride):
    torch.manual_seed(0)
    upl = UpsamplingProjection(16, 8)
    B, H, W = 2, 30, 44  # not multiples of 8: the map (4, 6) covers 32x48 pixels
    features = torch.randn(B, 16, 4, 6)
    full = upl(features, (H, W), stride=stride)
    assert full.shape == (B, 8, H, W)
    uv, batch_index = _all_pixels(H, W, B)
    expected = full[batch_index, :, uv[:, 1].long(), uv[:, 0].long()]
    # Many pairs: projects the coarse map first; few pairs: samples first. Both must agree.
    torch.testing.assert_close(upl.sample(features, uv, batch_index, (H, W), stride=stride), expected)
    few = torch.randperm(len(uv))[:20]
    torch.testing.assert_close(
        upl.sample(features, uv[few], batch_index[few], (H, W), stride=stride), expected[few]
    )


def test_sample_matches_grid_sample_at_fractional_pixels():
    torch.manual_seed(1)
    upl = UpsamplingProjection(6, 4)
    features = torch.randn(1, 6, 5, 7)
    H, W = 40, 56
    uv = torch.rand(50, 2) * torch.tensor([W + 4.0, H + 4.0]) - 2.0  # some beyond the border
    grid = torch.stack([(2 * uv[:, 0] + 1) / W - 1, (2 * uv[:, 1] + 1) / H - 1], dim=1)
    projected = upl.proj(features)
    reference = F.grid_sample(projected, grid[None, None], mode="bilinear", padding_mode="border",
                              align_corners=False)[0, :, 0].T  # fmt: skip
    torch.testing.assert_close(upl.sample(features, uv, torch.zeros(50, dtype=torch.long), (H, W)),
                               F.normalize(reference, dim=1))  # fmt: skip


def test_cell_centre_maps_to_its_pixel_block_centre():
    # With stride 16, cell (0, 1) is computed from pixels u in [16, 32): its centre is u = 23.5.
    upl = UpsamplingProjection(1, 1)
    with torch.no_grad():
        upl.proj.weight.fill_(1.0)
        upl.proj.bias.zero_()
    features = torch.zeros(1, 1, 2, 3)
    features[0, 0, 0, 1] = 1.0
    full = upl.proj(features)
    up = F.interpolate(full, size=(32, 48), mode="bilinear", align_corners=False)[0, 0, 8]
    assert up.argmax() in (23, 24) and torch.isclose(up[23], up[24])


def test_unit_norm_and_gradients_reach_the_projection_only():
    upl = UpsamplingProjection(12)
    assert upl.out_channels == 128
    features = torch.randn(3, 12, 4, 5)
    uv = torch.rand(100, 2) * 60
    batch_index = torch.randint(0, 3, (100,))
    out = upl.sample(features, uv, batch_index, (64, 80))
    assert out.shape == (100, 128)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(100))
    out.sum().backward()
    assert upl.proj.weight.grad is not None and upl.proj.weight.grad.abs().sum() > 0


def test_empty_pairs():
    upl = UpsamplingProjection(4, 3)
    out = upl.sample(torch.randn(1, 4, 2, 2), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), (8, 8))
    assert out.shape == (0, 3)

import hashlib

import pytest
import torch

from ppkt.backbones import (
    BACKBONES,
    INPUT_FEATURE_CHANNELS,
    ProjectionHead,
    SegmentationHead,
    build_backbone,
    input_features,
)
from ppkt.sparse import SparseTensor, set_backend, spconv_available


def _room(seed: int, n: int = 1500, batches: int = 1) -> torch.Tensor:
    """Voxels on a floor and two walls (a surface, like real scans), plus noise voxels."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, 24, (n, 2), generator=g)
    which = torch.randint(0, 3, (n,), generator=g)
    zero = torch.zeros(n, dtype=torch.long)
    xyz = torch.where(
        (which == 0)[:, None],
        torch.stack([u[:, 0], u[:, 1], zero], 1),
        torch.where(
            (which == 1)[:, None],
            torch.stack([zero, u[:, 0], u[:, 1]], 1),
            torch.stack([u[:, 0], zero, u[:, 1]], 1),
        ),
    )
    b = torch.randint(0, batches, (n, 1), generator=g)
    return torch.unique(torch.cat([b, xyz], 1), dim=0)


def _state_signature(module: torch.nn.Module) -> str:
    desc = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in module.state_dict().items())
    return hashlib.sha256(desc.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_forward_backward_on_input_sites(name):
    torch.manual_seed(0)
    net = build_backbone(name, 3, width=0.25)
    coords = _room(0, batches=2)
    x = SparseTensor(coords, torch.randn(len(coords), 3, requires_grad=True))
    y = net(x)
    assert net.out_channels == 24
    assert y.feats.shape == (len(coords), 24) and y.coords is coords and y.stride == 1
    y.feats.square().mean().backward()
    assert x.feats.grad is not None and torch.isfinite(x.feats.grad).all()
    assert all(p.grad is not None for p in net.parameters())


def test_state_dict_keys_are_pinned():
    net = build_backbone("res16unet14", 3)
    keys = list(net.state_dict())
    assert len(keys) == 192
    assert keys[:3] == ["conv0p1s1.weight", "bn0.weight", "bn0.bias"]
    assert keys[-1] == "block8.0.downsample.1.num_batches_tracked"
    assert _state_signature(net) == "b02f7e9b017fac0e"
    # Res16UNet34C of MinkowskiEngine / PointContrast (the paper's SR-UNet34) has 37.85 M parameters.
    assert sum(p.numel() for p in build_backbone("res16unet34", 3).parameters()) == 37_854_112


def test_translation_by_coarsest_stride_commutes():
    torch.manual_seed(0)
    net = build_backbone("res16unet14", 3, width=0.25).eval()
    coords = _room(1)
    feats = torch.randn(len(coords), 3)
    shift = torch.tensor([0, 16 * 3, -16 * 5, 16])
    with torch.no_grad():
        a = net(SparseTensor(coords, feats)).feats
        b = net(SparseTensor(coords + shift, feats)).feats
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_one_point_inputs(training, n):
    net = build_backbone("res16unet14", 1, width=0.25).train(training)
    coords = torch.tensor([[0, -7, 3, 12]] * n, dtype=torch.long).reshape(n, 4)
    y = net(SparseTensor(coords, torch.ones(n, 1)))
    assert y.feats.shape == (n, net.out_channels)
    assert torch.isfinite(y.feats).all()


def test_deterministic_two_runs():
    torch.manual_seed(0)
    net = build_backbone("res16unet14", 3, width=0.25)
    coords = _room(2, batches=2)
    feats = torch.randn(len(coords), 3)
    runs = []
    for _ in range(2):
        net.zero_grad()
        y = net(SparseTensor(coords, feats)).feats
        y.square().sum().backward()
        runs.append((y.detach(), net.conv0p1s1.weight.grad.clone()))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


@pytest.mark.skipif(not spconv_available(), reason="spconv not installed")
def test_checkpoint_moves_between_backends():
    torch.manual_seed(0)
    net = build_backbone("res16unet14", 3, width=0.25).eval()
    other = build_backbone("res16unet14", 3, width=0.25, backend="spconv").eval()
    other.load_state_dict(net.state_dict(), strict=True)
    coords = _room(3)
    feats = torch.randn(len(coords), 3)
    with torch.no_grad():
        a = net(SparseTensor(coords, feats)).feats
        b = other(SparseTensor(coords, feats)).feats
        c = set_backend(other, "torch")(SparseTensor(coords, feats)).feats
    assert float((a - b).norm() / a.norm()) < 1e-4
    assert torch.equal(a, c)


def test_width_and_unknown_names():
    assert build_backbone("res16unet18", 6, width=2.0).out_channels == 192
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("minkunet1000", 3)
    with pytest.raises(ValueError, match="expects 3 input channels"):
        build_backbone("res16unet14", 3, width=0.25)(SparseTensor(_room(4), torch.zeros(len(_room(4)), 4)))


def test_heads_and_input_features():
    feats = torch.randn(10, 96)
    assert ProjectionHead(96, 128)(feats).shape == (10, 128)
    assert SegmentationHead(96, 20)(feats).shape == (10, 20)
    points = torch.rand(10, 3) + 100.0
    colors = torch.randint(0, 256, (10, 3), dtype=torch.uint8)
    for kind, channels in INPUT_FEATURE_CHANNELS.items():
        assert input_features(kind, points, colors).shape == (10, channels)
    rgb = input_features("rgb", points, colors)
    assert rgb.min() >= -0.5 and rgb.max() <= 0.5
    torch.testing.assert_close(rgb, colors.float() / 255 - 0.5)
    torch.testing.assert_close(input_features("rgb", points, colors.float() / 255), rgb)
    xyz = input_features("xyzrgb", points, colors)[:, :3]
    torch.testing.assert_close(xyz.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs colors"):
        input_features("rgb", points, None)
    with pytest.raises(ValueError, match="unknown input feature kind"):
        input_features("normals", points, colors)

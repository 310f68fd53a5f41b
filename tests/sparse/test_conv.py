"""Sparse convolutions against dense F.conv3d / F.conv_transpose3d on small grids."""

import pytest
import torch
import torch.nn.functional as F

from ppkt.sparse import (
    BatchNorm,
    DownConv3d,
    SparseTensor,
    SubmanifoldConv3d,
    UpConv3d,
    functional,
    sparse_conv,
)
from ppkt.sparse.kernel_map import kernel_offsets

G = 6  # dense grid edge


@pytest.fixture(params=["offsets", "table"], autouse=True)
def conv_algorithm(request):
    """Every test here runs with both algorithms of the torch backend (the CPU default and the
    one "auto" picks for small layers on a GPU), so each is checked against dense convolutions
    and gradcheck."""
    functional.set_conv_algorithm(request.param)
    yield request.param
    functional.set_conv_algorithm(None)


def _dense_to_sparse_weight(dense_weight: torch.Tensor) -> torch.Tensor:
    """F.conv3d weight (C_out, C_in, n, n, n) -> ppkt (K, C_in, C_out)."""
    c_out, c_in = dense_weight.shape[:2]
    return dense_weight.reshape(c_out, c_in, -1).permute(2, 1, 0).contiguous()


def _random_sites(occupancy: float, seed: int, grid: int = G, origin=(0, 0, 0)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    occupied = torch.rand(grid, grid, grid, generator=g) < occupancy
    xyz = occupied.nonzero() + torch.tensor(origin)
    return torch.cat([torch.zeros(len(xyz), 1, dtype=torch.long), xyz], dim=1)


def _densify(coords: torch.Tensor, feats: torch.Tensor, origin, grid: int, stride: int = 1) -> torch.Tensor:
    dense = feats.new_zeros(1, feats.shape[1], grid, grid, grid)
    local = torch.div(coords[:, 1:] - torch.tensor(origin), stride, rounding_mode="floor")
    dense[0, :, local[:, 0], local[:, 1], local[:, 2]] = feats.t()
    return dense


def _at_sites(dense: torch.Tensor, coords: torch.Tensor, origin, stride: int = 1) -> torch.Tensor:
    local = torch.div(coords[:, 1:] - torch.tensor(origin), stride, rounding_mode="floor")
    return dense[0, :, local[:, 0], local[:, 1], local[:, 2]].t()


@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("occupancy", [1.0, 0.4])
def test_submanifold_equals_dense_conv_at_occupied_sites(kernel_size, occupancy):
    torch.manual_seed(0)
    origin = (-3, 2, -1)
    coords = _random_sites(occupancy, seed=1, origin=origin)
    feats = torch.randn(len(coords), 4, dtype=torch.float64)
    conv = SubmanifoldConv3d(4, 5, kernel_size).double()
    out = conv(SparseTensor(coords, feats)).feats
    dense_w = _dense_to_sparse_weight_inverse(conv.weight, kernel_size)
    dense_out = F.conv3d(_densify(coords, feats, origin, G), dense_w, padding=kernel_size // 2)
    torch.testing.assert_close(out, _at_sites(dense_out, coords, origin), rtol=1e-10, atol=1e-10)


def _dense_to_sparse_weight_inverse(weight: torch.Tensor, n: int) -> torch.Tensor:
    """ppkt (K, C_in, C_out) -> F.conv3d weight (C_out, C_in, n, n, n)."""
    k, c_in, c_out = weight.shape
    return weight.detach().permute(2, 1, 0).reshape(c_out, c_in, n, n, n)


def test_weight_layout_round_trip():
    w = torch.randn(5, 4, 3, 3, 3)
    assert torch.equal(_dense_to_sparse_weight_inverse(_dense_to_sparse_weight(w), 3), w)
    offsets = kernel_offsets(3)
    assert offsets.shape == (27, 3)
    assert offsets[1].tolist() == [-1, -1, 0] and offsets[9].tolist() == [0, -1, -1]  # x slowest


@pytest.mark.parametrize("occupancy", [1.0, 0.3])
def test_strided_conv_equals_dense_stride2(occupancy):
    torch.manual_seed(0)
    origin = (-4, 0, 2)  # even origin: coarse cells align with the dense stride-2 grid
    coords = _random_sites(occupancy, seed=2, origin=origin)
    feats = torch.randn(len(coords), 3, dtype=torch.float64)
    conv = DownConv3d(3, 4).double()
    out = conv(SparseTensor(coords, feats))
    assert out.stride == 2
    expected_sites = torch.unique(
        torch.cat([coords[:, :1], torch.div(coords[:, 1:], 2, rounding_mode="floor") * 2], 1), dim=0
    )
    assert torch.equal(out.coords, expected_sites)
    dense_out = F.conv3d(
        _densify(coords, feats, origin, G), _dense_to_sparse_weight_inverse(conv.weight, 2), stride=2
    )
    torch.testing.assert_close(out.feats, _at_sites(dense_out, out.coords, origin, 2), rtol=1e-10, atol=1e-10)


def test_transposed_conv_equals_dense_transposed_on_fine_sites():
    torch.manual_seed(0)
    origin = (0, -6, 4)
    coords = _random_sites(0.3, seed=3, origin=origin)
    x = SparseTensor(coords, torch.randn(len(coords), 3, dtype=torch.float64))
    coarse = DownConv3d(3, 4).double()(x)
    coarse_feats = torch.randn(coarse.num_sites, 4, dtype=torch.float64)
    coarse = coarse.replace_feats(coarse_feats)
    up = UpConv3d(4, 2).double()
    out = up(coarse)
    assert out.stride == 1 and out.coords is coords
    # conv_transpose3d weight is (C_in, C_out, n, n, n); ppkt weight[k] is (C_in, C_out).
    dense_w = up.weight.detach().permute(1, 2, 0).reshape(4, 2, 2, 2, 2)
    dense_in = _densify(coarse.coords, coarse_feats, origin, G // 2, stride=2)
    dense_out = F.conv_transpose3d(dense_in, dense_w, stride=2)
    torch.testing.assert_close(out.feats, _at_sites(dense_out, coords, origin), rtol=1e-10, atol=1e-10)


def test_kernel_maps_are_built_once_per_level():
    coords = _random_sites(0.5, seed=4)
    x = SparseTensor(coords, torch.randn(len(coords), 2))
    a, b = SubmanifoldConv3d(2, 2), SubmanifoldConv3d(2, 2)
    y = b(a(x))
    assert y.cache is x.cache
    assert x.cache.submanifold(1, 3) is x.cache.submanifold(1, 3)
    assert x.cache.downsampling(1) is x.cache.downsampling(1)


def test_batches_do_not_mix():
    coords = _random_sites(0.5, seed=5)
    other = coords.clone()
    other[:, 0] = 1
    both = torch.cat([coords, other])
    feats = torch.randn(len(coords), 3, dtype=torch.float64)
    conv = SubmanifoldConv3d(3, 2).double()
    single = conv(SparseTensor(coords, feats)).feats
    double = conv(SparseTensor(both, torch.cat([feats, 2 * feats]))).feats
    torch.testing.assert_close(double[: len(coords)], single)
    torch.testing.assert_close(double[len(coords) :], 2 * single)


@pytest.mark.parametrize("layer", ["sub3", "sub5", "down", "up"])
def test_gradcheck(layer):
    torch.manual_seed(0)
    coords = _random_sites(0.5, seed=6, grid=3)
    x = SparseTensor(coords, torch.randn(len(coords), 2, dtype=torch.float64))
    if layer == "up":
        coarse = x.cache.downsampling(1)
        kernel_map = coarse.kernel_map.transposed()
        feats = torch.randn(kernel_map.num_in, 2, dtype=torch.float64, requires_grad=True)
        k = 8
    else:
        kernel_map = x.cache.downsampling(1).kernel_map if layer == "down" else None
        if kernel_map is None:
            kernel_map = x.cache.submanifold(1, 3 if layer == "sub3" else 5)
        feats = x.feats.clone().requires_grad_(True)
        k = kernel_map.kernel_volume
    weight = torch.randn(k, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, w: sparse_conv(f, w, kernel_map), (feats, weight))


def test_empty_and_single_site():
    for n in (0, 1):
        coords = torch.tensor([[0, 3, -2, 5]] * n, dtype=torch.long).reshape(n, 4)
        x = SparseTensor(coords, torch.randn(n, 2, requires_grad=True))
        y = UpConv3d(3, 2)(DownConv3d(4, 3)(SubmanifoldConv3d(2, 4)(x)))
        assert y.feats.shape == (n, 2)
        y.feats.sum().backward()
        assert x.feats.grad is None or x.feats.grad.shape == (n, 2)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="coords must be"):
        SparseTensor(torch.zeros(3, 3, dtype=torch.long), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="voxel coordinates must lie"):
        SparseTensor(torch.tensor([[0, 1 << 20, 0, 0]]), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="unique rows"):
        SubmanifoldConv3d(1, 1)(SparseTensor(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 1)))
    with pytest.raises(ValueError, match="unknown sparse backend"):
        SubmanifoldConv3d(1, 1, backend="minkowski")


def test_deterministic():
    coords = _random_sites(0.6, seed=7, grid=10)
    feats = torch.randn(len(coords), 8, requires_grad=True)
    conv = SubmanifoldConv3d(8, 8)
    grads, outs = [], []
    for _ in range(2):
        out = conv(SparseTensor(coords, feats)).feats
        (g,) = torch.autograd.grad(out.square().sum(), feats)
        outs.append(out)
        grads.append(g)
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])


def test_cpu_thread_setting_keeps_results_and_restores_threads():
    from ppkt.sparse import set_cpu_threads

    coords = _random_sites(0.6, seed=8, grid=10)
    feats = torch.randn(len(coords), 8, requires_grad=True)
    conv = SubmanifoldConv3d(8, 8)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, None):
            set_cpu_threads(threads)
            out = conv(SparseTensor(coords, feats)).feats
            (g,) = torch.autograd.grad(out.square().sum(), feats)
            results.append((out, g))
            assert torch.get_num_threads() == before
    finally:
        set_cpu_threads(1)
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    with pytest.raises(ValueError, match="threads must be"):
        set_cpu_threads(0)


def test_single_site_batchnorm_keeps_its_weight_in_the_graph():
    """One site normalises to the bias; the weight still gets its exact gradient (0), not None:
    a parameter outside the graph stops DDP without find_unused_parameters at the next step."""
    bn = BatchNorm(3).train()
    with torch.no_grad():
        bn.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = SparseTensor(torch.tensor([[0, 1, 2, 3]]), torch.randn(1, 3, requires_grad=True))
    y = bn(x).feats
    assert torch.equal(y.detach(), bn.bias.detach()[None])
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert bn.weight.grad is not None and torch.equal(bn.weight.grad, torch.zeros(3))
    assert torch.equal(bn.bias.grad, torch.tensor([1.0, 2.0, 3.0]))


def test_algorithms_agree_in_float64_and_tables_are_chunked(monkeypatch):
    coords = _random_sites(0.5, seed=11, grid=12)
    x = SparseTensor(coords, torch.randn(len(coords), 5, dtype=torch.float64))
    maps = {
        "sub3": x.cache.submanifold(1, 3),
        "sub5": x.cache.submanifold(1, 5),
        "down": x.cache.downsampling(1).kernel_map,
        "up": x.cache.downsampling(1).kernel_map.transposed(),
    }
    for name, kernel_map in maps.items():
        feats = torch.randn(kernel_map.num_in, 5, dtype=torch.float64)
        weight = torch.randn(kernel_map.kernel_volume, 5, 4, dtype=torch.float64)
        grad_out = torch.randn(kernel_map.num_out, 4, dtype=torch.float64)
        reference = functional.conv_forward_torch(feats, weight, kernel_map)
        reference_grads = functional.conv_backward_torch(feats, weight, grad_out, kernel_map)
        for block in (2**27, 7 * kernel_map.kernel_volume * 5):  # one block; chunks of a few rows
            monkeypatch.setattr(functional, "_TABLE_BLOCK", block)
            out = functional.conv_forward_table(feats, weight, kernel_map)
            grads = functional.conv_backward_table(feats, weight, grad_out, kernel_map)
            torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12, msg=name)
            for a, b in zip(grads, reference_grads, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)


def test_algorithm_by_device_environment_and_bad_name(monkeypatch):
    functional.set_conv_algorithm(None)
    monkeypatch.delenv("PPKT_CONV_ALGORITHM", raising=False)
    assert functional.conv_algorithm(torch.device("cpu")) == "offsets"
    assert functional.conv_algorithm(torch.device("cuda")) == "auto"
    monkeypatch.setenv("PPKT_CONV_ALGORITHM", "table")
    assert functional.conv_algorithm(torch.device("cpu")) == "table"
    functional.set_conv_algorithm("offsets")  # the call wins over the environment
    assert functional.conv_algorithm(torch.device("cpu")) == "offsets"
    functional.set_conv_algorithm(None)
    monkeypatch.setenv("PPKT_CONV_ALGORITHM", "implicit-gemm")
    with pytest.raises(ValueError, match="PPKT_CONV_ALGORITHM must be one of"):
        functional.conv_algorithm(torch.device("cpu"))
    with pytest.raises(ValueError, match="conv algorithm"):
        functional.set_conv_algorithm("implicit-gemm")


def test_auto_takes_the_table_for_small_layers_only(monkeypatch):
    calls = []
    original = functional.conv_forward_table
    monkeypatch.setattr(
        functional, "conv_forward_table", lambda *a: calls.append(a[2].num_out) or original(*a)
    )
    coords = _random_sites(0.5, seed=3, grid=8)
    x = SparseTensor(coords, torch.randn(len(coords), 4))
    small, large = x.cache.downsampling(1).kernel_map, x.cache.submanifold(1, 3)
    functional.set_conv_algorithm("auto")
    # the limit between the two layers' gathered blocks (num_out * K * C_in elements)
    monkeypatch.setattr(functional, "_AUTO_TABLE_LIMIT", small.num_out * 8 * 4)
    for kernel_map in (small, large):
        feats = torch.randn(kernel_map.num_in, 4, requires_grad=True)
        weight = torch.randn(kernel_map.kernel_volume, 4, 2, requires_grad=True)
        sparse_conv(feats, weight, kernel_map).sum().backward()
    assert calls == [small.num_out]


def test_table_backward_takes_a_non_contiguous_weight():
    coords = _random_sites(0.5, seed=12, grid=6)
    kernel_map = SparseTensor(coords, torch.zeros(len(coords), 1)).cache.submanifold(1, 3)
    feats = torch.randn(kernel_map.num_in, 4, dtype=torch.float64)
    weight = torch.randn(kernel_map.kernel_volume, 3, 4, dtype=torch.float64).transpose(1, 2)
    grad_out = torch.randn(kernel_map.num_out, 3, dtype=torch.float64)
    assert not weight.is_contiguous()
    expected = functional.conv_backward_torch(feats, weight, grad_out, kernel_map)
    for a, b in zip(
        functional.conv_backward_table(feats, weight, grad_out, kernel_map), expected, strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

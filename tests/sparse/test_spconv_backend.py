"""The spconv backend must equal the torch backend (forward and gradients), or refuse clearly."""

import pytest
import torch

from ppkt.sparse import SparseTensor, functional, sparse_conv, spconv_available

needs_spconv = pytest.mark.skipif(not spconv_available(), reason="spconv not installed")


def _cloud(seed: int, n: int = 3000, extent: int = 24, batches: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randint(-extent, extent, (n, 3), generator=g)
    b = torch.randint(0, batches, (n, 1), generator=g)
    return torch.unique(torch.cat([b, xyz], 1), dim=0)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm().clamp(min=1e-12))


@needs_spconv
@pytest.mark.parametrize("algorithm", ["offsets", "table"])
@pytest.mark.parametrize("kind", ["sub3", "sub5", "down", "up"])
def test_spconv_equals_torch_forward_and_gradients(kind, algorithm):
    """With either torch algorithm (the spconv backend's backward is the torch one: the table on
    a GPU for small layers)."""
    torch.manual_seed(0)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # the multi-thread CPU bug of spconv must not leak through
    functional.set_conv_algorithm(algorithm)
    try:
        coords = _cloud(1)
        x = SparseTensor(coords, torch.randn(len(coords), 16))
        if kind == "down":
            kernel_map = x.cache.downsampling(1).kernel_map
        elif kind == "up":
            kernel_map = x.cache.downsampling(1).kernel_map.transposed()
        else:
            kernel_map = x.cache.submanifold(1, 3 if kind == "sub3" else 5)
        feats = torch.randn(kernel_map.num_in, 16, requires_grad=True)
        weight = torch.randn(kernel_map.kernel_volume, 16, 24, requires_grad=True)
        grad_out = torch.randn(kernel_map.num_out, 24)
        results = {}
        for backend in ("torch", "spconv", "spconv"):
            out = sparse_conv(feats, weight, kernel_map, backend)
            gf, gw = torch.autograd.grad(out, (feats, weight), grad_out)
            results.setdefault(backend, []).append((out, gf, gw))
        ref = results["torch"][0]
        for run in results["spconv"]:
            for a, b in zip(run, ref, strict=True):
                assert _rel(a, b) < 1e-4
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
        functional.set_conv_algorithm(None)


@needs_spconv
def test_spconv_refuses_float64_clearly():
    coords = _cloud(2, n=50)
    x = SparseTensor(coords, torch.randn(len(coords), 2, dtype=torch.float64))
    kernel_map = x.cache.submanifold(1, 3)
    with pytest.raises(TypeError, match="backend='torch'"):
        sparse_conv(x.feats, torch.randn(27, 2, 2, dtype=torch.float64), kernel_map, "spconv")


def test_missing_spconv_gives_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("spconv"):
            raise ImportError("no spconv here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    coords = _cloud(3, n=50)
    x = SparseTensor(coords, torch.randn(len(coords), 2))
    with pytest.raises(RuntimeError, match="pip install ppkt\\[spconv\\]"):
        sparse_conv(x.feats, torch.randn(27, 2, 2), x.cache.submanifold(1, 3), "spconv")

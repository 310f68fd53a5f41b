"""Guarded adapter running the gather-GEMM-scatter of spconv 2.x on ppkt kernel maps.

Only spconv's forward kernels are used, fed with ppkt's own kernel maps (so sites, offsets and
weights are identical to the torch backend by construction). The backward pass is the torch
backend's, on every device, because spconv 2.3 asserts CUDA in its backward on CPU
(spconv issue #366).

spconv 2.3 on CPU returns wrong and changing results with more than one torch thread
(spconv issue #679), so on CPU its forward runs with ``torch.set_num_threads(1)``; a test
checks forward and gradients against the torch backend on random inputs.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch

from ppkt.sparse.functional import _TorchSparseConv, _uses_table
from ppkt.sparse.kernel_map import KernelMap
from ppkt.utils.threads import torch_threads

_LOCK = threading.Lock()


def spconv_available() -> bool:
    """True when ``spconv.pytorch`` imports."""
    try:
        import spconv.pytorch  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure (missing wheel, broken cumm) means unavailable
        return False
    return True


def _require_spconv():
    try:
        from spconv.pytorch import ops
    except Exception as error:  # noqa: BLE001
        raise RuntimeError(
            "sparse backend 'spconv' selected but spconv cannot be imported "
            f"({type(error).__name__}: {error}); install it with `pip install ppkt[spconv]` "
            "(spconv-cuXXX on GPU) or use backend='torch'"
        ) from error
    return ops


@contextmanager
def _single_thread_on_cpu(device: torch.device):
    if device.type != "cpu":
        yield
        return
    with _LOCK, torch_threads(1, device):
        yield


def _indice_pairs(kernel_map: KernelMap) -> tuple[torch.Tensor, torch.Tensor]:
    """ppkt map -> spconv's ``(2, K, max_pairs)`` int32 pair table and ``(K,)`` counts."""
    counts = kernel_map.offset_counts
    k_vol = counts.numel()
    device = kernel_map.in_index.device
    width = max(int(counts.max()) if k_vol else 0, 1)
    pairs = torch.full((2, k_vol, width), -1, dtype=torch.int32, device=device)
    if kernel_map.in_index.numel():
        counts_dev = counts.to(device)
        offset_of_pair = torch.repeat_interleave(torch.arange(k_vol, device=device), counts_dev)
        starts = torch.cumsum(counts_dev, 0) - counts_dev
        slot = torch.arange(offset_of_pair.numel(), device=device) - starts[offset_of_pair]
        pairs[0, offset_of_pair, slot] = kernel_map.in_index.to(torch.int32)
        pairs[1, offset_of_pair, slot] = kernel_map.out_index.to(torch.int32)
    return pairs, counts.to(device=device, dtype=torch.int32)


def _forward(feats: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap) -> torch.Tensor:
    ops = _require_spconv()
    k_vol, c_in, c_out = weight.shape
    n = round(k_vol ** (1 / 3))
    if n**3 != k_vol:
        raise ValueError(f"spconv backend: kernel volume {k_vol} is not a cube")
    if kernel_map.num_out == 0 or kernel_map.in_index.numel() == 0:
        return feats.new_zeros(kernel_map.num_out, c_out)
    # spconv's KRSC layout: (C_out, kx, ky, kz, C_in), same offset order as ppkt.
    filters = weight.permute(2, 0, 1).reshape(c_out, n, n, n, c_in).contiguous()
    pairs, counts = _indice_pairs(kernel_map)
    subm = kernel_map.identity_offset >= 0 and kernel_map.num_in == kernel_map.num_out
    with _single_thread_on_cpu(feats.device):
        out = ops.indice_conv(feats, filters, pairs, counts, kernel_map.num_out, False, subm)
    return out


class _SpconvSparseConv(_TorchSparseConv):
    """spconv's forward kernels; the backward is the torch backend's (spconv 2.3's CPU backward
    asserts CUDA, issue #366), inherited so that both backends share one gradient."""

    @staticmethod
    def forward(ctx, feats, weight, kernel_map):
        ctx.kernel_map = kernel_map
        ctx.save_for_backward(feats, weight)
        ctx.table = _uses_table(feats, weight, kernel_map)  # which torch backward runs
        return _forward(feats, weight.detach(), kernel_map)


def spconv_conv(feats: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap) -> torch.Tensor:
    """Sparse convolution with spconv's forward kernels; see the module docstring for guards."""
    if feats.dtype not in (torch.float32, torch.float16) or weight.dtype != feats.dtype:
        raise TypeError(
            f"spconv backend supports float32/float16 features and weights, "
            f"got {feats.dtype}/{weight.dtype}; "
            "use backend='torch' for other dtypes"
        )
    return _SpconvSparseConv.apply(feats, weight, kernel_map)

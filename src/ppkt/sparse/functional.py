"""Sparse convolution on a kernel map: gather, matmul, scatter-add per kernel offset.

One weight layout for every backend: ``weight (K, C_in, C_out)`` with the kernel-offset order
of :mod:`ppkt.sparse.kernel_map`. The backward pass is written out (not left to autograd) so
that no gathered ``(pairs, C)`` copies are kept alive between forward and backward: only the
input features and the integer map are saved.
"""

from __future__ import annotations

import os

import torch
from torch.autograd.function import once_differentiable

from ppkt.sparse.kernel_map import KernelMap
from ppkt.utils.threads import torch_threads

BACKENDS = ("torch", "spconv")

# Intra-op threads for the CPU convolution loops (None: leave torch's setting). A convolution is
# thousands of small gathers, matmuls and scatters; with 2 threads on a shared 2-core machine
# res16unet18 (10k voxels) took 16-18 s forward+backward against 2.6-3.0 s on one thread,
# because every parallel region waits for a descheduled thread. Raise it on a dedicated CPU.
_CPU_CONV_THREADS: int | None = 1


def set_cpu_threads(threads: int | None) -> None:
    """Threads used by the torch backend's CPU convolutions (default 1; None = torch's setting)."""
    global _CPU_CONV_THREADS
    if threads is not None and threads < 1:
        raise ValueError(f"set_cpu_threads: threads must be >= 1 or None, got {threads}")
    _CPU_CONV_THREADS = threads


# How the torch backend convolves (see conv_forward_table): None = by device, the per-offset loop
# on the CPU (faster there, and the exact reference) and "auto" elsewhere: a GPU spends a per-offset
# loop's time launching its ~200 small kernels per layer, which one gather and one matrix product
# through the map's dense table avoid, until the padded gather outgrows the launches it saves.
CONV_ALGORITHMS = ("offsets", "table", "auto")
_CONV_ALGORITHM: str | None = None

# "auto" takes the table for a layer whose gathered (num_out, K * C_in) block has at most 2^26
# elements (256 MiB in float32), the per-offset loop above it: there the padded gather costs more
# memory traffic than the launches it saves. Calibrated on an H200 (docs/backbones.md): with 2^26,
# auto ran paper pretraining steps (batch 24) 1.13x and fine-tuning steps (batch 8) 1.19-1.26x
# faster than the loop; with 2^28, fine-tuning ran 0.89-0.98x.
_AUTO_TABLE_LIMIT = 2**26

# Elements of one gathered (rows, K * C) block of the table algorithm: 2^27 float32 = 512 MB.
# Larger layers go through in row chunks, so the temporaries stay bounded.
_TABLE_BLOCK = 2**27


def set_conv_algorithm(algorithm: str | None) -> None:
    """Pick the torch backend's algorithm: ``"offsets"`` (a gather, matrix product and
    scatter-add per kernel offset), ``"table"`` (one gather of every neighbour through the map's
    dense table and one matrix product: padded to the full kernel, about 3x the arithmetic for a
    surface, in a few launches), ``"auto"`` (the table for layers up to ``_AUTO_TABLE_LIMIT``
    gathered elements, else offsets) or None (by device: offsets on the CPU, auto elsewhere).
    The results agree to float rounding (a different order of the sums)."""
    global _CONV_ALGORITHM
    if algorithm is not None and algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"conv algorithm must be one of {CONV_ALGORITHMS} or None, got {algorithm!r}")
    _CONV_ALGORITHM = algorithm


def conv_algorithm(device: torch.device) -> str:
    """The algorithm setting the torch backend uses on ``device`` now (``"auto"`` decides per layer):
    :func:`set_conv_algorithm`'s, else the environment's ``PPKT_CONV_ALGORITHM`` (for the
    command line, e.g. ``PPKT_CONV_ALGORITHM=offsets ppkt pretrain ...``), else by device."""
    if _CONV_ALGORITHM is not None:
        return _CONV_ALGORITHM
    chosen = os.environ.get("PPKT_CONV_ALGORITHM", "")
    if chosen:
        if chosen not in CONV_ALGORITHMS:
            raise ValueError(f"PPKT_CONV_ALGORITHM must be one of {CONV_ALGORITHMS}, got {chosen!r}")
        return chosen
    return "offsets" if device.type == "cpu" else "auto"


def _uses_table(feats: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap) -> bool:
    algorithm = conv_algorithm(feats.device)
    if algorithm == "auto":
        return kernel_map.num_out * weight.shape[0] * weight.shape[1] <= _AUTO_TABLE_LIMIT
    return algorithm == "table"


def _cpu_threads(device: torch.device):
    return torch_threads(_CPU_CONV_THREADS, device)


def _index_add_rows(out: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> None:
    """``out[index] += rows`` (indices unique within one kernel offset).

    On CPU, PyTorch's multi-threaded ``index_add_`` (a column-parallel scatter) measured 7-13x
    slower than the single-threaded one for (40k, 64) rows on 2 cores, so it runs on one thread.
    """
    with torch_threads(1, out.device):
        out.index_add_(0, index, rows)


def _check(feats: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap) -> None:
    if weight.dim() != 3 or weight.shape[0] != kernel_map.kernel_volume:
        raise ValueError(
            f"sparse conv: weight must be (K={kernel_map.kernel_volume}, C_in, C_out), "
            f"got {tuple(weight.shape)}"
        )
    if feats.shape != (kernel_map.num_in, weight.shape[1]):
        raise ValueError(
            f"sparse conv: features must be ({kernel_map.num_in}, {weight.shape[1]}), "
            f"got {tuple(feats.shape)}"
        )


def conv_forward_torch(feats: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap) -> torch.Tensor:
    """``out[o] = sum over pairs (i, o, k) of feats[i] @ weight[k]``; ``(num_out, C_out)``."""
    out = feats.new_zeros(kernel_map.num_out, weight.shape[2])
    with _cpu_threads(feats.device):
        for k, in_index, out_index in kernel_map.split():
            if k == kernel_map.identity_offset:
                out.addmm_(feats, weight[k])
            else:
                _index_add_rows(out, out_index, feats.index_select(0, in_index).mm(weight[k]))
    return out


def conv_backward_torch(
    feats: torch.Tensor,
    weight: torch.Tensor,
    grad_out: torch.Tensor,
    kernel_map: KernelMap,
    need_feats_grad: bool = True,
    need_weight_grad: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of :func:`conv_forward_torch` w.r.t. features and weight."""
    grad_feats = feats.new_zeros(feats.shape) if need_feats_grad else None
    grad_weight = torch.zeros_like(weight) if need_weight_grad else None
    with _cpu_threads(feats.device):
        for k, in_index, out_index in kernel_map.split():
            if k == kernel_map.identity_offset:
                if grad_feats is not None:
                    grad_feats.addmm_(grad_out, weight[k].t())
                if grad_weight is not None:
                    torch.mm(feats.t(), grad_out, out=grad_weight[k])
                continue
            grad_rows = grad_out.index_select(0, out_index)
            if grad_feats is not None:
                _index_add_rows(grad_feats, in_index, grad_rows.mm(weight[k].t()))
            if grad_weight is not None:
                torch.mm(feats.index_select(0, in_index).t(), grad_rows, out=grad_weight[k])
    return grad_feats, grad_weight


def _table_rows(kernel_volume: int, channels: int) -> int:
    return max(1, _TABLE_BLOCK // max(1, kernel_volume * channels))


def _gathered(padded: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``(rows, K * C)``: the rows of ``padded`` named by ``table (rows, K)``, side by side."""
    return padded.index_select(0, table.reshape(-1)).reshape(table.shape[0], -1)


def conv_forward_table(feats: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap) -> torch.Tensor:
    """:func:`conv_forward_torch` as ``out = [feats[T[o, 0]], ..., feats[T[o, K-1]]] @ W`` with the
    map's dense table ``T`` (:meth:`KernelMap.neighbour_table`; missing neighbours read an appended
    zero row) and ``W = weight`` stacked to ``(K * C_in, C_out)``."""
    K, c_in, c_out = weight.shape
    out = feats.new_empty(kernel_map.num_out, c_out)
    if kernel_map.num_out == 0:
        return out
    table = kernel_map.neighbour_table(by_out=True)
    padded = torch.cat((feats, feats.new_zeros(1, c_in)))
    stacked = weight.reshape(K * c_in, c_out)
    step = _table_rows(K, c_in)
    for start in range(0, kernel_map.num_out, step):
        torch.mm(_gathered(padded, table[start : start + step]), stacked, out=out[start : start + step])
    return out


def conv_backward_table(
    feats: torch.Tensor,
    weight: torch.Tensor,
    grad_out: torch.Tensor,
    kernel_map: KernelMap,
    need_feats_grad: bool = True,
    need_weight_grad: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of :func:`conv_forward_table`. The feature gradient is the transposed
    convolution through the other table (``grad_feats[i] = sum_k grad_out[T'[i, k]] @ W[k]^T``):
    a gather and a product again, no scatter-add, so it is deterministic on a GPU."""
    K, c_in, c_out = weight.shape
    grad_feats = grad_weight = None
    if need_feats_grad:
        grad_feats = feats.new_zeros(feats.shape)
        if kernel_map.num_out > 0:
            table = kernel_map.neighbour_table(by_out=False)
            padded = torch.cat((grad_out, grad_out.new_zeros(1, c_out)))
            stacked = weight.transpose(1, 2).reshape(K * c_out, c_in)
            step = _table_rows(K, c_out)
            for start in range(0, kernel_map.num_in, step):
                rows = _gathered(padded, table[start : start + step])
                torch.mm(rows, stacked, out=grad_feats[start : start + step])
    if need_weight_grad:
        grad_weight = torch.zeros_like(weight, memory_format=torch.contiguous_format)  # viewed flat below
        if kernel_map.num_out > 0:
            table = kernel_map.neighbour_table(by_out=True)
            padded = torch.cat((feats, feats.new_zeros(1, c_in)))
            flat = grad_weight.view(K * c_in, c_out)
            step = _table_rows(K, c_in)
            for start in range(0, kernel_map.num_out, step):
                rows = _gathered(padded, table[start : start + step])
                flat.addmm_(rows.t(), grad_out[start : start + step])
    return grad_feats, grad_weight


class _TorchSparseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, weight, kernel_map):
        ctx.kernel_map = kernel_map
        ctx.save_for_backward(feats, weight)
        ctx.table = _uses_table(feats, weight, kernel_map)
        if ctx.table:
            return conv_forward_table(feats, weight, kernel_map)
        with _cpu_threads(feats.device):
            return conv_forward_torch(feats, weight, kernel_map)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        feats, weight = ctx.saved_tensors
        backward = conv_backward_table if ctx.table else conv_backward_torch
        grad_feats, grad_weight = backward(
            feats,
            weight,
            grad_out.contiguous(),
            ctx.kernel_map,
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1],
        )
        return grad_feats, grad_weight, None


def sparse_conv(
    feats: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap, backend: str = "torch"
) -> torch.Tensor:
    """Apply a sparse convolution.

    Args:
        feats: ``(kernel_map.num_in, C_in)`` input features.
        weight: ``(K, C_in, C_out)``.
        kernel_map: pairs grouped by offset (see :class:`KernelMap`).
        backend: ``"torch"`` (reference) or ``"spconv"`` (guarded adapter, see
            :mod:`ppkt.sparse.spconv_backend`).

    Returns:
        ``(kernel_map.num_out, C_out)`` output features.
    """
    _check(feats, weight, kernel_map)
    if torch.is_autocast_enabled(feats.device.type):
        # Mixed precision (run.precision): the convolution runs in the autocast dtype, with autocast
        # off inside so that its products and scatter-adds agree on one dtype.
        dtype = torch.get_autocast_dtype(feats.device.type)
        with torch.autocast(feats.device.type, enabled=False):
            return sparse_conv(feats.to(dtype), weight.to(dtype), kernel_map, backend)
    feats = feats.contiguous()
    if backend == "torch":
        return _TorchSparseConv.apply(feats, weight, kernel_map)
    if backend == "spconv":
        # local: cycle with ppkt.sparse.spconv_backend (it builds on _TorchSparseConv from here)
        from ppkt.sparse.spconv_backend import spconv_conv

        return spconv_conv(feats, weight, kernel_map)
    raise ValueError(f"unknown sparse backend {backend!r}; choose one of {BACKENDS}")

"""Sparse tensors and sparse 3D convolutions in pure PyTorch, with an optional spconv backend.

Layout: :class:`SparseTensor` holds ``coords (M, 4)`` long (batch, x, y, z) in units of the
finest voxel, ``feats (M, C)`` and a tensor ``stride``; tensors derived from one batch share a
:class:`CoordinateCache`, so each resolution level builds its kernel maps once.
"""

from ppkt.sparse.batch import SparseBatch, sparse_batch_from_points
from ppkt.sparse.functional import BACKENDS, set_cpu_threads, sparse_conv
from ppkt.sparse.kernel_map import KernelMap, kernel_offsets
from ppkt.sparse.nn import BatchNorm, DownConv3d, ReLU, SubmanifoldConv3d, UpConv3d, set_backend
from ppkt.sparse.spconv_backend import spconv_available
from ppkt.sparse.tensor import CoordinateCache, SparseTensor, cat

__all__ = [
    "BACKENDS",
    "BatchNorm",
    "CoordinateCache",
    "DownConv3d",
    "KernelMap",
    "ReLU",
    "SparseBatch",
    "SparseTensor",
    "SubmanifoldConv3d",
    "UpConv3d",
    "cat",
    "kernel_offsets",
    "set_backend",
    "set_cpu_threads",
    "sparse_batch_from_points",
    "sparse_conv",
    "spconv_available",
]

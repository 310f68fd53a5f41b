"""The one sparse batch layout of ppkt: per-sample point clouds -> one voxelised SparseTensor.

Samples are concatenated; ``point_offsets (B + 1,)`` = ``[0, n0, n0 + n1, ..., N]`` says which
points belong to sample ``b``. Points are voxelised with :func:`ppkt.geometry.voxelize`; each voxel
gets the mean of its points' features, its coordinates are ``(batch, x, y, z)`` with
``x = floor(p_x / voxel_size)``, and ``point_to_voxel`` brings per-voxel predictions back to every
original point: ``point_logits = voxel_logits[batch.point_to_voxel]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ppkt.geometry import voxelize
from ppkt.sparse.tensor import SparseTensor


@dataclass
class SparseBatch:
    """A voxelised batch of point clouds.

    Attributes:
        tensor: :class:`SparseTensor` with ``coords (M, 4)`` = (batch, x, y, z) sorted
            lexicographically, ``feats (M, C)`` = mean feature of the voxel's points.
        point_to_voxel: ``(N,)`` long, row of ``tensor`` holding each concatenated input point.
        point_offsets: ``(B + 1,)`` long cumulative point counts; sample ``b`` owns points
            ``point_offsets[b]:point_offsets[b + 1]``.
        voxel_offsets: ``(B + 1,)`` long cumulative voxel counts (voxels are sorted by batch).
        voxel_size: voxel edge in metres.
    """

    tensor: SparseTensor
    point_to_voxel: torch.Tensor
    point_offsets: torch.Tensor
    voxel_offsets: torch.Tensor
    voxel_size: float

    @property
    def batch_size(self) -> int:
        return int(self.point_offsets.numel() - 1)

    def map_tensors(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> SparseBatch:
        """The batch with ``fn`` applied to each tensor (e.g. a device move); the SparseTensor is
        new, with a new coordinate cache on the tensors' new device."""
        tensor = SparseTensor(fn(self.tensor.coords), fn(self.tensor.feats), stride=self.tensor.stride)
        return SparseBatch(
            tensor, fn(self.point_to_voxel), fn(self.point_offsets), fn(self.voxel_offsets), self.voxel_size
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SparseBatch:
        return self.map_tensors(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> SparseBatch:
        return self.map_tensors(lambda t: t.pin_memory())


def sparse_batch_from_points(
    points_list: Sequence[torch.Tensor], feats_list: Sequence[torch.Tensor], voxel_size: float
) -> SparseBatch:
    """Voxelise and batch point clouds.

    Args:
        points_list: ``B`` tensors ``(N_b, 3)`` float, metres.
        feats_list: ``B`` tensors ``(N_b, C)`` float (e.g. from
            :func:`ppkt.backbones.input_features`).
        voxel_size: voxel edge in metres (the paper uses 0.025).

    Returns:
        The :class:`SparseBatch`; features averaged per voxel (gradients flow to ``feats_list``).
    """

    if len(points_list) != len(feats_list) or len(points_list) == 0:
        raise ValueError(
            f"sparse_batch_from_points: need as many feature tensors as point clouds (>0), "
            f"got {len(points_list)} and {len(feats_list)}"
        )
    for b, (p, f) in enumerate(zip(points_list, feats_list, strict=True)):
        if p.dim() != 2 or p.shape[1] != 3:
            raise ValueError(
                f"sparse_batch_from_points: points of sample {b} must be (N, 3), got {tuple(p.shape)}"
            )
        if f.dim() != 2 or f.shape[0] != p.shape[0]:
            raise ValueError(
                f"sparse_batch_from_points: feats of sample {b} must be ({p.shape[0]}, C), "
                f"got {tuple(f.shape)}"
            )
    device = points_list[0].device
    counts = torch.tensor([p.shape[0] for p in points_list], dtype=torch.long, device=device)
    point_offsets = torch.zeros(len(points_list) + 1, dtype=torch.long, device=device)
    point_offsets[1:] = torch.cumsum(counts, 0)
    points = torch.cat(list(points_list), 0)
    feats = torch.cat(list(feats_list), 0)
    coords, point_to_voxel, _ = voxelize(points, float(voxel_size), batch_offsets=point_offsets)
    num_voxels = coords.shape[0]
    summed = feats.new_zeros(num_voxels, feats.shape[1]).index_add(0, point_to_voxel, feats)
    per_voxel = torch.bincount(point_to_voxel, minlength=num_voxels).clamp_(min=1).to(feats.dtype)
    voxel_feats = summed / per_voxel.unsqueeze(1)
    voxel_counts = torch.bincount(coords[:, 0], minlength=len(points_list))
    voxel_offsets = torch.zeros_like(point_offsets)
    voxel_offsets[1:] = torch.cumsum(voxel_counts, 0)
    return SparseBatch(
        SparseTensor(coords, voxel_feats, stride=1),
        point_to_voxel,
        point_offsets,
        voxel_offsets,
        float(voxel_size),
    )

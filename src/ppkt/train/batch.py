"""Collation: samples -> one :class:`PretrainBatch` (images, one voxelised sparse batch, global
pair indices), with the teacher-cache fields when the samples come from a teacher feature cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from ppkt.sparse import SparseBatch, sparse_batch_from_points
from ppkt.train.samples import PretrainSample


@dataclass
class PretrainBatch:
    """Several frames in one batch.

    Attributes:
        images: ``(I, 3, H, W)`` float32 RGB in ``[0, 1]`` (I = B for RGB-D; all cameras for lidar).
        image_frame: ``(I,)`` long, the frame of each image.
        sparse: the frames' points voxelised together (``ppkt.sparse.SparseBatch``, the layout of the
            segmentation batch too): ``sparse.tensor`` has ``coords (M, 4)`` long ``(batch, x, y, z)``
            and ``feats (M, C)`` float32 voxel input features (mean over the voxel's points);
            ``sparse.point_to_voxel (N,)`` long is the voxel of each concatenated point;
            frame ``b`` owns points ``sparse.point_offsets[b]:sparse.point_offsets[b + 1]``.
        pair_point: ``(P,)`` long global index into the concatenated points.
        pair_image: ``(P,)`` long global index into ``images``.
        pair_frame: ``(P,)`` long frame of each pair (the loss's group for per-frame sampling).
        pair_uv: ``(P, 2)`` float32 pixel coordinates in image ``pair_image``.
        pair_uv_teacher: ``(P, 2)`` float32 pixel of each pair in its un-augmented image at
            ``data.image_hw`` (the pixel where cached teacher features are sampled).
        names: the ``B`` frame names.
        skipped: reasons of the frames skipped while building this batch.
        teacher_cached: with a teacher cache, ``(I,)`` bool: image ``i`` has cached features; None
            without a cache (the teacher then runs on ``images``).
        teacher_features: with a cache, ``(I, C, h, w)`` float16 cached maps (zeros where not
            cached), or None when no image of the batch is cached.
        teacher_images: with a cache, ``(I_missing, 3, *teacher_image_hw)`` un-augmented images of
            the uncached images, in image order, or None when there are none.
        teacher_image_hw: ``data.image_hw``, the size the cached maps were computed at.
        pair_superpixel: ``(P,)`` long superpixel of each pair within its image ``pair_image``
            (superpixel-infonce), else None.
    """

    images: torch.Tensor
    image_frame: torch.Tensor
    sparse: SparseBatch
    pair_point: torch.Tensor
    pair_image: torch.Tensor
    pair_frame: torch.Tensor
    pair_uv: torch.Tensor
    pair_uv_teacher: torch.Tensor
    names: list[str]
    skipped: list[str] = field(default_factory=list)
    teacher_cached: torch.Tensor | None = None
    teacher_features: torch.Tensor | None = None
    teacher_images: torch.Tensor | None = None
    teacher_image_hw: tuple[int, int] | None = None
    pair_superpixel: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return len(self.names)

    @property
    def image_hw(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def num_pairs(self) -> int:
        return int(self.pair_point.numel())

    _TENSORS = (
        "images",
        "image_frame",
        "pair_point",
        "pair_image",
        "pair_frame",
        "pair_uv",
        "pair_uv_teacher",
        "teacher_cached",
        "teacher_features",
        "teacher_images",
        "pair_superpixel",
    )

    def _map(self, fn) -> PretrainBatch:
        tensors = {name: getattr(self, name) for name in self._TENSORS}
        moved = {name: None if t is None else fn(t) for name, t in tensors.items()}
        return PretrainBatch(
            **moved,
            sparse=self.sparse.map_tensors(fn),
            names=self.names,
            skipped=self.skipped,
            teacher_image_hw=self.teacher_image_hw,
        )

    @property
    def uses_teacher_cache(self) -> bool:
        return self.teacher_cached is not None

    @property
    def num_teacher_uncached(self) -> int:
        """Images of this batch whose teacher features are not cached (0 without a cache)."""
        return 0 if self.teacher_cached is None else int((~self.teacher_cached).sum())

    def to(self, device: torch.device | str) -> PretrainBatch:
        return self._map(lambda t: t.to(device, non_blocking=True))

    def pin_memory(self) -> PretrainBatch:
        return self._map(lambda t: t.pin_memory())


def _collate(samples: Sequence[PretrainSample], voxel_size: float) -> PretrainBatch:
    sparse = sparse_batch_from_points([s.points for s in samples], [s.features for s in samples], voxel_size)
    # The batch's input features are data, never part of a graph (workers pickle them).
    sparse = replace(sparse, tensor=sparse.tensor.replace_feats(sparse.tensor.feats.detach()))
    point_offsets = sparse.point_offsets
    image_counts = torch.tensor([s.images.shape[0] for s in samples])
    image_offsets = torch.zeros(len(samples) + 1, dtype=torch.long)
    image_offsets[1:] = torch.cumsum(image_counts, 0)
    pair_point = torch.cat([s.pair_point + point_offsets[b] for b, s in enumerate(samples)])
    pair_image = torch.cat([s.pair_image + image_offsets[b] for b, s in enumerate(samples)])
    pair_frame = torch.cat([torch.full_like(s.pair_point, b) for b, s in enumerate(samples)])
    return PretrainBatch(
        **_collate_teacher_cache(samples),
        images=torch.cat([s.images for s in samples]),
        image_frame=torch.repeat_interleave(torch.arange(len(samples)), image_counts),
        sparse=sparse,
        pair_point=pair_point,
        pair_image=pair_image,
        pair_frame=pair_frame,
        pair_uv=torch.cat([s.pair_uv for s in samples]),
        pair_uv_teacher=torch.cat(
            [s.pair_uv if s.pair_uv_teacher is None else s.pair_uv_teacher for s in samples]
        ),
        names=[s.name for s in samples],
        skipped=[reason for s in samples for reason in s.skipped],
        pair_superpixel=_cat_optional([s.pair_superpixel for s in samples], "pair_superpixel"),
    )


def _cat_optional(parts: Sequence[torch.Tensor | None], what: str) -> torch.Tensor | None:
    if all(p is None for p in parts):
        return None
    if any(p is None for p in parts):
        raise ValueError(f"a batch mixes samples with and without {what}")
    return torch.cat(list(parts))


def _collate_teacher_cache(samples: Sequence[PretrainSample]) -> dict:
    """The batch's ``teacher_*`` fields (all None when no sample comes from a teacher cache)."""
    with_cache = [s.teacher_image_hw is not None for s in samples]
    if not any(with_cache):
        return {}
    if not all(with_cache) or any(s.images.shape[0] != 1 for s in samples):
        raise ValueError("a batch mixes samples with and without the teacher cache, or has lidar samples")
    for s in samples:
        if (s.teacher_features is None) == (s.teacher_image is None):
            raise ValueError(f"{s.name}: cached sample needs one of teacher_features, teacher_image")
    cached = torch.tensor([s.teacher_features is not None for s in samples])
    features = None
    if bool(cached.any()):
        like = next(s.teacher_features for s in samples if s.teacher_features is not None)
        features = torch.stack(
            [torch.zeros_like(like) if s.teacher_features is None else s.teacher_features for s in samples]
        )
    missing = [s.teacher_image for s in samples if s.teacher_image is not None]
    return {
        "teacher_cached": cached,
        "teacher_features": features,
        "teacher_images": torch.stack(missing) if missing else None,
        "teacher_image_hw": samples[0].teacher_image_hw,
    }


class Collator:
    """Picklable collate function for DataLoader workers: ``Collator(voxel_size)(samples)``."""

    def __init__(self, voxel_size: float) -> None:
        self.voxel_size = float(voxel_size)

    def __call__(self, samples: Sequence[PretrainSample]) -> PretrainBatch:
        if not samples or any(not isinstance(s, PretrainSample) for s in samples):
            raise TypeError("Collator expects a non-empty list of PretrainSample")
        return _collate(samples, self.voxel_size)

"""Detection scenes for training and evaluation: sources, augmentation, samples, batches.

What flows:

* a :class:`DetectionSource` names the scenes of a split and reads each as a
  :class:`~ppkt.data.boxes.DetectionScene` (points, colours, boxes, the box of each point);
* :class:`DetectionDataset` applies training-time augmentation (boxes move with their points)
  and computes the backbone's input features: a :class:`DetectionSample`;
* :func:`collate_detection` voxelises scenes together (``ppkt.sparse.sparse_batch_from_points``,
  the one sparse batch layout) into a :class:`DetectionBatch`.

Points are translated so that their minimum is 0 (as for segmentation); the boxes move with them,
and since IoU does not change under translation, metrics are computed in that frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ppkt.augment.points import Z_UP, PointAugmentation
from ppkt.backbones import input_features as make_features
from ppkt.data.boxes import (  # noqa: F401 (check-data for boxes, re-exported)
    Boxes3D,
    DetectionCheck,
    DetectionScene,
    check_detection_scenes,
)
from ppkt.data.synthetic.boxes import SyntheticDetectionSource  # noqa: F401 (re-exported)
from ppkt.eval.data import SceneDataset
from ppkt.sparse import SparseBatch, SparseTensor, sparse_batch_from_points


# --------------------------------------------------------------------------------------------- sources
class DetectionSource(Protocol):
    """Where detection scenes come from."""

    class_names: tuple[str, ...]

    def scene_ids(self, split: str) -> list[str]: ...

    def read(self, scene_id: str) -> DetectionScene: ...


class InMemoryDetectionSource:
    """Detection scenes already in memory, by split (tests, notebooks)."""

    def __init__(self, splits: dict[str, Sequence[DetectionScene]], class_names: Sequence[str]):
        self.class_names = tuple(class_names)
        self._splits = {name: [s.scene_id for s in scenes] for name, scenes in splits.items()}
        self._scenes = {s.scene_id: s for scenes in splits.values() for s in scenes}

    def scene_ids(self, split: str) -> list[str]:
        if split not in self._splits:
            raise KeyError(f"no split {split!r}; known: {sorted(self._splits)}")
        return list(self._splits[split])

    def read(self, scene_id: str) -> DetectionScene:
        return self._scenes[scene_id]


# ---------------------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class DetectionAugmentation:
    """Training-time augmentation of a detection scene; boxes follow their points. z is up.

    The points move by the one point augmentation (``ppkt.augment.points.PointAugmentation``:
    rotation about z, x and y mirrored independently, isotropic scale); box centres, sizes and
    headings follow the same drawn transform. Strengths are VoteNet's ScanNet and SUN RGB-D recipes
    (flips with probability 0.5 each, rotation within +-5 degrees (ScanNet) or +-30 (SUN RGB-D),
    scale 0.85-1.15 (SUN RGB-D)); VoteNet mirrors before rotating, which gives the same
    distribution of transforms since the angle is symmetric about 0.

    Attributes:
        flip: probability of mirroring x, and independently y.
        rotate_up: max |angle| (rad) of a uniform rotation about z.
        scale_min, scale_max: uniform isotropic scale range.
        axis_aligned: boxes stay axis-aligned (ScanNet's heading-free boxes): after rotating, a
            box becomes the axis-aligned box around its rotated corners, as VoteNet's ScanNet
            loader does.
    """

    flip: float = 0.5
    rotate_up: float = math.radians(5)
    scale_min: float = 1.0
    scale_max: float = 1.0
    axis_aligned: bool = False

    def __call__(self, scene: DetectionScene, rng: np.random.Generator) -> DetectionScene:
        points_aug = PointAugmentation(
            rotate_up=self.rotate_up, flip=self.flip, flip_axes=(0, 1), scale_min=self.scale_min,
            scale_max=self.scale_max,
        )  # fmt: skip
        move = points_aug.draw(rng, Z_UP)
        points = move.apply(torch.from_numpy(scene.points.astype(np.float64))).numpy()
        centers = move.apply(torch.from_numpy(scene.boxes.centers.astype(np.float64))).numpy()
        sizes = scene.boxes.sizes.astype(np.float64) * move.scale
        headings = move.heading(scene.boxes.headings.astype(np.float64))
        if self.axis_aligned:
            # Footprint of the rotated box (cos/sin of its heading) -> its axis-aligned extent.
            ch, sh = np.abs(np.cos(headings)), np.abs(np.sin(headings))
            sizes = np.stack(
                [ch * sizes[:, 0] + sh * sizes[:, 1], sh * sizes[:, 0] + ch * sizes[:, 1], sizes[:, 2]], 1
            )
            headings = np.zeros_like(headings)
        headings = np.angle(np.exp(1j * headings))
        boxes = Boxes3D(centers, sizes, headings, scene.boxes.labels, scene.boxes.class_names)
        return DetectionScene(
            points.astype(np.float32), scene.colors, boxes, scene.instance_ids, scene.scene_id
        )


# ---------------------------------------------------------------------------------------------- samples
@dataclass
class DetectionSample:
    """One scene ready for batching.

    Attributes:
        scene_id: scene name.
        points: ``(N, 3)`` float32 coordinates, metres, shifted so that their minimum is 0.
        feats: ``(N, C)`` float32 input features (``ppkt.backbones.input_features``).
        instance_ids: ``(N,)`` long box index of each point, -1 = none.
        boxes: the scene's boxes in the same (shifted) frame.
    """

    scene_id: str
    points: torch.Tensor
    feats: torch.Tensor
    instance_ids: torch.Tensor
    boxes: Boxes3D


def detection_sample(scene: DetectionScene, input_features: str) -> DetectionSample:
    if len(scene.points) == 0:
        raise ValueError(f"scene {scene.scene_id}: no points")
    points = np.asarray(scene.points, dtype=np.float32)
    origin = points.min(axis=0)
    points = torch.as_tensor(points - origin)
    boxes = scene.boxes
    boxes = Boxes3D(boxes.centers - origin, boxes.sizes, boxes.headings, boxes.labels, boxes.class_names)
    feats = make_features(input_features, points, torch.as_tensor(np.asarray(scene.colors))).float()
    return DetectionSample(
        scene.scene_id, points, feats, torch.as_tensor(scene.instance_ids, dtype=torch.long), boxes
    )


class DetectionDataset(SceneDataset):
    """Detection scenes of one split, optionally augmented (a :class:`DetectionAugmentation`).

    The arguments, the scene cache and the augmentation's seeds are those of
    :class:`ppkt.eval.data.SceneDataset` (segmentation's too); ``source`` is a :class:`DetectionSource`.
    """

    task = "detection"

    def sample(self, scene: DetectionScene) -> DetectionSample:
        return detection_sample(scene, self.input_features)

    def collate(self, samples: Sequence[DetectionSample]) -> DetectionBatch:
        return collate_detection(samples, self.voxel_size)


# --------------------------------------------------------------------------------------------- batches
@dataclass
class DetectionBatch:
    """Several scenes voxelised together.

    Attributes:
        sparse: the sparse batch (``ppkt.sparse.SparseBatch``): voxels sorted by scene, mean input
            features, ``point_to_voxel (N,)``, ``point_offsets``/``voxel_offsets (B + 1,)``.
        points: ``(N, 3)`` float32 coordinates of all points (scene ``b`` owns
            ``point_offsets[b]:point_offsets[b + 1]``).
        instance_ids: ``(N,)`` long box index of each point within its scene, -1 = none.
        boxes: the ``B`` scenes' boxes.
        scene_ids: the ``B`` scene names.
    """

    sparse: SparseBatch
    points: torch.Tensor
    instance_ids: torch.Tensor
    boxes: list[Boxes3D]
    scene_ids: list[str]

    def to(self, device: torch.device | str) -> DetectionBatch:
        s = self.sparse
        tensor = SparseTensor(s.tensor.coords.to(device), s.tensor.feats.to(device), stride=s.tensor.stride)
        sparse = SparseBatch(
            tensor,
            s.point_to_voxel.to(device),
            s.point_offsets.to(device),
            s.voxel_offsets.to(device),
            s.voxel_size,
        )
        return DetectionBatch(
            sparse, self.points.to(device), self.instance_ids.to(device), self.boxes, self.scene_ids
        )


def collate_detection(samples: Sequence[DetectionSample], voxel_size: float) -> DetectionBatch:
    sparse = sparse_batch_from_points([s.points for s in samples], [s.feats for s in samples], voxel_size)
    return DetectionBatch(
        sparse,
        torch.cat([s.points for s in samples]),
        torch.cat([s.instance_ids for s in samples]),
        [s.boxes for s in samples],
        [s.scene_id for s in samples],
    )

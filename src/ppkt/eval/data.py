"""Labelled scenes for fine-tuning and evaluation: sources, augmentation, voxelisation, batches.

What flows:

* a :class:`SceneSource` names the scenes of a split and reads each as a
  :class:`~ppkt.data.types.LabeledScene` (ScanNet export and the synthetic rooms through
  ``read_scannet_scene``; lidar datasets through an adapter; in-memory scenes for tests);
* :class:`SegmentationDataset` applies the limited-label split and the training-time
  augmentation (none at evaluation) and computes input features: a :class:`SceneSample`;
* :func:`collate_scenes` voxelises scenes together into a :class:`SegmentationBatch`, whose
  ``point_to_voxel`` takes voxel predictions back to every original point.

Voxel labels for the training loss are the **majority label among the voxel's labelled points**
(ignore-labelled points do not vote; a voxel without any labelled point is ignored; ties go to
the lowest class id). The representative point's label would be simpler, but with a few
labelled points per scene (the ``points`` budgets) the representative is almost never one of
them and most of the budget would be thrown away. Input features of a voxel are the mean of its
points' features, as in pretraining (``ppkt.sparse.sparse_batch_from_points``).

Metrics are always computed on the original points (see ``ppkt.eval.finetune.evaluate``), never
on voxels, so that the voxel size does not change what is measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ppkt.augment.points import SceneAugmentation
from ppkt.backbones import input_features as make_features
from ppkt.data.scannet import ScanNetSceneSource  # noqa: F401 - part of this module's API
from ppkt.data.types import IGNORE_LABEL, LabeledScene, SceneSource
from ppkt.eval.splits import LabelSplit
from ppkt.sparse import SparseBatch, SparseTensor, sparse_batch_from_points

# --------------------------------------------------------------------------------------------- sources
# SceneSource (what a labelled dataset offers) and ScanNetSceneSource live with the readers, where
# the registry (ppkt.data.registry) opens the one of data.kind; imported above for callers.


class InMemorySceneSource:
    """Scenes already in memory, by split (tests, notebooks, custom datasets)."""

    def __init__(self, splits: dict[str, Sequence[LabeledScene]], class_names: Sequence[str]):
        self.class_names = tuple(class_names)
        self._splits = {name: [s.scene_id for s in scenes] for name, scenes in splits.items()}
        self._scenes = {s.scene_id: s for scenes in splits.values() for s in scenes}

    def scene_ids(self, split: str) -> list[str]:
        if split not in self._splits:
            raise KeyError(f"no split {split!r}; known: {sorted(self._splits)}")
        return list(self._splits[split])

    def read(self, scene_id: str) -> LabeledScene:
        return self._scenes[scene_id]


# ---------------------------------------------------------------------------------------------- samples
@dataclass
class SceneSample:
    """One scene ready for batching (after the split's masking and any augmentation).

    Attributes:
        scene_id: scene name.
        points: ``(N, 3)`` float32 coordinates in metres, shifted so that their minimum is 0.
        feats: ``(N, C)`` float32 input features (``ppkt.backbones.input_features``).
        labels: ``(N,)`` long class ids or IGNORE_LABEL.
    """

    scene_id: str
    points: torch.Tensor
    feats: torch.Tensor
    labels: torch.Tensor


def scene_sample(scene: LabeledScene, input_features: str, num_classes: int) -> SceneSample:
    """Tensors of a scene; checks its labels against ``num_classes``."""
    labels = torch.as_tensor(np.asarray(scene.labels), dtype=torch.long)
    if labels.numel() and (int(labels.max()) >= num_classes or int(labels.min()) < IGNORE_LABEL):
        raise ValueError(
            f"scene {scene.scene_id}: labels span [{int(labels.min())}, {int(labels.max())}] "
            f"but the model has {num_classes} classes (ignore = {IGNORE_LABEL})"
        )
    points = torch.as_tensor(np.asarray(scene.points, dtype=np.float32))
    if points.shape[0] == 0:
        raise ValueError(f"scene {scene.scene_id}: no points")
    # Translation does not change a convolution's output; a small origin keeps voxel ids small.
    points = points - points.min(dim=0).values
    colors = torch.as_tensor(np.asarray(scene.colors))
    feats = make_features(input_features, points, colors).float()
    return SceneSample(scene_id=scene.scene_id, points=points, feats=feats, labels=labels)


def voxel_majority_labels(
    point_to_voxel: torch.Tensor, labels: torch.Tensor, num_voxels: int, num_classes: int
) -> torch.Tensor:
    """``(M,)`` majority label of each voxel over its labelled points; IGNORE_LABEL if none."""
    labelled = labels != IGNORE_LABEL
    votes = torch.bincount(
        point_to_voxel[labelled] * num_classes + labels[labelled], minlength=num_voxels * num_classes
    ).reshape(num_voxels, num_classes)
    count, winner = votes.max(dim=1)  # max returns the first maximal index: ties -> lowest id
    return torch.where(count > 0, winner, torch.full_like(winner, IGNORE_LABEL))


# --------------------------------------------------------------------------------------------- dataset
class SceneDataset(torch.utils.data.Dataset):
    """Scenes of one split for a fine-tuning task (segmentation's and detection's datasets): the
    scene cache and the seeding of each item's augmentation, owned here for both.

    A subclass turns a (read, augmented) scene into a sample (:meth:`sample`) and samples into a
    batch (:meth:`collate`); :meth:`read_scene` may change a scene as read (segmentation masks the
    labels outside its split), before it is cached.

    Args:
        source: where scenes come from (``read(scene_id)``).
        scene_ids: the scenes of this dataset.
        voxel_size: voxel edge in metres.
        input_features: feature kind for ``ppkt.backbones.input_features``.
        augmentation: training-time augmentation ``(scene, rng) -> scene``, None at evaluation.
        seed: base seed; the augmentation of item ``i`` in epoch ``e`` uses ``(seed, e, i)``, so a
            run is reproducible whatever the number of loader workers.
        cache_scenes: keep read scenes in memory (per worker process).
    """

    task = "scene"  # named in the error of an empty dataset

    def __init__(
        self,
        source,
        scene_ids: Sequence[str],
        *,
        voxel_size: float,
        input_features: str,
        augmentation: Callable[[Any, np.random.Generator], Any] | None = None,
        seed: int = 0,
        cache_scenes: bool = True,
    ):
        if not scene_ids:
            raise ValueError(f"a {self.task} dataset needs at least one scene")
        self.source = source
        self.scene_ids = list(scene_ids)
        self.voxel_size = float(voxel_size)
        self.input_features = input_features
        self.augmentation = augmentation
        self.seed = int(seed)
        self.epoch = 0
        self.cache_scenes = cache_scenes
        self._cache: dict[str, Any] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.scene_ids)

    def read_scene(self, scene_id: str):
        """The scene as this dataset uses it, before augmentation (uncached)."""
        return self.source.read(scene_id)

    def scene(self, index: int):
        """The scene of item ``index`` as :meth:`read_scene` gives it, from the cache when kept."""
        sid = self.scene_ids[index]
        if sid in self._cache:
            return self._cache[sid]
        scene = self.read_scene(sid)
        if self.cache_scenes:
            self._cache[sid] = scene
        return scene

    def __getitem__(self, index: int):
        scene = self.scene(index)
        if self.augmentation is not None:
            scene = self.augmentation(scene, np.random.default_rng([self.seed, self.epoch, index]))
        return self.sample(scene)

    def sample(self, scene):
        """One (augmented) scene as the task's sample."""
        raise NotImplementedError

    def collate(self, samples: Sequence):
        """Samples voxelised together into the task's batch."""
        raise NotImplementedError


class SegmentationDataset(SceneDataset):
    """Voxelised labelled scenes of one split, optionally limited and augmented.

    Args:
        source: where scenes come from.
        scene_ids: the scenes of this dataset (for training: ``label_split.scenes``).
        num_classes: number of classes.
        label_split: masks labels outside the split (and checks the scene against it).
        others: :class:`SceneDataset`'s (``voxel_size``, ``input_features``, ``augmentation``,
            ``seed``, ``cache_scenes``).
    """

    task = "segmentation"

    def __init__(
        self,
        source: SceneSource,
        scene_ids: Sequence[str],
        *,
        voxel_size: float,
        input_features: str,
        num_classes: int,
        label_split: LabelSplit | None = None,
        augmentation: SceneAugmentation | None = None,
        seed: int = 0,
        cache_scenes: bool = True,
    ):
        super().__init__(
            source, scene_ids, voxel_size=voxel_size, input_features=input_features,
            augmentation=augmentation, seed=seed, cache_scenes=cache_scenes,
        )  # fmt: skip
        self.num_classes = int(num_classes)
        self.label_split = label_split

    def read_scene(self, scene_id: str) -> LabeledScene:
        """The scene with its labels masked by the split (checked against it)."""
        scene = self.source.read(scene_id)
        return scene if self.label_split is None else self.label_split.apply(scene)

    def sample(self, scene: LabeledScene) -> SceneSample:
        return scene_sample(scene, self.input_features, self.num_classes)

    def collate(self, samples: Sequence[SceneSample]) -> SegmentationBatch:
        return collate_scenes(samples, self.voxel_size, self.num_classes)


# --------------------------------------------------------------------------------------------- batches
@dataclass
class SegmentationBatch:
    """Several scenes voxelised together (the one sparse batch layout, ``ppkt.sparse.SparseBatch``).

    Attributes:
        sparse: coordinates ``(M, 4)``, mean input features per voxel, ``point_to_voxel (N,)``
            and ``point_offsets (B + 1,)``.
        voxel_labels: ``(M,)`` long training targets (majority label; IGNORE_LABEL = no loss).
        point_labels: ``(N,)`` long labels of the original points (what metrics are computed on).
        scene_ids: the ``B`` scene names.
    """

    sparse: SparseBatch
    voxel_labels: torch.Tensor
    point_labels: torch.Tensor
    scene_ids: list[str]

    def to(self, device: torch.device | str) -> SegmentationBatch:
        s = self.sparse
        tensor = SparseTensor(s.tensor.coords.to(device), s.tensor.feats.to(device), stride=s.tensor.stride)
        sparse = SparseBatch(
            tensor,
            s.point_to_voxel.to(device),
            s.point_offsets.to(device),
            s.voxel_offsets.to(device),
            s.voxel_size,
        )
        return SegmentationBatch(
            sparse, self.voxel_labels.to(device), self.point_labels.to(device), self.scene_ids
        )


def collate_scenes(samples: Sequence[SceneSample], voxel_size: float, num_classes: int) -> SegmentationBatch:
    """Voxelise scenes together with ``ppkt.sparse.sparse_batch_from_points`` and label the voxels."""
    sparse = sparse_batch_from_points([s.points for s in samples], [s.feats for s in samples], voxel_size)
    point_labels = torch.cat([s.labels for s in samples])
    voxel_labels = voxel_majority_labels(
        sparse.point_to_voxel, point_labels, sparse.tensor.num_sites, num_classes
    )
    return SegmentationBatch(sparse, voxel_labels, point_labels, [s.scene_id for s in samples])

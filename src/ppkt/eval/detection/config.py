"""The typed configuration of a detection fine-tuning run (VoteNet head on a 3D backbone).

The labels, model, optimiser and run sections are the segmentation ones (``ppkt.eval.config``),
so the same setting has the same name in both tasks (and ``load_pretrained_backbone`` checks a
backbone card against either); data, augmentation and the head are detection's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ppkt.config import RangeCheck, option
from ppkt.data.registry import SyntheticRooms, check_synthetic
from ppkt.eval.config import (
    SYNTHETIC_EVAL_HW,
    EvalOptimConfig,
    EvalRunConfig,
    LabelsConfig,
    ModelConfig,
    check_shared_sections,
)
from ppkt.eval.detection.data import DetectionAugmentation


@dataclass(frozen=True)
class DetectionDataConfig:
    """Which scenes with boxes (voxelised at model.voxel_size, with model.input_features)."""

    kind: Literal["synthetic", "scannet", "sunrgbd"] = option(
        "synthetic",
        "format with 3D boxes (ppkt.data.registry): synthetic: generated rooms with furniture boxes; "
        "scannet: ScanNet v2 scans with instance annotations; "
        "sunrgbd: VoteNet's sunrgbd_trainval export",
    )
    root: Path | None = option(None, "dataset root; synthetic: cache folder (None = default)")
    train_split: str = option(
        "train", "training scenes: <scene lists>/scannetv2_<split>.txt (sunrgbd: <split>_data_idx.txt)"
    )
    val_split: str = option("val", "evaluation scenes, as train_split")
    scene_lists: Path | None = option(
        None, "folder of the scannetv2_<split>.txt scene lists (None = the dataset root)"
    )
    cache_scenes: bool = option(True, "keep read scenes in memory (per loader worker)")
    num_workers: int = option(0, "DataLoader worker processes (0 = load in the main process)")
    synthetic: SyntheticRooms = option(
        factory=lambda: SyntheticRooms(image_hw=SYNTHETIC_EVAL_HW),
        doc="the generated rooms (kind synthetic); the same values as the pretraining run reuse its rooms",
    )


@dataclass(frozen=True)
class DetectionAugmentConfig:
    """Training-time augmentation (boxes follow their points; never applied at evaluation)."""

    enabled: bool = option(True, "apply the augmentations below to training scenes")
    flip: float = option(0.5, "probability of mirroring x, and independently y")
    rotate_up: float = option(math.radians(5), "max |angle| (rad) of a random rotation about z")
    scale_min: float = option(1.0, "random isotropic scale, lower bound")
    scale_max: float = option(1.0, "random isotropic scale, upper bound")
    axis_aligned: bool = option(
        False,
        "boxes stay axis-aligned after rotation (ScanNet's heading-free boxes, head.num_heading_bins 1)",
    )

    def build(self) -> DetectionAugmentation | None:
        if not self.enabled:
            return None
        return DetectionAugmentation(
            self.flip, self.rotate_up, self.scale_min, self.scale_max, self.axis_aligned
        )


@dataclass(frozen=True)
class VoteNetConfig:
    """The VoteNet head (Qi et al. 2019) and its post-processing; defaults are VoteNet's."""

    num_seeds: int = option(1024, "seed points per scene (farthest point sampling over the voxels)")
    num_proposals: int = option(256, "vote clusters (proposals) per scene")
    hidden: int = option(256, "width of the seed/vote features (VoteNet: 256)")
    proposal_hidden: int = option(128, "width of the proposal MLPs (VoteNet: 128)")
    radius: float = option(0.3, "vote-aggregation ball radius, metres")
    group_samples: int = option(16, "votes grouped per proposal")
    num_heading_bins: int = option(1, "heading bins (ScanNet 1: axis-aligned boxes; SUN RGB-D 12)")
    near_threshold: float = option(0.3, "proposals closer than this (m) to a true centre are positive")
    far_threshold: float = option(0.6, "proposals farther than this (m) from every true centre are negative")
    nms_iou: float = option(0.25, "IoU above which NMS suppresses a proposal")
    confidence_threshold: float = option(0.05, "proposals with a lower objectness probability are dropped")
    per_class_proposal: bool = option(
        True,
        "evaluation: each kept proposal gives a box for every class, scored objectness x class probability",
    )


@dataclass(frozen=True)
class DetectionOptimConfig(EvalOptimConfig):
    """The segmentation optimiser settings, plus the optimiser's kind: VoteNet trains with Adam
    (lr 0.001, no weight decay); SGD with momentum, the segmentation loop's, diverged on the
    synthetic rooms at lr 0.01 and 0.001 (VoteNet's chamfer centre loss grows with distance)."""

    optimizer: Literal["adam", "sgd"] = option("adam", "adam (VoteNet's) or sgd (momentum, as segmentation)")
    lr_head: float = option(0.001, "learning rate of the VoteNet head")
    lr_backbone: float = option(0.001, "learning rate of the backbone")
    weight_decay: float = option(0.0, "weight decay (head and backbone)")
    schedule: Literal["poly", "cosine", "constant"] = option(
        "cosine", "learning-rate schedule over the steps"
    )


@dataclass(frozen=True)
class DetectionConfig:
    """A complete detection fine-tuning run."""

    origin: str = option("custom", "the preset this config started from (set by --preset)")
    data: DetectionDataConfig = field(default_factory=DetectionDataConfig)
    augment: DetectionAugmentConfig = field(default_factory=DetectionAugmentConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: VoteNetConfig = field(default_factory=VoteNetConfig)
    optim: DetectionOptimConfig = field(default_factory=DetectionOptimConfig)
    run: EvalRunConfig = field(default_factory=EvalRunConfig)

    @property
    def train_seed(self) -> int:
        return self.labels.seed if self.run.seed is None else self.run.seed


def validate(cfg: DetectionConfig) -> None:
    """Reject values that cannot be meant; the ValueError names each field and its allowed range.
    The labels, model, optim and run sections are checked as segmentation's (same fields)."""
    check = RangeCheck(cfg)
    data, aug, head = cfg.data, cfg.augment, cfg.head
    check.number("data.num_workers", low=0)
    check_synthetic(check, data.synthetic, required_hw=True)
    check.number("augment.flip", low=0, high=1)
    check.number("augment.rotate_up", low=0)
    check.number("augment.scale_min", low=0, low_open=True)
    check.require("augment.scale_max", aug.scale_min <= aug.scale_max, ">= augment.scale_min")
    for name in (
        "num_seeds",
        "num_proposals",
        "hidden",
        "proposal_hidden",
        "group_samples",
        "num_heading_bins",
    ):
        check.number(f"head.{name}", low=1)
    check.number("head.radius", low=0, low_open=True)
    check.number("head.near_threshold", low=0, low_open=True)
    check.require("head.far_threshold", head.far_threshold >= head.near_threshold, ">= head.near_threshold")
    check.number("head.nms_iou", low=0, high=1, low_open=True)
    check.number("head.confidence_threshold", low=0, high=1)
    check.require(
        "labels.kind", cfg.labels.kind == "scenes", "scenes (detection limits labels by fraction of scenes)"
    )
    check_shared_sections(check, cfg)
    check.raise_problems("invalid detection config")

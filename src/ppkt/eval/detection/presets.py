"""Detection presets: full configs in code, one function each (values tabulated in docs/detection.md).

Sources:

* ``votenet-scannet``: VoteNet's ScanNet recipe (facebookresearch/votenet, ``train.py`` defaults
  and ``scannet/scannet_detection_dataset.py``): batch 8, 180 epochs of the 1201 training scans
  (= 27k steps), Adam lr 0.001, no weight decay, 256 proposals, 1 heading bin (axis-aligned
  boxes), augmentation = x and y flips (p 0.5 each) and a rotation within +-5 degrees, NMS IoU
  0.25, objectness threshold 0.05, per-class proposals. VoteNet steps its rate down by 10x at
  epochs 80, 120, 160; ppkt's schedules are poly/cosine/constant, so cosine (**ours**). The
  backbone, voxel size (2.5 cm) and colour input are PPKT's pretraining ones (paper: SR-UNet34,
  2.5 cm), which detection must keep to load the pretrained weights. How PPKT fine-tuned the
  detector (rate, epochs) is not in the paper: **not sourced**, VoteNet's values are used.
* ``votenet-sunrgbd``: VoteNet's SUN RGB-D recipe (``sunrgbd/sunrgbd_detection_dataset.py``):
  5285 training scenes, batch 8, 180 epochs (= 119k steps), 12 heading bins, x flip only
  (ppkt flips x and y with the same probability: **ours**), rotation within +-30 degrees,
  scale 0.85-1.15; data: the ``sunrgbd_trainval`` export (``ppkt.data.sunrgbd``).
* ``demo-detection``: ours, sized to run on a laptop CPU in minutes on the synthetic rooms;
  backbone, width, voxel size, input features and the synthetic dataset's parameters are those of
  the pretraining ``demo`` preset (as ``demo-finetune``; the rooms are
  ``ppkt.data.registry.DEMO_ROOMS``), so a demo backbone loads and the same rooms are reused from
  the cache. Rotations of any angle (the rooms' furniture has any heading, 12 heading bins).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from ppkt.config import Preset, PresetRegistry
from ppkt.data.registry import DEMO_ROOMS
from ppkt.eval.config import EvalRunConfig, LabelsConfig, ModelConfig
from ppkt.eval.detection.config import (
    DetectionAugmentConfig,
    DetectionConfig,
    DetectionDataConfig,
    DetectionOptimConfig,
    VoteNetConfig,
)


def votenet_scannet() -> DetectionConfig:
    return DetectionConfig(
        origin="votenet-scannet",
        data=DetectionDataConfig(kind="scannet", num_workers=4),
        augment=DetectionAugmentConfig(flip=0.5, rotate_up=math.radians(5), axis_aligned=True),
        labels=LabelsConfig(kind="scenes", budget=1.0, seed=0),
        model=ModelConfig(
            backbone="res16unet34", width=1.0, voxel_size=0.025, input_features="rgb", mode="finetune"
        ),
        head=VoteNetConfig(num_heading_bins=1),
        optim=DetectionOptimConfig(
            optimizer="adam",
            steps=27000,
            batch_size=8,
            lr_head=0.001,
            lr_backbone=0.001,
            weight_decay=0.0,
            schedule="cosine",
        ),  # fmt: skip
        run=EvalRunConfig(out=Path("runs/votenet-scannet"), eval_every=1500),
    )


def votenet_sunrgbd() -> DetectionConfig:
    cfg = votenet_scannet()
    return replace(
        cfg,
        origin="votenet-sunrgbd",
        data=replace(cfg.data, kind="sunrgbd"),
        augment=DetectionAugmentConfig(flip=0.5, rotate_up=math.radians(30), scale_min=0.85, scale_max=1.15),
        head=replace(cfg.head, num_heading_bins=12),
        optim=replace(cfg.optim, steps=119000),
        run=replace(cfg.run, out=Path("runs/votenet-sunrgbd"), eval_every=6000),
    )


def demo_detection() -> DetectionConfig:
    return DetectionConfig(
        origin="demo-detection",
        data=DetectionDataConfig(
            kind="synthetic",
            synthetic=DEMO_ROOMS,
        ),  # fmt: skip
        augment=DetectionAugmentConfig(flip=0.5, rotate_up=math.pi, scale_min=0.9, scale_max=1.1),
        labels=LabelsConfig(kind="scenes", budget=1.0, seed=0),
        model=ModelConfig(
            backbone="res16unet14", width=0.5, voxel_size=0.05, input_features="rgb", mode="finetune"
        ),
        head=VoteNetConfig(
            num_seeds=1024, num_proposals=128, hidden=128, proposal_hidden=128, num_heading_bins=12
        ),
        optim=DetectionOptimConfig(
            optimizer="adam", steps=300, batch_size=2, lr_head=0.001, lr_backbone=0.001
        ),
        run=EvalRunConfig(out=Path("runs/demo-detection"), eval_every=50, log_every=10),
    )


DETECTION_PRESETS: PresetRegistry[DetectionConfig] = PresetRegistry(
    "detection",
    [
        Preset("votenet-scannet", votenet_scannet, "VoteNet's ScanNet recipe"),
        Preset("votenet-sunrgbd", votenet_sunrgbd, "VoteNet's SUN RGB-D recipe"),
        Preset("demo-detection", demo_detection, "ours: the demo rooms, minutes on a CPU"),
    ],
)
get_detection_preset = DETECTION_PRESETS.get

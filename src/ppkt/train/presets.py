"""Presets: full pretraining configs in code, one function each.

The source of every value (paper, SLidR's public re-implementation, or our choice where
neither states it) is tabulated in docs/pretraining.md; keep the two in step.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from ppkt.config import Preset, PresetRegistry
from ppkt.data.registry import DEMO_ROOMS
from ppkt.train.config import (
    AugmentConfig,
    DataConfig,
    LossConfig,
    OptimConfig,
    PretrainConfig,
    RunConfig,
    StudentConfig,
    TeacherConfig,
)


def paper() -> PretrainConfig:
    """PPKT as published (ScanNet, ResNet-50 -> SR-UNet34). The teacher weights must be given."""
    return PretrainConfig(
        origin="paper",
        data=DataConfig(kind="scannet", split="train", frame_skip=25, image_hw=(480, 640)),
        augment=AugmentConfig(elastic=True),
        teacher=TeacherConfig(name="resnet50", weights=None, stage=None),
        model=StudentConfig(backbone="res16unet34", width=1.0, voxel_size=0.025, input_features="rgb"),
        loss=LossConfig(embedding_dim=128, num_pairs=4096, tau=0.04, sampling="batch"),
        optim=OptimConfig(
            optimizer="sgd",
            lr=0.5,
            momentum=0.9,
            dampening=0.0,
            weight_decay=1e-4,
            schedule="cosine",
            batch_size=24,
            steps=60000,
        ),
        run=RunConfig(out=Path("runs/ppkt-paper"), checkpoint_every=2000),
    )


def slidr_ppkt() -> PretrainConfig:
    """The PPKT baseline of SLidR's public code (nuScenes lidar + 6 cameras)."""
    return PretrainConfig(
        origin="slidr-ppkt",
        data=DataConfig(
            kind="nuscenes", split="slidr_parametrize", frame_skip=1, image_hw=(224, 416), max_depth=80.0
        ),
        augment=AugmentConfig(rotate_up=math.pi, scale_min=0.95, scale_max=1.05, crop_scale_min=0.3),
        teacher=TeacherConfig(name="resnet50", weights=None, stage=None),
        model=StudentConfig(backbone="res16unet34", width=1.0, voxel_size=0.1, input_features="constant"),
        loss=LossConfig(embedding_dim=64, num_pairs=4096, tau=0.07, sampling="batch"),
        optim=OptimConfig(
            optimizer="sgd",
            lr=0.5,
            momentum=0.9,
            dampening=0.1,
            weight_decay=1e-4,
            schedule="cosine",
            batch_size=4,
            steps=1,
            epochs=50,
        ),
        run=RunConfig(out=Path("runs/slidr-ppkt"), checkpoint_every=2000),
    )


def demo() -> PretrainConfig:
    """Synthetic rooms, EfficientNet-Lite0 teacher, a narrow SR-UNet14: minutes on a CPU."""
    return PretrainConfig(
        origin="demo",
        data=DataConfig(
            kind="synthetic",
            split="train",
            frame_skip=1,
            image_hw=(96, 128),
            max_depth=10.0,
            synthetic=DEMO_ROOMS,
            num_workers=1,
        ),
        augment=AugmentConfig(elastic=False, crop_scale_min=0.7),
        teacher=TeacherConfig(name="efficientnet_lite0", weights=None, stage="stride16"),
        model=StudentConfig(backbone="res16unet14", width=0.5, voxel_size=0.05, input_features="rgb"),
        loss=LossConfig(embedding_dim=64, num_pairs=1024, tau=0.07, sampling="batch"),
        optim=OptimConfig(
            optimizer="sgd",
            lr=0.1,
            momentum=0.9,
            weight_decay=1e-4,
            schedule="cosine",
            warmup_steps=10,
            batch_size=4,
            steps=150,
        ),
        run=RunConfig(out=Path("runs/demo-pretrain"), checkpoint_every=50, log_every=5),
    )


def slidr() -> PretrainConfig:
    """SLidR (Sautier et al., CVPR 2022): superpixel-pooled InfoNCE, 150 SLIC superpixels per image,
    tau 0.07, on nuScenes; every other value as in SLidR's own code, i.e. as ``slidr-ppkt``."""
    cfg = slidr_ppkt()
    return replace(
        cfg, origin="slidr", loss=replace(cfg.loss, name="superpixel-infonce", superpixels=150, tau=0.07),
        run=replace(cfg.run, out=Path("runs/slidr")),
    )  # fmt: skip


def scalr_cosine() -> PretrainConfig:
    """ScaLR-style cosine distillation (Puy et al., CVPR 2024) on nuScenes: 1 - cos to the frozen
    teacher feature of each point's pixel. ScaLR's WaffleIron student and DINOv2 teacher are not
    in this code base; the data, student and optimiser are ``slidr-ppkt``'s (docs/objectives.md)."""
    cfg = slidr_ppkt()
    return replace(
        cfg,
        origin="scalr-cosine",
        loss=replace(cfg.loss, name="cosine"),
        run=replace(cfg.run, out=Path("runs/scalr-cosine")),
    )


def openscene_distill() -> PretrainConfig:
    """OpenScene's 3D distillation (Peng et al., CVPR 2023) on ScanNet: the whole reconstructed scene
    paired with posed views (scene-level pairs), cosine loss to the frozen 2D features, 2 cm voxels,
    Adam(W) at 1e-4. OpenScene fuses the views' features per point before the loss; here each
    visible point-view pair is a term of the loss (docs/objectives.md)."""
    cfg = paper()
    return replace(
        cfg,
        origin="openscene-distill",
        data=replace(cfg.data, pairs="scene", scene_views=8),
        augment=replace(cfg.augment, elastic=False),
        model=replace(cfg.model, voxel_size=0.02),
        loss=replace(cfg.loss, name="cosine"),
        optim=replace(
            cfg.optim, optimizer="adamw", lr=1e-4, weight_decay=1e-4, schedule="poly", batch_size=8
        ),
        run=replace(cfg.run, out=Path("runs/openscene-distill")),
    )


PRESETS: PresetRegistry[PretrainConfig] = PresetRegistry(
    "pretraining",
    [
        Preset("paper", paper, "PPKT paper, ScanNet, ResNet-50 -> SR-UNet34"),
        Preset("slidr-ppkt", slidr_ppkt, "SLidR's public code, its PPKT baseline on nuScenes"),
        Preset("slidr", slidr, "SLidR (CVPR 2022), superpixel-pooled InfoNCE on nuScenes"),
        Preset("scalr-cosine", scalr_cosine, "ScaLR-style (CVPR 2024) cosine distillation on nuScenes"),
        Preset("openscene-distill", openscene_distill, "OpenScene (CVPR 2023) 3D distillation on ScanNet"),
        Preset("demo", demo, "ours: synthetic rooms, minutes on a CPU"),
    ],
)
get_preset = PRESETS.get

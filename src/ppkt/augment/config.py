"""The pretraining augmentation settings (``augment.*`` of ``ppkt pretrain``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ppkt.config import option


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentations. 3D ones move points only; 2D ones remap the pairs' pixels."""

    rotate_up: float = option(
        math.pi, "max |angle| (rad) of a random rotation about the camera's up axis (-y in OpenCV); 0 = off"
    )
    scale_min: float = option(0.9, "random uniform point-cloud scale, lower bound")
    scale_max: float = option(1.1, "random uniform point-cloud scale, upper bound")
    flip_3d: float = option(0.5, "probability of mirroring the points along the camera x axis")
    elastic: bool = option(False, "elastic distortion of the points (PointContrast/MinkowskiEngine style)")
    elastic_granularity: float = option(0.2, "elastic distortion: noise grid spacing in metres")
    elastic_magnitude: float = option(0.4, "elastic distortion: displacement magnitude in metres")
    hflip: float = option(0.5, "probability of a horizontal flip of the colour image")
    crop_scale_min: float = option(0.6, "random resized crop: minimum kept fraction of the image side")
    crop_hw: tuple[int, int] | None = option(
        None, "output size (H,W) of the random resized crop; None = image_hw"
    )
    color_auto_contrast: float = option(
        0.0, "3D input colours only (the teacher sees the real image): auto-contrast probability"
    )
    color_translation: float = option(0.0, "3D input colours: max |RGB offset|, fraction of the range")
    color_jitter_std: float = option(
        0.0, "3D input colours: std of per-point RGB noise, fraction of the range"
    )
    color_hue_max: float = option(0.0, "3D input colours: max |hue shift|, fraction of the hue circle")
    color_saturation_max: float = option(0.0, "3D input colours: max relative saturation change")

"""Colour augmentation of point clouds: auto-contrast, translation, jitter, hue and saturation.

The steps and their usual strengths (auto-contrast 0.2, translation 0.1, jitter 0.05, hue 0.5,
saturation 0.2) are those of the MinkowskiEngine ScanNet segmentation recipe that PointContrast,
CSC and PPKT fine-tune with. Fine-tuning (``ppkt.augment.points.SceneAugmentation``) and pretraining
(``ppkt.train.samples.augment_sample``, the 3D side only: the teacher keeps seeing the real image) share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ColorAugmentation:
    """Random colour changes of one point cloud; every strength 0 = off.

    Attributes:
        auto_contrast: probability of stretching each channel to the full range, blended with the
            original colours by a uniform random factor.
        translation: max |shift| of one RGB offset for the whole cloud, as a fraction of the range.
        jitter_std: std of per-point Gaussian RGB noise, as a fraction of the range.
        hue_max: max |shift| of the hue (one for the whole cloud), as a fraction of the hue circle.
        saturation_max: max relative change of the saturation (one for the whole cloud).
    """

    auto_contrast: float = 0.0
    translation: float = 0.0
    jitter_std: float = 0.0
    hue_max: float = 0.0
    saturation_max: float = 0.0

    @classmethod
    def from_config(cls, cfg) -> ColorAugmentation:
        """From an augmentation config's ``color_*`` fields (pretraining and fine-tuning name them alike)."""
        return cls(
            auto_contrast=cfg.color_auto_contrast,
            translation=cfg.color_translation,
            jitter_std=cfg.color_jitter_std,
            hue_max=cfg.color_hue_max,
            saturation_max=cfg.color_saturation_max,
        )

    @property
    def enabled(self) -> bool:
        return any((self.auto_contrast, self.translation, self.jitter_std, self.hue_max, self.saturation_max))

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(N, 3)`` RGB in [0, 1] -> augmented ``(N, 3)`` float64 RGB in [0, 1]."""
        rgb = np.asarray(rgb, dtype=np.float64)
        # Every draw happens whether or not its step is on, so that switching one step off does not
        # change the random numbers of the others.
        contrast_on, blend = rng.random() < self.auto_contrast, rng.random()
        shift = rng.uniform(-1.0, 1.0, size=3) * self.translation
        noise = rng.normal(0.0, 1.0, size=rgb.shape) * self.jitter_std
        hue_shift = rng.uniform(-1.0, 1.0) * self.hue_max
        saturation_factor = 1.0 + rng.uniform(-1.0, 1.0) * self.saturation_max
        if contrast_on and len(rgb):
            lo, hi = rgb.min(axis=0), rgb.max(axis=0)
            stretched = (rgb - lo) / np.where(hi > lo, hi - lo, 1.0)
            rgb = (1.0 - blend) * rgb + blend * stretched
        rgb = np.clip(rgb + shift + noise, 0.0, 1.0)
        if self.hue_max or self.saturation_max:
            hsv = rgb_to_hsv(rgb)
            hsv[:, 0] = (hsv[:, 0] + hue_shift) % 1.0
            hsv[:, 1] = np.clip(hsv[:, 1] * saturation_factor, 0.0, 1.0)
            rgb = hsv_to_rgb(hsv)
        return rgb


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """``(N, 3)`` RGB in [0, 1] to HSV in [0, 1] (hue as a fraction of the circle; grey has hue 0)."""
    top, bottom = rgb.max(axis=1), rgb.min(axis=1)
    spread = top - bottom
    safe = np.where(spread > 0, spread, 1.0)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    hue = np.where(top == r, (g - b) / safe, np.where(top == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = np.where(spread > 0, (hue / 6.0) % 1.0, 0.0)
    saturation = np.where(top > 0, spread / np.where(top > 0, top, 1.0), 0.0)
    return np.stack([hue, saturation, top], axis=1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_hsv`."""
    hue, saturation, value = hsv[:, 0] * 6.0, hsv[:, 1], hsv[:, 2]
    sector = np.floor(hue).astype(np.int64) % 6
    frac = hue - np.floor(hue)
    p = value * (1.0 - saturation)
    q = value * (1.0 - saturation * frac)
    t = value * (1.0 - saturation * (1.0 - frac))
    # (r, g, b) per sector of the hue circle
    table = np.stack(
        [
            np.stack([value, t, p], axis=1),
            np.stack([q, value, p], axis=1),
            np.stack([p, value, t], axis=1),
            np.stack([p, q, value], axis=1),
            np.stack([t, p, value], axis=1),
            np.stack([value, p, q], axis=1),
        ]
    )
    return table[sector, np.arange(len(hsv))]

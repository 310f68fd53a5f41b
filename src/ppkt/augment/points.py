"""Point-cloud augmentation: pretraining's (torch, points only, pairs stay valid) and fine-tuning's
(numpy, a labelled scene: crop, rotation, flips, scale, jitter, colours).

Both rotate about the up axis, mirror and scale with the same default strengths, but they are two
functions on purpose: sharing one would change the numbers of one of them (docs/architecture.md,
"Point augmentation: why two functions").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ppkt.augment.color import ColorAugmentation
from ppkt.augment.config import AugmentConfig
from ppkt.data.types import IGNORE_LABEL, LabeledScene


def rotation_about_axis(axis: Sequence[float], angle: float) -> torch.Tensor:
    """``(3, 3)`` float64 rotation by ``angle`` (rad, right-handed) about the unit ``axis``."""
    a = torch.tensor(axis, dtype=torch.float64)
    a = a / a.norm()
    x, y, z = a.tolist()
    c, s = math.cos(angle), math.sin(angle)
    skew = torch.tensor([[0, -z, y], [z, 0, -x], [-y, x, 0]], dtype=torch.float64)
    return c * torch.eye(3, dtype=torch.float64) + s * skew + (1 - c) * torch.outer(a, a)


def elastic_distortion(
    points: torch.Tensor, granularity: float, magnitude: float, generator: torch.Generator
) -> torch.Tensor:
    """Smooth random displacement field applied to ``points`` (N,3): noise on a coarse grid of
    spacing ``granularity``, blurred, trilinearly interpolated, scaled by ``magnitude``."""
    if points.shape[0] == 0:
        return points
    lo = points.min(0).values - 3 * granularity
    hi = points.max(0).values + 3 * granularity
    dims = ((hi - lo) / granularity).ceil().long() + 1
    noise = torch.randn((1, 3, *dims.tolist()), generator=generator, dtype=torch.float32)
    kernel = torch.ones(3, 1, 3, 3, 3) / 27.0
    for _ in range(2):
        noise = F.conv3d(noise, kernel, padding=1, groups=3)
    # grid_sample on a (D=x, H=y, W=z) volume takes coordinates ordered (z, y, x) in [-1, 1].
    rel = (points - lo) / (hi - lo)
    grid = (rel * 2 - 1).flip(-1).view(1, -1, 1, 1, 3).float()
    disp = F.grid_sample(noise, grid, mode="bilinear", align_corners=True).view(3, -1).t()
    return points + magnitude * disp.to(points.dtype)


def augment_points(
    points: torch.Tensor,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    generator: torch.Generator,
    *,
    up_axis: Sequence[float] = (0.0, -1.0, 0.0),
) -> torch.Tensor:
    """Rotate about ``up_axis``, scale, mirror x, optionally distort; returns new ``(N, 3)`` points
    in the same order (pairs stay valid)."""
    out = points.double()
    if cfg.rotate_up > 0:
        angle = float(rng.uniform(-cfg.rotate_up, cfg.rotate_up))
        out = out @ rotation_about_axis(up_axis, angle).t()
    if cfg.flip_3d > 0 and rng.random() < cfg.flip_3d:
        out = out * torch.tensor([-1.0, 1.0, 1.0], dtype=out.dtype)
    out = out * float(rng.uniform(cfg.scale_min, cfg.scale_max))
    if cfg.elastic:
        out = elastic_distortion(out, cfg.elastic_granularity, cfg.elastic_magnitude, generator)
    return out.float()


@dataclass(frozen=True)
class SceneAugmentation:
    """Training-time 3D augmentation of a labelled scene (z is up, as in ScanNet and lidar data).

    Order: crop, rotation about z, flips, isotropic scaling, jitter; then the colours: auto-contrast,
    translation, jitter, hue and saturation. Labels and colours follow their points; nothing is
    applied at evaluation.

    The colour steps and their default strengths are those of the MinkowskiEngine ScanNet
    segmentation recipe that the PPKT line of work fine-tunes with. They matter most for pretrained
    backbones, whose features, distilled from a 2D network, describe appearance: without them a
    head trained on one room learned "this floor's colour" instead of "floor"; with them the
    fine-tuning data no longer looks like what the features learned (both measured in
    docs/evaluation.md, "The effectiveness benchmark", parts 5 and 6).

    Attributes:
        max_points: keep at most this many points, the nearest to a random labelled point (any point
            when none is labelled; 0 = no crop). Centring on a labelled point matters for sparse
            budgets: 20 labelled points per room would otherwise fall outside most crops.
        rotate_up: max |angle| (rad) of a uniform rotation about z.
        flip: probability of mirroring x, and independently y.
        scale_min, scale_max: uniform isotropic scale range.
        jitter_std: std (m) of Gaussian noise added to every point, clipped at 3 std.
        color: colour augmentation (``ppkt.augment.color``); off by default here, on in
            the fine-tuning config.
    """

    max_points: int = 0
    rotate_up: float = math.pi
    flip: float = 0.5
    scale_min: float = 0.9
    scale_max: float = 1.1
    jitter_std: float = 0.005
    color: ColorAugmentation = ColorAugmentation()

    def __call__(self, scene: LabeledScene, rng: np.random.Generator) -> LabeledScene:
        points, colors, labels = scene.points, scene.colors, scene.labels
        if self.max_points and len(points) > self.max_points:
            labelled = np.flatnonzero(labels != IGNORE_LABEL)
            pool = labelled if len(labelled) else np.arange(len(points))
            centre = points[pool[rng.integers(len(pool))]]
            dist = np.square(points - centre).sum(axis=1)
            keep = np.sort(np.argpartition(dist, self.max_points - 1)[: self.max_points])
            points, colors, labels = points[keep], colors[keep], labels[keep]
        points = points.astype(np.float64)
        angle = rng.uniform(-self.rotate_up, self.rotate_up) if self.rotate_up > 0 else 0.0
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        mirror = np.ones(3)
        mirror[:2] = np.where(rng.random(2) < self.flip, -1.0, 1.0)
        scale = rng.uniform(self.scale_min, self.scale_max)
        points = (points @ rot.T) * mirror * scale
        if self.jitter_std > 0:
            noise = rng.normal(0.0, self.jitter_std, size=points.shape)
            points = points + np.clip(noise, -3 * self.jitter_std, 3 * self.jitter_std)
        return LabeledScene(
            points=points.astype(np.float32),
            colors=self._augment_colors(colors, rng),
            labels=labels,
            scene_id=scene.scene_id,
            class_names=scene.class_names,
        )

    def _augment_colors(self, colors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(N, 3)`` uint8 colours, augmented; the same array when every colour step is off."""
        if not self.color.enabled:
            return colors
        return np.round(self.color(colors.astype(np.float64) / 255.0, rng) * 255.0).astype(np.uint8)

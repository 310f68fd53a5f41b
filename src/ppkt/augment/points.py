"""Point-cloud augmentation: one random rotation/mirror/scale/jitter (:class:`PointAugmentation`)
used by pretraining (points only, so pairs stay valid; plus an optional elastic distortion), by
segmentation fine-tuning (:class:`SceneAugmentation`: crop, the points, colours) and by detection
(``ppkt.eval.detection.data.DetectionAugmentation``: boxes follow through :class:`SimilarityDraw`).
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


@dataclass(frozen=True)
class SimilarityDraw:
    """One drawn rotation about the up axis, mirroring and isotropic scale.

    Applied in that order: ``x -> ((R x) * mirror) * scale``, computed step by step in float64 (the
    order and precision every run of ppkt was measured with).

    Attributes:
        rotation: ``(3, 3)`` float64 rotation about the up axis by ``angle``.
        angle: the rotation angle (rad, right-handed about the up axis).
        mirror: ``(3,)`` float64 per-axis sign, -1 where the axis is mirrored; None = no mirroring.
        scale: isotropic scale factor.
    """

    rotation: torch.Tensor | None
    angle: float
    mirror: torch.Tensor | None
    scale: float

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        """``(N, 3)`` float64 points (or box centres), transformed."""
        out = points if self.rotation is None else points @ self.rotation.t()
        if self.mirror is not None:
            out = out * self.mirror
        return out * self.scale

    def heading(self, headings: np.ndarray) -> np.ndarray:
        """``(B,)`` headings (rad, about z, from +x) of boxes whose points moved by :meth:`apply`
        (z up): the rotation adds ``angle``; mirroring x maps ``h -> pi - h``, y ``h -> -h``."""
        out = headings + self.angle
        if self.mirror is not None:
            if self.mirror[0] < 0:
                out = np.pi - out
            if self.mirror[1] < 0:
                out = -out
        return out


@dataclass(frozen=True)
class PointAugmentation:
    """The one random rigid-and-scale point augmentation of pretraining, segmentation fine-tuning
    and detection: rotation about the up axis, mirroring of some axes, isotropic scale, jitter.

    Random numbers are drawn from the caller's numpy generator in a fixed order: the angle (when
    ``rotate_up > 0``), one number per axis in ``flip_axes`` (when ``flip > 0``), the scale, then
    the jitter (when ``jitter_std > 0``).

    Attributes:
        rotate_up: max |angle| (rad) of a uniform rotation about the up axis; 0 = off.
        flip: probability of mirroring each axis in ``flip_axes``, independently.
        flip_axes: the axes that may be mirrored (pretraining, camera frame: x; z-up scenes: x, y).
        scale_min, scale_max: uniform isotropic scale range.
        jitter_std: std (m) of Gaussian noise added to every point, clipped at 3 std; 0 = off.
    """

    rotate_up: float = math.pi
    flip: float = 0.5
    flip_axes: tuple[int, ...] = (0,)
    scale_min: float = 0.9
    scale_max: float = 1.1
    jitter_std: float = 0.0

    def draw(self, rng: np.random.Generator, up_axis: Sequence[float]) -> SimilarityDraw:
        """Draw one rotation, mirroring and scale (not the jitter)."""
        rotation, angle = None, 0.0
        if self.rotate_up > 0:
            angle = float(rng.uniform(-self.rotate_up, self.rotate_up))
            rotation = rotation_about_axis(up_axis, angle)
        mirror = None
        if self.flip > 0:
            flipped = rng.random(len(self.flip_axes)) < self.flip
            if flipped.any():
                mirror = torch.ones(3, dtype=torch.float64)
                for axis, is_flipped in zip(self.flip_axes, flipped, strict=True):
                    if is_flipped:
                        mirror[axis] = -1.0
        scale = float(rng.uniform(self.scale_min, self.scale_max))
        return SimilarityDraw(rotation, angle, mirror, scale)

    def jitter(self, points: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """``(N, 3)`` float64 points plus clipped Gaussian noise (the same points when off)."""
        if self.jitter_std <= 0:
            return points
        noise = rng.normal(0.0, self.jitter_std, size=tuple(points.shape))
        return points + torch.from_numpy(np.clip(noise, -3 * self.jitter_std, 3 * self.jitter_std))

    def __call__(
        self, points: torch.Tensor, rng: np.random.Generator, up_axis: Sequence[float]
    ) -> torch.Tensor:
        """``(N, 3)`` points (any float dtype) -> ``(N, 3)`` float64 augmented points, same order."""
        return self.jitter(self.draw(rng, up_axis).apply(points.double()), rng)


def pretraining_point_augmentation(cfg: AugmentConfig) -> PointAugmentation:
    """Pretraining's settings (``augment.*``): points in the camera frame, x may be mirrored."""
    return PointAugmentation(
        rotate_up=cfg.rotate_up, flip=cfg.flip_3d, flip_axes=(0,), scale_min=cfg.scale_min,
        scale_max=cfg.scale_max,
    )  # fmt: skip


def augment_points(
    points: torch.Tensor,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    generator: torch.Generator,
    *,
    up_axis: Sequence[float] = (0.0, -1.0, 0.0),
) -> torch.Tensor:
    """Pretraining: :class:`PointAugmentation` with ``cfg``, then the optional elastic distortion;
    returns new ``(N, 3)`` float32 points in the same order (pairs stay valid)."""
    out = pretraining_point_augmentation(cfg)(points, rng, up_axis)
    if cfg.elastic:
        out = elastic_distortion(out, cfg.elastic_granularity, cfg.elastic_magnitude, generator)
    return out.float()


Z_UP = (0.0, 0.0, 1.0)


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
        points = self.geometry(torch.from_numpy(points.astype(np.float64)), rng, Z_UP).numpy()
        return LabeledScene(
            points=points.astype(np.float32),
            colors=self._augment_colors(colors, rng),
            labels=labels,
            scene_id=scene.scene_id,
            class_names=scene.class_names,
        )

    @property
    def geometry(self) -> PointAugmentation:
        """The point part: rotation about z, x and y mirrored independently, scale, jitter."""
        return PointAugmentation(
            rotate_up=self.rotate_up, flip=self.flip, flip_axes=(0, 1), scale_min=self.scale_min,
            scale_max=self.scale_max, jitter_std=self.jitter_std,
        )  # fmt: skip

    def _augment_colors(self, colors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(N, 3)`` uint8 colours, augmented; the same array when every colour step is off."""
        if not self.color.enabled:
            return colors
        return np.round(self.color(colors.astype(np.float64) / 255.0, rng) * 255.0).astype(np.uint8)

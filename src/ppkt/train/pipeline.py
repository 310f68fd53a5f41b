"""From frames to a pretraining batch: pairs -> augmentation -> voxelisation -> collation.

    RGBDFrame ──rgbd_pairs──> points (depth camera frame) + pairs (point, image, uv)
              ──3D augmentation (points only: rotation about up, scale, mirror, elastic)
              ──2D augmentation (images: horizontal flip, random resized crop; pairs' uv remapped,
                                 pairs cropped out dropped)
              ──collate──> PretrainBatch (images, one voxelised sparse batch, global pair indices)

With a teacher feature cache (``teacher.cache``, written by ``ppkt cache-teacher``) the dataset also
reads each frame's cached ``(C, h, w)`` fp16 map (in the DataLoader workers) and keeps every pair's
un-augmented pixel (``pair_uv_teacher``): the cached map describes the un-augmented image resized to
``data.image_hw``, so the teacher side samples it there and 2D augmentation does not reach the
teacher (the 3D side and the choice of pairs are augmented as without a cache). A frame missing from
the cache carries its un-augmented image instead, and the main process runs the teacher on it.

Augmentations never reorder points or images, so a pair's ``point_index`` stays valid through
the 3D side and its remapped ``uv`` points at the same colour on the 2D side.

Randomness: every frame's augmentation draws from its own generator seeded by
``(seed, epoch, dataset index)``, so a batch is the same whatever the number of DataLoader
workers and whether the run was resumed.

The up axis: points are in the (depth) camera frame, OpenCV convention (x right, y down,
z forward), so for a roughly level camera "up" is ``-y`` and the rotation augmentation turns
the cloud about the camera's y axis (for a symmetric angle range, the sign does not matter).

Lidar + cameras (``LidarCameraSample`` from the nuScenes, KITTI and SemanticKITTI readers) go
through the same :func:`augment_sample` with ``lidar_camera_pairs`` computed at the training
image size, with the occlusion test sized by the lidar's beam spacing (:func:`lidar_sample`).
Input features are ``constant`` only, since lidar points carry no colour; the up axis of a lidar
frame is +z. A sample has one image per camera; the batch concatenates them all.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ppkt.data.color_augment import ColorAugmentation
from ppkt.data.report import FrameError
from ppkt.data.superpixels import Superpixels, superpixels_at
from ppkt.data.types import LidarCameraSample, RGBDFrame
from ppkt.train.config import AugmentConfig, DataConfig

if TYPE_CHECKING:
    from ppkt.teachers import TeacherFeatureCache
    from ppkt.train.scene_samples import SceneIndex

MIN_PAIRS_PER_FRAME = 2
"""Fewer usable pairs than this and the frame is skipped: with fewer than 2 there are no negatives."""

LIDAR_DEPTH_TOL = 2.0
"""Metres by which a lidar point may lie behind its image neighbours and still be paired
(the setting measured in benchmarks/bench_lidar_occlusion.py, ``ppkt.data.lidar_common.sample_pairs``)."""


@dataclass
class PretrainSample:
    """One augmented frame, ready for collation.

    Attributes:
        images: ``(K, 3, H, W)`` float32 RGB in ``[0, 1]``, after 2D augmentation (K = 1 for RGB-D).
        points: ``(N, 3)`` float32 augmented points (sensor frame, metres).
        features: ``(N, C)`` float32 per-point network input (``ppkt.backbones.input_features``).
        pair_point: ``(P,)`` long index into ``points``.
        pair_image: ``(P,)`` long index into ``images``.
        pair_uv: ``(P, 2)`` float32 pixel of each pair in the augmented image (pixel centres at integers).
        pair_uv_teacher: ``(P, 2)`` float32 pixel of each pair in the un-augmented image resized to
            ``data.image_hw`` (where cached teacher features are sampled).
        name: ``"<scene>/<frame>"`` or the sample id.
        skipped: reasons of the frames skipped in place of this one (see :class:`PretrainDataset`).
        teacher_features: with a cache, ``(C, h, w)`` float16 cached teacher map of the frame, or
            None when the frame is not cached (or no cache is used).
        teacher_image: with a cache and the frame not cached, its un-augmented ``(3, *data.image_hw)``
            image for the teacher; else None.
        teacher_image_hw: with a cache, ``data.image_hw`` (the frame of ``pair_uv_teacher``); else None.
        pair_superpixel: ``(P,)`` long superpixel of each pair's un-augmented pixel within its image
            (superpixel-infonce), else None.
    """

    images: torch.Tensor
    points: torch.Tensor
    features: torch.Tensor
    pair_point: torch.Tensor
    pair_image: torch.Tensor
    pair_uv: torch.Tensor
    name: str
    pair_uv_teacher: torch.Tensor | None = None
    skipped: list[str] = field(default_factory=list)
    teacher_features: torch.Tensor | None = None
    teacher_image: torch.Tensor | None = None
    teacher_image_hw: tuple[int, int] | None = None
    pair_superpixel: torch.Tensor | None = None


@dataclass
class PretrainBatch:
    """Several frames in one batch.

    Attributes:
        images: ``(I, 3, H, W)`` float32 RGB in ``[0, 1]`` (I = B for RGB-D; all cameras for lidar).
        image_frame: ``(I,)`` long, the frame of each image.
        coords: ``(M, 4)`` long voxel coordinates ``(batch, x, y, z)``.
        feats: ``(M, C)`` float32 voxel input features (mean over the voxel's points).
        point_to_voxel: ``(N,)`` long, the voxel of each concatenated point.
        point_offsets: ``(B + 1,)`` long; frame ``b`` owns points ``point_offsets[b]:point_offsets[b+1]``.
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
    coords: torch.Tensor
    feats: torch.Tensor
    point_to_voxel: torch.Tensor
    point_offsets: torch.Tensor
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
        "coords",
        "feats",
        "point_to_voxel",
        "point_offsets",
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
            **moved, names=self.names, skipped=self.skipped, teacher_image_hw=self.teacher_image_hw
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

    def sparse_tensor(self):
        """The batch's input :class:`ppkt.sparse.SparseTensor` (on the device of ``coords``)."""
        from ppkt.sparse import SparseTensor

        return SparseTensor(self.coords, self.feats)

    def pin_memory(self) -> PretrainBatch:
        return self._map(lambda t: t.pin_memory())


class FrameSkipped(Exception):
    """A frame that cannot be used (no pairs, unreadable); counted, never fatal."""


class UnusableFramesError(ValueError):
    """Too many unusable frames in a row: the data (or its config) is wrong, not one frame.

    One line naming the skip reasons and example files; a plain ``ValueError`` with one string
    argument, so it crosses DataLoader worker processes unchanged.
    """


# --------------------------------------------------------------------------------------------
# 3D augmentation (points only)


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


# --------------------------------------------------------------------------------------------
# 2D augmentation (images + pair pixels)


def resize_image(image: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """``(3, H, W)`` float -> ``(3, *out_hw)``, bilinear with pixel centres at integer ``uv``
    (``u' = (u + 0.5) * W'/W - 0.5``, docs/conventions.md); antialiased when shrinking."""
    if tuple(image.shape[1:]) == tuple(out_hw):
        return image
    return F.interpolate(image[None], size=out_hw, mode="bilinear", align_corners=False, antialias=True)[0]


def augment_image(
    image: torch.Tensor,
    uv: torch.Tensor,
    cfg: AugmentConfig,
    out_hw: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Horizontal flip and random resized crop of one image; remap pixel coordinates.

    Args:
        image: ``(3, H, W)`` float.
        uv: ``(P, 2)`` pixel coordinates in ``image``.
        out_hw: output size.

    Returns:
        (new image ``(3, *out_hw)``, new ``uv`` of the kept pairs ``(P', 2)``, kept ``(P,)`` bool).
    """
    H, W = int(image.shape[1]), int(image.shape[2])
    uv = uv.double()
    if cfg.hflip > 0 and rng.random() < cfg.hflip:
        image = image.flip(-1)
        uv = torch.stack([(W - 1) - uv[:, 0], uv[:, 1]], dim=1)
    side = float(rng.uniform(cfg.crop_scale_min, 1.0))
    crop_h = max(1, min(H, round(side * H)))
    crop_w = max(1, min(W, round(side * W)))
    y0 = int(rng.integers(0, H - crop_h + 1))
    x0 = int(rng.integers(0, W - crop_w + 1))
    image = image[:, y0 : y0 + crop_h, x0 : x0 + crop_w]
    u, v = uv[:, 0] - x0, uv[:, 1] - y0
    keep = (u >= -0.5) & (u < crop_w - 0.5) & (v >= -0.5) & (v < crop_h - 0.5)
    sx, sy = out_hw[1] / crop_w, out_hw[0] / crop_h
    new_uv = torch.stack([(u + 0.5) * sx - 0.5, (v + 0.5) * sy - 0.5], dim=1).float()
    # Rounding to float32 can land a border pixel exactly on the far edge: keep the promise "inside".
    keep &= (new_uv[:, 0] < out_hw[1] - 0.5) & (new_uv[:, 1] < out_hw[0] - 0.5)
    keep &= (new_uv[:, 0] >= -0.5) & (new_uv[:, 1] >= -0.5)
    return resize_image(image, out_hw), new_uv[keep], keep


# --------------------------------------------------------------------------------------------
# Frames -> samples


def color_at(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """``(P, 3)`` colour of the pixel containing each ``uv`` in a ``(3, H, W)`` image."""
    from ppkt.geometry import uv_to_ij

    ij = uv_to_ij(uv)
    H, W = int(image.shape[1]), int(image.shape[2])
    # One gather per colour plane: advanced indexing image[:, i, j] and row gathers from an
    # (H*W, 3) copy both measured 10-20x slower on a full-size frame's pairs (3-float rows).
    return image.reshape(3, H * W).index_select(1, ij[:, 0] * W + ij[:, 1]).t()


def depth_stride(depth_hw: Sequence[int], max_pixels: int | None) -> int:
    """The smallest stride ``s`` with ``ceil(h / s) * ceil(w / s) <= max_pixels`` (1 for None)."""
    if max_pixels is None:
        return 1
    h, w = int(depth_hw[0]), int(depth_hw[1])
    s = 1
    while math.ceil(h / s) * math.ceil(w / s) > max_pixels:
        s += 1
    return s


def strided_depth(depth: np.ndarray, K_depth: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``stride``-th row and column of a depth image, and its intrinsics.

    Pixel ``(i, j)`` of the result is pixel ``(s i, s j)`` of the input, so ``fx' = fx / s`` and
    ``cx' = cx / s`` (not the resize convention: nothing is averaged); its point is the same.
    """
    if stride == 1:
        return depth, K_depth
    K = np.array(K_depth, dtype=np.float64, copy=True)
    K[:2] /= stride
    return depth[::stride, ::stride], K


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise FrameSkipped(f"colour image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float() / 255.0


def augment_sample(
    points: torch.Tensor,
    images: list[torch.Tensor],
    pair_point: torch.Tensor,
    pair_image: torch.Tensor,
    pair_uv: torch.Tensor,
    point_colors: torch.Tensor | None,
    *,
    name: str,
    input_features: str,
    augment: AugmentConfig,
    out_hw: tuple[int, int],
    rng: np.random.Generator,
    up_axis: Sequence[float] = (0.0, -1.0, 0.0),
    pair_superpixel: torch.Tensor | None = None,
) -> PretrainSample:
    """Augment one frame (any number of images) and compute its per-point input features
    (``pair_superpixel (P,)``, when given, follows the kept pairs)."""
    from ppkt.backbones import input_features as make_features

    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    aug_points = augment_points(points, augment, rng, generator, up_axis=up_axis)
    if len(images) == 1:  # RGB-D: every pair is in the one image, no per-image selection
        image_out, kept_uv, keep_all = augment_image(images[0], pair_uv, augment, out_hw, rng)
        new_images = [image_out]
    else:
        new_images, keep_all, new_uv = [], torch.zeros(pair_point.shape[0], dtype=torch.bool), pair_uv.clone()
        for k, image in enumerate(images):
            sel = torch.nonzero(pair_image == k).squeeze(1)
            image_out, uv_out, keep = augment_image(image, pair_uv[sel], augment, out_hw, rng)
            new_images.append(image_out)
            kept = sel[keep]
            keep_all[kept] = True
            new_uv[kept] = uv_out
        kept_uv = new_uv[keep_all]
    if int(keep_all.sum()) < MIN_PAIRS_PER_FRAME:
        raise FrameSkipped(f"{name}: fewer than {MIN_PAIRS_PER_FRAME} pairs left after augmentation")
    color_augment = ColorAugmentation.from_config(augment)
    if point_colors is not None and color_augment.enabled:
        # The student must predict what the teacher sees in the real image from perturbed colours,
        # so its features cannot hinge on one room's exact colours (docs/pretraining.md).
        jittered = color_augment(point_colors.double().numpy(), rng)
        point_colors = torch.from_numpy(jittered).to(point_colors.dtype)
    features = make_features(input_features, aug_points, point_colors)
    return PretrainSample(
        images=torch.stack(new_images),
        points=aug_points,
        features=features,
        pair_point=pair_point[keep_all],
        pair_image=pair_image[keep_all],
        pair_uv=kept_uv,
        pair_uv_teacher=pair_uv[keep_all].float(),
        name=name,
        pair_superpixel=None if pair_superpixel is None else pair_superpixel[keep_all],
    )


def rgbd_sample(
    frame: RGBDFrame,
    data: DataConfig,
    augment: AugmentConfig,
    input_features: str,
    rng: np.random.Generator,
    *,
    keep_teacher_image: bool = False,
    superpixels: Superpixels | None = None,
) -> PretrainSample:
    """An augmented :class:`PretrainSample` from one RGB-D frame (colour resized to ``data.image_hw``).

    Depth images of more than ``data.max_depth_pixels`` pixels are read with a stride
    (:func:`depth_stride`); with the default None every valid depth pixel gives a point.

    ``keep_teacher_image`` keeps the un-augmented resized image in ``sample.teacher_image`` (for a
    frame missing from the teacher cache). With ``superpixels`` each pair carries the superpixel of
    its pixel in the un-augmented image (so crops and flips keep superpixels whole).
    """
    from ppkt.geometry import rgbd_pairs, scale_intrinsics

    name = f"{frame.scene_id}/{frame.frame_id}"
    image = resize_image(_image_tensor(frame.color), tuple(data.image_hw))
    K_color = scale_intrinsics(
        torch.as_tensor(frame.K_color, dtype=torch.float64), frame.color_hw, data.image_hw
    )
    depth = np.asarray(frame.depth)
    depth, K_depth = strided_depth(
        depth, np.asarray(frame.K_depth), depth_stride(depth.shape, data.max_depth_pixels)
    )
    depth = torch.from_numpy(np.nan_to_num(np.asarray(depth, dtype=np.float32), nan=0.0, posinf=0.0))
    pairs = rgbd_pairs(
        depth,
        torch.as_tensor(K_depth, dtype=torch.float64),
        K_color,
        tuple(data.image_hw),
        color_from_depth=torch.as_tensor(frame.color_from_depth, dtype=torch.float64),
        min_depth=data.min_depth,
        max_depth=data.max_depth,
    )
    if len(pairs) < MIN_PAIRS_PER_FRAME:
        raise FrameSkipped(f"{name}: {len(pairs)} pixel-point pairs (no valid depth in the colour view)")
    # rgbd_pairs gives one pair per point, in point order (point_index = arange): the point's
    # colour is its pixel's colour.
    colors = color_at(image, pairs.uv)
    points, up_axis = pairs.points, (0.0, -1.0, 0.0)
    if data.points_frame == "world" and frame.world_from_camera is not None:
        # Fine-tuning sees gravity-aligned scenes (z up); a 3D network pretrained on camera-frame
        # points (y down, tilted with the camera) would meet its vertical axis on another axis.
        # Measured on the synthetic rooms, see docs/pretraining.md.
        from ppkt.geometry import transform_points

        world_from_camera = torch.as_tensor(frame.world_from_camera, dtype=torch.float64)
        points, up_axis = transform_points(world_from_camera, points.double()).float(), (0.0, 0.0, 1.0)
    sample = augment_sample(
        points,
        [image],
        pairs.point_index,
        pairs.image_index,
        pairs.uv,
        colors,
        name=name,
        input_features=input_features,
        augment=augment,
        out_hw=_out_hw(data, augment),
        rng=rng,
        up_axis=up_axis,
        pair_superpixel=pair_superpixels(
            superpixels, [image], [(frame.scene_id, frame.frame_id)], pairs.image_index, pairs.uv
        ),
    )
    if keep_teacher_image:
        sample.teacher_image = image
    return sample


def lidar_sample(
    sample: LidarCameraSample,
    data: DataConfig,
    augment: AugmentConfig,
    input_features: str,
    rng: np.random.Generator,
    *,
    beam_spacing_deg: float | None = None,
    superpixels: Superpixels | None = None,
) -> PretrainSample:
    """An augmented :class:`PretrainSample` from a lidar sweep and its cameras (SLidR-style pairs).

    Every camera image is resized to ``data.image_hw`` first and the pairs are computed at that
    resolution (intrinsics scaled), which is also where the occlusion test runs: a point is paired
    only when no point within :func:`ppkt.data.lidar_common.occlusion_radius_px` pixels (from the
    lidar's ``beam_spacing_deg``; None = per-pixel z-buffer, for samples of unknown sensors) is
    more than :data:`LIDAR_DEPTH_TOL` metres nearer. Non-finite points (a corrupt sweep) are
    dropped. Lidar points have no colour: only ``input_features="constant"`` is supported here.
    """
    from ppkt.data.lidar_common import occlusion_radius_px
    from ppkt.data.types import CameraImage
    from ppkt.geometry import lidar_camera_pairs, scale_intrinsics

    if input_features != "constant":
        raise ValueError(
            f"lidar samples carry no colour; use student.input_features=constant, not {input_features}"
        )
    points = np.asarray(sample.points, dtype=np.float32)
    points = points[np.isfinite(points).all(axis=1)]
    hw = tuple(data.image_hw)
    # Pairs only need each camera's size: a read-only zero view stands in for the pixels.
    placeholder = np.broadcast_to(np.zeros((1, 1, 3), dtype=np.uint8), (*hw, 3))
    cameras, images, radius = [], [], 0
    for cam in sample.images:
        images.append(resize_image(_image_tensor(cam.image), hw))
        K = scale_intrinsics(torch.as_tensor(cam.K, dtype=torch.float64), cam.hw, hw).numpy()
        cameras.append(CameraImage(placeholder, K, cam.camera_from_lidar, cam.name))
        if beam_spacing_deg is not None:
            radius = max(radius, occlusion_radius_px(K, beam_spacing_deg))
    pairs = lidar_camera_pairs(
        torch.from_numpy(points), cameras, min_depth=1.0, radius_px=radius, depth_tol=LIDAR_DEPTH_TOL
    )
    if len(pairs) < MIN_PAIRS_PER_FRAME:
        raise FrameSkipped(f"{sample.sample_id}: {len(pairs)} lidar-camera pairs")
    return augment_sample(
        pairs.points,
        images,
        pairs.point_index,
        pairs.image_index,
        pairs.uv,
        None,
        name=sample.sample_id,
        input_features=input_features,
        augment=augment,
        out_hw=_out_hw(data, augment),
        rng=rng,
        up_axis=(0.0, 0.0, 1.0),
        pair_superpixel=pair_superpixels(
            superpixels,
            images,
            [(sample.sample_id, cam.name) for cam in sample.images],
            pairs.image_index,
            pairs.uv,
        ),
    )


def pair_superpixels(
    superpixels: Superpixels | None,
    images: Sequence[torch.Tensor],
    keys: Sequence[tuple[str, str]],
    pair_image: torch.Tensor,
    pair_uv: torch.Tensor,
) -> torch.Tensor | None:
    """``(P,)`` long superpixel of each pair's pixel in its (un-augmented) image, or None without
    ``superpixels``; ``keys`` name each image in the superpixel cache ``(scene_id, frame_id)``."""
    if superpixels is None:
        return None
    out = torch.zeros(pair_image.shape[0], dtype=torch.long)
    for k, (image, (scene_id, frame_id)) in enumerate(zip(images, keys, strict=True)):
        sel = pair_image == k
        if bool(sel.any()):
            hw = (int(image.shape[1]), int(image.shape[2]))
            out[sel] = superpixels_at(superpixels.labels(image, scene_id, frame_id, hw), pair_uv[sel])
    return out


def _out_hw(data: DataConfig, augment: AugmentConfig) -> tuple[int, int]:
    return tuple(augment.crop_hw) if augment.crop_hw is not None else tuple(data.image_hw)


class PretrainDataset(torch.utils.data.Dataset):
    """Turns a sequence of frames into augmented samples.

    Indexed by ``(index, epoch)`` keys (see :class:`StepBatchSampler`); the augmentation
    generator is seeded by ``(seed, epoch, index)``. An unusable frame (a reader's
    :class:`~ppkt.data.report.FrameError` such as a truncated sweep or an undecodable image, an
    OSError, no pairs) is replaced by the next frame of the sequence and its reason recorded in
    ``sample.skipped``; after ``max_consecutive_skips`` failures in a row it raises, naming them.
    Lidar samples use ``beam_spacing_deg`` (default: the reader's attribute of that name) for
    the occlusion test of their pairs.

    With ``teacher_cache`` (a :class:`ppkt.teachers.TeacherFeatureCache` at ``data.image_hw``,
    RGB-D frames only) each sample carries its frame's cached features read here, in the worker,
    or, for a frame not in the cache, its un-augmented image for the teacher. With ``superpixels``
    each pair carries its superpixel; with ``scenes`` (``data.pairs=scene``) a sample is the frame's
    scene cloud paired with several of its views (:mod:`ppkt.train.scene_samples`).
    """

    def __init__(
        self,
        frames: Sequence[RGBDFrame | LidarCameraSample],
        data: DataConfig,
        augment: AugmentConfig,
        input_features: str,
        *,
        seed: int,
        max_consecutive_skips: int = 16,
        beam_spacing_deg: float | None = None,
        teacher_cache: TeacherFeatureCache | None = None,
        superpixels: Superpixels | None = None,
        scenes: SceneIndex | None = None,
    ) -> None:
        if teacher_cache is not None and scenes is not None:
            raise ValueError(
                "data.pairs=scene does not read teacher.cache (a sample has several views); unset one"
            )
        if teacher_cache is not None and tuple(teacher_cache.manifest.image_hw) != tuple(data.image_hw):
            raise ValueError(
                f"{teacher_cache.root}: cached at {teacher_cache.manifest.image_hw}, data.image_hw is "
                f"{tuple(data.image_hw)}"
            )
        self.teacher_cache = teacher_cache
        self.superpixels = superpixels
        self.scenes = scenes
        self.frames = frames
        self.beam_spacing_deg = (
            getattr(frames, "beam_spacing_deg", None) if beam_spacing_deg is None else beam_spacing_deg
        )
        self.data = data
        self.augment = augment
        self.input_features = input_features
        self.seed = seed
        self.max_consecutive_skips = max_consecutive_skips

    def __len__(self) -> int:
        return len(self.frames)

    def _one(self, index: int, epoch: int) -> PretrainSample:
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.scenes is not None:
            from ppkt.train.scene_samples import scene_sample

            return scene_sample(
                self.frames, index, self.scenes, self.data, self.augment, self.input_features, rng,
                superpixels=self.superpixels,
            )  # fmt: skip
        frame = self.frames[index]
        if isinstance(frame, LidarCameraSample):
            if self.teacher_cache is not None:
                raise ValueError(
                    f"{frame.sample_id}: the teacher feature cache holds RGB-D frames only; "
                    "unset teacher.cache for lidar + camera data"
                )
            return lidar_sample(
                frame,
                self.data,
                self.augment,
                self.input_features,
                rng,
                beam_spacing_deg=self.beam_spacing_deg,
                superpixels=self.superpixels,
            )
        if self.teacher_cache is None:
            return rgbd_sample(
                frame, self.data, self.augment, self.input_features, rng, superpixels=self.superpixels
            )
        cached = self.teacher_cache.get(frame.scene_id, frame.frame_id)
        sample = rgbd_sample(
            frame,
            self.data,
            self.augment,
            self.input_features,
            rng,
            keep_teacher_image=cached is None,
            superpixels=self.superpixels,
        )
        sample.teacher_features = cached
        sample.teacher_image_hw = tuple(self.data.image_hw)
        return sample

    def _describe(self, index: int) -> str:
        describe = getattr(self.frames, "describe", None)
        return describe(index) if describe is not None else f"frame {index}"

    def __getitem__(self, key: tuple[int, int] | int) -> PretrainSample:
        index, epoch = key if isinstance(key, tuple) else (int(key), 0)
        skipped: list[str] = []  # "<file>: <reason> (<detail>)", as FrameError words it
        reasons: list[str] = []
        n = len(self.frames)
        for attempt in range(min(self.max_consecutive_skips, n)):
            i = (index + attempt) % n
            try:
                sample = self._one(i, epoch)
            except FrameError as err:  # names its file already
                skipped.append(str(err))
                reasons.append(err.reason)
                continue
            except (FrameSkipped, OSError) as err:
                text = str(err).partition(": ")[2] if isinstance(err, FrameSkipped) else str(err)
                skipped.append(f"{self._describe(i)}: {text or type(err).__name__}")
                # "12 pixel-point pairs (no valid depth ...)" and "3 pixel-point pairs" are one reason.
                reasons.append(re.sub(r"\d+", "N", text.split(" (")[0]) or type(err).__name__)
                continue
            sample.skipped = skipped
            return sample
        raise UnusableFramesError(unusable_summary(skipped, reasons, index, n))


def unusable_summary(skipped: Sequence[str], reasons: Sequence[str], index: int, num_frames: int) -> str:
    """One line: how many frames in a row were unusable, their reasons by count, example files."""
    counts = Counter(reasons)
    by_reason = ", ".join(f"{reason}: {count}" for reason, count in counts.most_common(3))
    return (
        f"{len(skipped)} consecutive unusable frames from frame {index} of {num_frames} ({by_reason}); "
        f"e.g. {'; '.join(skipped[:2])}; run ppkt check-data on the dataset"
    )


def _collate(samples, voxel_size, sparse_batch_from_points) -> PretrainBatch:
    sparse = sparse_batch_from_points([s.points for s in samples], [s.features for s in samples], voxel_size)
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
        coords=sparse.tensor.coords,
        feats=sparse.tensor.feats.detach(),
        point_to_voxel=sparse.point_to_voxel,
        point_offsets=point_offsets,
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
        from ppkt.sparse import sparse_batch_from_points

        if not samples or any(not isinstance(s, PretrainSample) for s in samples):
            raise TypeError("Collator expects a non-empty list of PretrainSample")
        return _collate(samples, self.voxel_size, sparse_batch_from_points)


class StepBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(index, epoch)`` keys as a pure function of the step number.

    Epoch ``e`` uses a permutation of the dataset drawn from ``(seed, e)``; rank ``r`` of
    ``world_size`` takes every ``world_size``-th item of it (disjoint shards); the last partial
    batch of an epoch is dropped so every rank makes the same number of steps. Starting at
    ``start_step`` resumes the data order exactly where a run stopped.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        seed: int,
        total_steps: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.total_steps, self.start_step = total_steps, start_step
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = (num_items // world_size) // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"{num_items} frames are fewer than batch_size {batch_size} x {world_size} processes; "
                "lower optim.batch_size or use more data"
            )

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def batch_for_step(self, step: int, _cache: dict | None = None) -> list[tuple[int, int]]:
        epoch, position = divmod(step, self.steps_per_epoch)
        perm = None if _cache is None else _cache.get(epoch)
        if perm is None:
            perm = torch.randperm(
                self.num_items, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch)
            )
            if _cache is not None:
                _cache.clear()
                _cache[epoch] = perm
        shard = perm[self.rank :: self.world_size]
        chosen = shard[position * self.batch_size : (position + 1) * self.batch_size]
        return [(int(i), epoch) for i in chosen]

    def __iter__(self):
        cache: dict = {}
        for step in range(self.start_step, self.total_steps):
            yield self.batch_for_step(step, cache)

"""From frames to pretraining samples: pairs -> augmentation (collation: :mod:`ppkt.train.batch`).

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
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ppkt.augment.color import ColorAugmentation
from ppkt.augment.config import AugmentConfig
from ppkt.augment.image import augment_image
from ppkt.augment.points import augment_points
from ppkt.backbones import input_features as make_features
from ppkt.data.images import prepare_image
from ppkt.data.lidar_common import occlusion_radius_px
from ppkt.data.superpixels import Superpixels, superpixels_at
from ppkt.data.types import CameraImage, LidarCameraSample, RGBDFrame
from ppkt.geometry import lidar_camera_pairs, rgbd_pairs, scale_intrinsics, transform_points, uv_to_ij
from ppkt.train.config import DataConfig

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


class FrameSkipped(Exception):
    """A frame that cannot be used (no pairs, unreadable); counted, never fatal."""


# --------------------------------------------------------------------------------------------
# Frames -> samples


def color_at(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """``(P, 3)`` colour of the pixel containing each ``uv`` in a ``(3, H, W)`` image."""
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


def training_image(color: np.ndarray, image_hw: Sequence[int]) -> torch.Tensor:
    """``(3, *image_hw)`` float32 un-augmented image of a frame: :func:`ppkt.data.images.prepare_image`
    (the teacher cache's preparation too); a bad image skips the frame."""
    try:
        return prepare_image(color, tuple(image_hw))
    except ValueError as err:
        raise FrameSkipped(str(err)) from None


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
    name = f"{frame.scene_id}/{frame.frame_id}"
    image = training_image(frame.color, data.image_hw)
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
    if input_features != "constant":
        raise ValueError(
            f"lidar samples carry no colour; use model.input_features=constant, not {input_features}"
        )
    points = np.asarray(sample.points, dtype=np.float32)
    points = points[np.isfinite(points).all(axis=1)]
    hw = tuple(data.image_hw)
    # Pairs only need each camera's size: a read-only zero view stands in for the pixels.
    placeholder = np.broadcast_to(np.zeros((1, 1, 3), dtype=np.uint8), (*hw, 3))
    cameras, images, radius = [], [], 0
    for cam in sample.images:
        images.append(training_image(cam.image, hw))
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

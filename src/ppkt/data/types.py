"""Typed containers for what the readers produce.

Every reader converts its dataset's conventions (depth units, axis order, pose direction)
into the project's conventions (docs/conventions.md) before filling these, so that no code
downstream of a reader ever branches on the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

IGNORE_LABEL = -1
"""Label value of points without a (mapped) class; excluded from losses and metrics."""


@dataclass
class RGBDFrame:
    """One RGB-D frame.

    Attributes:
        color: ``(H, W, 3)`` uint8 RGB image.
        depth: ``(h, w)`` float32 depth in metres (camera-frame z); 0 or non-finite = invalid.
            ``(h, w)`` may differ from ``(H, W)`` (ScanNet: 968x1296 colour, 480x640 depth).
        K_color: ``(3, 3)`` float64 intrinsics of the colour image.
        K_depth: ``(3, 3)`` float64 intrinsics of the depth image.
        world_from_camera: ``(4, 4)`` float64 camera-to-world pose, or None when unknown.
            The readers guarantee it is finite; invalid poses are skipped upstream.
        color_from_depth: ``(4, 4)`` float64 rigid transform from the depth camera frame to
            the colour camera frame (identity for registered RGB-D such as ScanNet exports).
        scene_id: scene (sequence) name.
        frame_id: frame name within the scene (e.g. "000125").
    """

    color: np.ndarray
    depth: np.ndarray
    K_color: np.ndarray
    K_depth: np.ndarray
    world_from_camera: np.ndarray | None
    scene_id: str
    frame_id: str
    color_from_depth: np.ndarray = field(default_factory=lambda: np.eye(4))

    @property
    def color_hw(self) -> tuple[int, int]:
        return int(self.color.shape[0]), int(self.color.shape[1])

    @property
    def depth_hw(self) -> tuple[int, int]:
        return int(self.depth.shape[0]), int(self.depth.shape[1])


@dataclass
class LabeledScene:
    """A labelled scene point cloud for downstream segmentation.

    Attributes:
        points: ``(N, 3)`` float32 xyz in metres (world frame of the scene).
        colors: ``(N, 3)`` uint8 RGB.
        labels: ``(N,)`` int64 class ids in ``[0, num_classes)``, or ``IGNORE_LABEL``.
        scene_id: scene name.
        class_names: names of the classes, index = label id.
    """

    points: np.ndarray
    colors: np.ndarray
    labels: np.ndarray
    scene_id: str
    class_names: tuple[str, ...] = ()

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])


@dataclass
class CameraImage:
    """One calibrated camera image of a lidar sample.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        K: ``(3, 3)`` float64 intrinsics.
        camera_from_lidar: ``(4, 4)`` float64 transform, ``p_camera = camera_from_lidar @ p_lidar``.
        name: camera name (e.g. "CAM_FRONT", "image_2").
    """

    image: np.ndarray
    K: np.ndarray
    camera_from_lidar: np.ndarray
    name: str

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass
class LidarCameraSample:
    """A lidar sweep with the camera images taken with it.

    Attributes:
        points: ``(N, 3)`` float32 xyz in the lidar frame, metres.
        intensity: ``(N,)`` float32 intensity/reflectance, or None.
        images: the calibrated camera images (may be empty for label-only use).
        labels: ``(N,)`` int64 mapped class ids or ``IGNORE_LABEL``, or None.
        sample_id: unique sample name (e.g. nuScenes sample token, "08/000123").
        class_names: names of the classes when labels are present.
    """

    points: np.ndarray
    intensity: np.ndarray | None
    images: list[CameraImage]
    labels: np.ndarray | None
    sample_id: str
    class_names: tuple[str, ...] = ()


class SceneSource(Protocol):
    """Where labelled scenes come from (fine-tuning, evaluation).

    Attributes:
        class_names: names of the classes, index = label id.
    """

    class_names: tuple[str, ...]

    def scene_ids(self, split: str) -> list[str]:
        """Scene ids of ``split`` ("train", "val", ...)."""
        ...

    def read(self, scene_id: str) -> LabeledScene:
        """The scene with its full labels (ids in ``[0, len(class_names))`` or IGNORE_LABEL)."""
        ...

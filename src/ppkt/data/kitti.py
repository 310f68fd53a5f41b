"""KITTI lidar + left colour camera (image_2): the object benchmark layout and the raw recordings.

Object benchmark, under ``root``::

    training/velodyne/000123.bin    float32 x, y, z, reflectance (4 per point), velodyne frame
    training/image_2/000123.png
    training/calib/000123.txt       P0..P3 (3x4), R0_rect (3x3), Tr_velo_to_cam (3x4), Tr_imu_to_velo
    ImageSets/{train,val,trainval,test}.txt   (optional frame lists)

Raw recordings, under ``root``::

    2011_09_26/calib_cam_to_cam.txt     P_rect_02 (3x4), R_rect_00 (3x3), ...
    2011_09_26/calib_velo_to_cam.txt    R (3x3), T (3)
    2011_09_26/2011_09_26_drive_0001_sync/velodyne_points/data/0000000000.bin
    2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png

KITTI projects a velodyne point into image 2 with ``P2 @ R0_rect @ Tr_velo_to_cam``: ``Tr`` goes to
the unrectified reference camera 0, ``R0_rect`` rotates into the rectified frame shared by all
four cameras, and ``P2 = K [I | t]`` holds camera 2's intrinsics plus its offset ``t`` from camera 0
(``P2[:, 3] = K t``, mostly the 6 cm baseline). ppkt splits this into a proper pinhole camera:
``K = P2[:, :3]`` and ``camera_from_lidar = [I | t] @ R0_rect @ Tr_velo_to_cam`` (a rigid transform,
so depth is the true camera-2 z).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppkt.data.lidar_common import (
    HDL64_BEAM_SPACING_DEG,
    RecordSamples,
    calibration_matrix,
    decompose_rectified_projection,
    homogeneous,
    load_rgb,
    read_calibration_text,
    read_float_records,
    require_file,
)
from ppkt.data.report import MISSING_FILE, FrameError
from ppkt.data.types import CameraImage, LidarCameraSample

KITTI_POINT_FIELDS = 4
KITTI_CAMERA_NAME = "image_2"


def rectified_camera_from_lidar(
    P: np.ndarray, rect_from_lidar: np.ndarray, path: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``K`` and ``camera_from_lidar`` of a rectified KITTI camera.

    Args:
        P: ``(3, 4)`` rectified projection of the camera (P2, P_rect_02).
        rect_from_lidar: ``(4, 4)`` velodyne -> rectified camera 0 (``R0_rect @ Tr_velo_to_cam``;
            the odometry/SemanticKITTI ``Tr`` already is this).

    Returns:
        ``K (3, 3)``, ``camera_from_lidar (4, 4)`` float64 with
        ``K @ camera_from_lidar[:3] == P @ rect_from_lidar``.
    """
    K, camera_from_rect = decompose_rectified_projection(P, path)
    return K, camera_from_rect @ rect_from_lidar


def read_kitti_object_calibration(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``K, camera_from_lidar`` of image_2 from a KITTI object ``calib/*.txt`` file."""
    path = Path(path)
    calib = read_calibration_text(path)
    P2 = calibration_matrix(calib, "P2", (3, 4), path)
    R0 = calibration_matrix(calib, "R0_rect", (3, 3), path)
    tr = calibration_matrix(calib, "Tr_velo_to_cam", (3, 4), path)
    return rectified_camera_from_lidar(P2, homogeneous(R0) @ homogeneous(tr), path)


def read_kitti_raw_calibration(date_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``K, camera_from_lidar`` of image_02 from a raw recording day's two calibration files."""
    date_dir = Path(date_dir)
    cam_path, velo_path = date_dir / "calib_cam_to_cam.txt", date_dir / "calib_velo_to_cam.txt"
    cam, velo = read_calibration_text(cam_path), read_calibration_text(velo_path)
    P2 = calibration_matrix(cam, "P_rect_02", (3, 4), cam_path)
    R0 = calibration_matrix(cam, "R_rect_00", (3, 3), cam_path)
    R = calibration_matrix(velo, "R", (3, 3), velo_path)
    T = calibration_matrix(velo, "T", (3, 1), velo_path)
    return rectified_camera_from_lidar(P2, homogeneous(R0) @ homogeneous(np.hstack([R, T])), cam_path)


def read_kitti_points(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 3)`` float32 xyz and ``(N,)`` float32 reflectance of a velodyne ``.bin``."""
    values = read_float_records(path, KITTI_POINT_FIELDS)
    return np.ascontiguousarray(values[:, :3]), np.ascontiguousarray(values[:, 3])


@dataclass(frozen=True)
class KittiFrameRecord:
    """Files of one KITTI frame; ``calibration`` is the calib file (object) or the day folder (raw)."""

    sample_id: str
    velodyne: Path
    image: Path
    calibration: Path


class _KittiSequence(RecordSamples):
    records: list[KittiFrameRecord]
    with_images: bool
    beam_spacing_deg: float = HDL64_BEAM_SPACING_DEG
    """Vertical angle between lidar beams, for :func:`ppkt.data.lidar_common.sample_pairs`."""

    def calibration(self, record: KittiFrameRecord) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def load(self, record: KittiFrameRecord) -> LidarCameraSample:
        points, reflectance = read_kitti_points(record.velodyne)
        images = []
        if self.with_images:
            K, camera_from_lidar = self.calibration(record)
            images.append(CameraImage(load_rgb(record.image), K, camera_from_lidar, KITTI_CAMERA_NAME))
        return LidarCameraSample(points, reflectance, images, None, record.sample_id)


class KittiObjectSamples(_KittiSequence):
    """KITTI object-benchmark frames as :class:`LidarCameraSample` with the image_2 camera.

    Args:
        root: folder holding ``training/`` (and/or ``testing/``) and optionally ``ImageSets/``.
        subset: "training" or "testing".
        image_set: name of an ``ImageSets/<name>.txt`` frame list ("train", "val", ...), or None
            for every ``velodyne/*.bin``.
        frame_ids: explicit frame ids (overrides ``image_set``).
        with_images: load image_2 and its calibration (False: points only).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        subset: str = "training",
        image_set: str | None = None,
        frame_ids: Sequence[str] | None = None,
        with_images: bool = True,
    ):
        self.root = Path(root)
        self.with_images = with_images
        base = self.root / subset
        if not (base / "velodyne").is_dir():
            raise FrameError(base / "velodyne", MISSING_FILE, "no KITTI velodyne folder")
        if frame_ids is None and image_set is not None:
            list_path = require_file(self.root / "ImageSets" / f"{image_set}.txt", "KITTI frame list")
            frame_ids = [line.strip() for line in list_path.read_text().splitlines() if line.strip()]
        if frame_ids is None:
            frame_ids = sorted(p.stem for p in (base / "velodyne").glob("*.bin"))
        self.records = [
            KittiFrameRecord(
                sample_id=f"{subset}/{frame_id}",
                velodyne=base / "velodyne" / f"{frame_id}.bin",
                image=base / "image_2" / f"{frame_id}.png",
                calibration=base / "calib" / f"{frame_id}.txt",
            )
            for frame_id in frame_ids
        ]

    def calibration(self, record: KittiFrameRecord) -> tuple[np.ndarray, np.ndarray]:
        return read_kitti_object_calibration(record.calibration)


class KittiRawSamples(_KittiSequence):
    """Synced KITTI raw recordings as :class:`LidarCameraSample` with the image_02 camera.

    Args:
        root: folder holding the day folders (``2011_09_26/`` ...).
        drives: drive folder names (``2011_09_26_drive_0001_sync``) to read; None = all found.
        frame_step: keep every ``frame_step``-th frame (consecutive 10 Hz frames are near-duplicates).
        with_images: load image_02 and its calibration.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        drives: Sequence[str] | None = None,
        frame_step: int = 1,
        with_images: bool = True,
    ):
        if frame_step < 1:
            raise ValueError(f"frame_step must be >= 1, got {frame_step}")
        self.root = Path(root)
        self.with_images = with_images
        found = sorted(p for p in self.root.glob("*/*_drive_*_sync") if p.is_dir())
        if drives is not None:
            by_name = {p.name: p for p in found}
            missing = [d for d in drives if d not in by_name]
            if missing:
                raise FrameError(self.root, MISSING_FILE, f"drives {missing} not found")
            found = [by_name[d] for d in drives]
        if not found:
            raise FrameError(
                self.root, MISSING_FILE, "no KITTI raw drive folders (<date>/<date>_drive_*_sync)"
            )
        self.records = []
        for drive in found:
            frames = sorted((drive / "velodyne_points" / "data").glob("*.bin"))[::frame_step]
            self.records += [
                KittiFrameRecord(
                    sample_id=f"{drive.name}/{f.stem}",
                    velodyne=f,
                    image=drive / "image_02" / "data" / f"{f.stem}.png",
                    calibration=drive.parent,
                )
                for f in frames
            ]
        self._calibration: dict[Path, tuple[np.ndarray, np.ndarray]] = {}

    def calibration(self, record: KittiFrameRecord) -> tuple[np.ndarray, np.ndarray]:
        if record.calibration not in self._calibration:
            self._calibration[record.calibration] = read_kitti_raw_calibration(record.calibration)
        K, camera_from_lidar = self._calibration[record.calibration]
        return K.copy(), camera_from_lidar.copy()

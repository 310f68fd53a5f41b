"""Shared pieces of the lidar + camera readers (nuScenes, KITTI, SemanticKITTI).

Binary point and label files, calibration text files, quaternions, rigid transforms and the
decomposition of a rectified KITTI projection matrix. Every reader error is a
:class:`ppkt.data.report.FrameError` naming the file, a reason (one of the constants below or in
``ppkt.data.report``) and details; ``ppkt check-data`` counts skipped samples by reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ppkt.data.images import DECODER_ERRORS
from ppkt.data.report import MISSING_FILE, TRUNCATED, UNDECODABLE, FrameError
from ppkt.geometry import lidar_camera_pairs

if TYPE_CHECKING:
    from ppkt.data.types import LidarCameraSample


# Skip reasons of the lidar readers, beside those of ppkt.data.report.
BAD_CALIBRATION = "bad calibration"
BAD_LABELS = "unknown label id"
LABEL_COUNT = "label count mismatch"
BAD_TABLE = "bad table"
MISSING_CAMERA = "missing camera"
NO_LIDAR = "no lidar key frame"


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FrameError(path, MISSING_FILE, what)
    return path


def read_float_records(path: str | Path, fields: int) -> np.ndarray:
    """Read a headerless little-endian float32 file of ``fields`` values per point.

    KITTI/SemanticKITTI ``.bin`` have 4 fields (x, y, z, reflectance), nuScenes ``.pcd.bin``
    have 5 (x, y, z, intensity, ring index).

    Returns:
        ``(N, fields)`` float32.

    Raises:
        FrameError: missing file, or a size that is not a whole number of records
            (a truncated download or a file with another record size).
    """
    path = Path(path)
    require_file(path, "point file")
    record = 4 * fields
    size = path.stat().st_size
    if size % record != 0:
        raise FrameError(
            path,
            TRUNCATED,
            f"size {size} bytes is not a multiple of {record} ({fields} float32 per point): "
            "truncated or not this dataset's point format",
        )
    return np.fromfile(path, dtype="<f4").reshape(-1, fields)


def read_uint_records(path: str | Path, dtype: str, expected_count: int | None = None) -> np.ndarray:
    """Read a headerless array of unsigned integers (labels), checking its length.

    Args:
        dtype: numpy dtype string, e.g. ``"<u4"`` (SemanticKITTI) or ``"u1"`` (nuScenes lidarseg).
        expected_count: number of points the labels belong to, if known.
    """
    path = Path(path)
    require_file(path, "label file")
    itemsize = np.dtype(dtype).itemsize
    size = path.stat().st_size
    if size % itemsize != 0:
        raise FrameError(path, TRUNCATED, f"size {size} bytes is not a multiple of {itemsize}")
    values = np.fromfile(path, dtype=dtype)
    if expected_count is not None and values.shape[0] != expected_count:
        raise FrameError(
            path, LABEL_COUNT, f"{values.shape[0]} labels for a point cloud of {expected_count} points"
        )
    return values


def map_labels(raw: np.ndarray, lut: np.ndarray, path: str | Path) -> np.ndarray:
    """Map raw label ids through a lookup table whose unknown entries are ``-2``.

    Entries of ``lut`` are target class ids, ``IGNORE_LABEL`` (-1) for known-but-ignored ids, or
    ``-2`` for ids the dataset does not define; a raw id outside the table or marked ``-2``
    is an error (a corrupt file or a different label definition), not a silent ignore.
    """
    raw = np.asarray(raw).astype(np.int64)
    in_table = (raw >= 0) & (raw < lut.shape[0])
    mapped = np.full(raw.shape, -2, dtype=np.int64)
    mapped[in_table] = lut[raw[in_table]]
    bad = mapped == -2
    if not bad.any():
        return mapped
    unknown = np.unique(raw[bad])
    raise FrameError(path, BAD_LABELS, f"ids {unknown[:10].tolist()} on {int(bad.sum())} points")


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB."""
    path = Path(path)
    require_file(path, "camera image")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except DECODER_ERRORS as error:
        raise FrameError(path, UNDECODABLE, str(error)) from error


def read_calibration_text(path: str | Path) -> dict[str, np.ndarray]:
    """Parse a KITTI-style ``key: v1 v2 ...`` calibration file into float64 arrays.

    Lines whose values are not all numbers (``calib_time: 09-Jan-2012 13:57:47``) are skipped;
    blank lines are allowed.
    """
    path = Path(path)
    require_file(path, "calibration file")
    values: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        if ":" not in line:
            continue
        key, _, rest = line.partition(":")
        try:
            numbers = np.array([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError:
            continue
        values[key.strip()] = numbers
    return values


def calibration_matrix(
    calib: dict[str, np.ndarray], key: str, shape: tuple[int, int], path: Path
) -> np.ndarray:
    """Fetch ``key`` from a parsed calibration file as a finite matrix of ``shape``."""
    if key not in calib:
        raise FrameError(path, BAD_CALIBRATION, f"missing calibration entry {key!r}")
    value = calib[key]
    if value.size != shape[0] * shape[1]:
        raise FrameError(
            path, BAD_CALIBRATION, f"{key} has {value.size} values, expected {shape[0] * shape[1]}"
        )
    if not np.isfinite(value).all():
        raise FrameError(path, BAD_CALIBRATION, f"{key} has non-finite values")
    return value.reshape(shape)


def homogeneous(matrix: np.ndarray) -> np.ndarray:
    """Embed a ``(3, 3)`` rotation or ``(3, 4)`` rigid matrix in a ``(4, 4)`` transform."""
    out = np.eye(4, dtype=np.float64)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


def quaternion_to_rotation(q_wxyz) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of a quaternion given as ``(w, x, y, z)`` (nuScenes order).

    The quaternion is normalised first (stored quaternions carry rounding error); a zero or
    non-finite quaternion raises ValueError.
    """
    q = np.asarray(q_wxyz, dtype=np.float64)
    norm = np.linalg.norm(q) if q.shape == (4,) else 0.0
    if q.shape != (4,) or not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"not a rotation quaternion (w, x, y, z): {q_wxyz!r}")
    w, x, y, z = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rigid_transform(rotation: np.ndarray, translation) -> np.ndarray:
    """``(4, 4)`` transform ``[R | t]`` (the parent-from-child pose of a sensor or vehicle)."""
    out = np.eye(4, dtype=np.float64)
    out[:3, :3] = rotation
    out[:3, 3] = np.asarray(translation, dtype=np.float64)
    return out


def invert_rigid(a_from_b: np.ndarray) -> np.ndarray:
    """``b_from_a`` of a rigid ``a_from_b`` (exact: uses the transpose of the rotation)."""
    rotation = a_from_b[:3, :3]
    out = np.eye(4, dtype=np.float64)
    out[:3, :3] = rotation.T
    out[:3, 3] = -rotation.T @ a_from_b[:3, 3]
    return out


def decompose_rectified_projection(P: np.ndarray, path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split a rectified KITTI projection ``P = K @ [I | t]`` into ``K`` and ``camera_from_rect``.

    The rectified cameras share the rotation of the reference camera 0; ``P[:, 3] = K @ t`` is the
    offset (mostly the stereo baseline) of this camera with respect to it, so ``t = K^-1 P[:, 3]``.
    Projecting with ``K @ camera_from_rect[:3]`` reproduces ``P`` exactly.

    Returns:
        ``K (3, 3)``, ``camera_from_rect (4, 4)`` (pure translation).
    """
    K = np.array(P[:, :3], dtype=np.float64)
    if abs(K[2, 2]) < 1e-12 or abs(K[0, 0]) < 1e-12 or abs(K[1, 1]) < 1e-12 or abs(K[1, 0]) > 1e-9:
        raise FrameError(path or Path("<calibration>"), BAD_CALIBRATION, f"not a rectified projection: {P}")
    # P[:, :3] can carry a scale in its last row (never in KITTI, but cheap to normalise).
    scale = K[2, 2]
    K = K / scale
    offset = np.asarray(P[:, 3], dtype=np.float64) / scale
    camera_from_rect = np.eye(4)
    camera_from_rect[:3, 3] = np.linalg.solve(K, offset)
    return K, camera_from_rect


# Vertical angle between neighbouring lidar beams (datasheet field of view / (beams - 1)).
HDL32_BEAM_SPACING_DEG = 41.33 / 31  # nuScenes LIDAR_TOP, Velodyne HDL-32E: +10.67 to -30.67 deg
HDL64_BEAM_SPACING_DEG = 26.9 / 63  # KITTI / SemanticKITTI, Velodyne HDL-64E: +2 to -24.9 deg


def occlusion_radius_px(K: np.ndarray, beam_spacing_deg: float) -> int:
    """Z-buffer neighbourhood radius that closes the gaps between lidar rows in an image.

    A sparse lidar leaves image rows ``fy * beam_spacing`` pixels apart; a hidden background point
    usually falls *between* the rows of the foreground object that hides it, so a per-pixel
    z-buffer (radius 0) never sees the two together. Half the row spacing puts each pixel within
    reach of the nearest foreground row (benchmarks/bench_lidar_occlusion.py measures it).
    """
    return max(0, int(round(0.5 * float(K[1, 1]) * np.deg2rad(beam_spacing_deg))))


def sample_pairs(
    sample: LidarCameraSample,
    *,
    beam_spacing_deg: float,
    min_depth: float = 1.0,
    occlusion: bool = True,
    depth_tol: float = 2.0,
):
    """Pixel<->point pairs of a lidar sample (``ppkt.geometry.lidar_camera_pairs`` on its cameras).

    With ``occlusion`` (the default), a point is paired with a camera only when no point within
    :func:`occlusion_radius_px` pixels is more than ``depth_tol`` metres nearer. On a ray-cast
    street (benchmarks/bench_lidar_occlusion.py, nuScenes geometry at 224x416) this removes
    5.6 % -> 0.15 % wrong pairs (lidar points hidden from the camera projected onto the occluder)
    for 5.6 % of the correct pairs; without a radius the z-buffer removes almost none.

    Args:
        beam_spacing_deg: vertical angle between lidar beams; the readers' ``beam_spacing_deg``.

    Returns:
        ``ppkt.geometry.Pairs`` with points in the lidar frame.
    """
    import torch

    points = torch.from_numpy(np.ascontiguousarray(sample.points, dtype=np.float32))
    if not sample.images:
        return lidar_camera_pairs(points, [], min_depth=min_depth, occlusion=False)
    # One radius for all cameras: those of a sample share their resolution (nuScenes, KITTI).
    radius = max(occlusion_radius_px(camera.K, beam_spacing_deg) for camera in sample.images)
    return lidar_camera_pairs(
        points, sample.images, min_depth=min_depth, occlusion=occlusion, radius_px=radius, depth_tol=depth_tol
    )


# ---------------------------------------------------------------------------------------------
# What ppkt check-data reports for the lidar formats (the scan itself: ppkt.data.lidar_check)
# ---------------------------------------------------------------------------------------------

EMPTY_CLOUD = "empty point cloud"
NON_FINITE = "non-finite points"
NO_PAIRS = "no lidar-camera pair"


def projected_point_count(sample: LidarCameraSample, min_depth: float = 1.0) -> int:
    """Points that land in at least one camera image with depth > ``min_depth`` (no occlusion test).

    A calibration error (a transposed rotation, a wrong camera) usually sends (nearly) all points
    out of the images, which this count shows without involving torch.
    """
    hit = np.zeros(sample.points.shape[0], dtype=bool)
    homogeneous_points = np.concatenate([sample.points, np.ones((sample.points.shape[0], 1))], axis=1)
    for camera in sample.images:
        cam = (camera.camera_from_lidar @ homogeneous_points.T)[:3]
        z = cam[2]
        in_front = z > min_depth
        uv = (camera.K @ cam[:, in_front])[:2] / z[in_front]
        h, w = camera.hw
        inside = (uv[0] >= -0.5) & (uv[0] < w - 0.5) & (uv[1] >= -0.5) & (uv[1] < h - 0.5)
        hit[np.flatnonzero(in_front)[inside]] = True
    return int(hit.sum())


class RecordSamples(Sequence["LidarCameraSample"]):
    """A lidar dataset as a Sequence: an index of records built once, samples read in ``load``.

    Subclasses set ``records`` and implement ``load(record)``; indexing reads the files, so a
    DataLoader worker decodes only what it is asked for.
    """

    records: list[Any]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> LidarCameraSample:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.load(self.records[index])

    def load(self, record: Any) -> LidarCameraSample:
        raise NotImplementedError

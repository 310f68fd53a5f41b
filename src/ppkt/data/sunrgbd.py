"""SUN RGB-D scenes with their oriented boxes, from VoteNet's ``sunrgbd_trainval`` export.

The export is what VoteNet's MATLAB scripts write from the official SUN RGB-D release
(votenet ``sunrgbd/matlab/extract_split.m`` and ``extract_rgbd_data_v2.m``, see docs/detection.md)::

    <root>/depth/<id>.mat          variable "instance": (N, 6) x, y, z, r, g, b; points in the
                                   **upright depth frame** (x right, y forward, z up, metres;
                                   the camera tilt Rtilt already applied), colours in [0, 1]
    <root>/calib/<id>.txt          line 1: Rtilt, line 2: K, 9 numbers each, column-major
                                   (MATLAB's ``(:)``); K in MATLAB's 1-based pixels
    <root>/label/<id>.txt          one object a line (below)
    <root>/image/<id>.jpg          the colour image
    <root>/train_data_idx.txt, val_data_idx.txt   the split: one integer id a line

``<id>`` is the six-digit image number (``000001``). A label line is
``class xmin ymin w2d h2d cx cy cz w l h ox oy`` (votenet ``sunrgbd/sunrgbd_utils.py``,
``SUNObject3d``): a 2D box, the 3D centre in the upright depth frame, **half** extents ``w``
along the box's y and ``l`` along its x, half height ``h``, and the direction ``(ox, oy)`` of the
box's x axis. In ppkt's conventions (docs/conventions.md) the box is centre ``(cx, cy, cz)``,
full size ``(2l, 2w, 2h)``, heading ``atan2(oy, ox)`` (VoteNet stores ``-atan2(oy, ox)`` and
rotates by its negative). Objects of classes outside the 10 benchmark classes are not
detection objects; malformed lines and bad boxes are counted, named skips.

The photo (:func:`read_sunrgbd_camera`): SUN RGB-D's toolbox (``read3dPoints.m``) made the points
from 1-based pixels ``(x, y)`` as ``(x - cx) z / fx, z, -(y - cy) z / fy`` (x right, y forward,
z up) and tilted them by ``Rtilt``. So the OpenCV camera frame is
``camera_from_upright = [[1, 0, 0], [0, 0, -1], [0, 1, 0]] @ Rtilt^T`` (as votenet
``sunrgbd_utils.py``, ``project_upright_depth_to_camera``) and ppkt's ``K`` (pixel centres at
integer, 0-based ``uv``) has ``cx - 1``, ``cy - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppkt.data.boxes import (
    SUNRGBD_DETECTION_CLASS_NAMES,
    Boxes3D,
    DetectionScene,
    SceneCamera,
    validate_boxes,
)


@dataclass(frozen=True)
class SunRGBDSkip:
    """A label line left out: the file, its line number (1-based), the reason
    ("malformed", "non-finite", "non-positive size")."""

    path: str
    line: int
    reason: str

    @property
    def what(self) -> str:
        return f"line {self.line}"


def read_sunrgbd_labels(path: str | Path) -> tuple[Boxes3D, list[SunRGBDSkip]]:
    """The benchmark-class boxes of one ``label/<id>.txt`` (ppkt conventions), and the skipped lines."""
    path = Path(path)
    skips: list[SunRGBDSkip] = []
    rows, line_numbers = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 13:
            skips.append(SunRGBDSkip(str(path), number, "malformed"))
            continue
        if fields[0] not in SUNRGBD_DETECTION_CLASS_NAMES:
            continue
        try:
            values = [float(x) for x in fields[1:13]]
        except ValueError:
            skips.append(SunRGBDSkip(str(path), number, "malformed"))
            continue
        cx, cy, cz, w, l, h, ox, oy = values[4:12]
        rows.append(
            (
                cx,
                cy,
                cz,
                2 * l,
                2 * w,
                2 * h,
                np.arctan2(oy, ox),
                SUNRGBD_DETECTION_CLASS_NAMES.index(fields[0]),
            )
        )
        line_numbers.append(number)
    table = np.array(rows, dtype=np.float64).reshape(-1, 8)
    boxes = Boxes3D(
        table[:, :3], table[:, 3:6], table[:, 6], table[:, 7].astype(np.int64), SUNRGBD_DETECTION_CLASS_NAMES
    )
    kept, issues = validate_boxes(boxes, len(SUNRGBD_DETECTION_CLASS_NAMES))
    skips += [SunRGBDSkip(str(path), line_numbers[i.index], i.reason) for i in issues]
    return kept, skips


def read_sunrgbd_points(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(points (N, 3) float32 metres, colours (N, 3) uint8)`` of one ``depth/<id>.mat``."""
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise ImportError("SUN RGB-D depth files are MATLAB .mat files: pip install scipy") from err
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    try:
        instance = np.asarray(loadmat(str(path))["instance"], dtype=np.float64)
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(
            f"{path}: not a sunrgbd_trainval depth file (variable 'instance': N x 6) ({err})"
        ) from err
    if instance.ndim != 2 or instance.shape[1] < 6:
        raise ValueError(f"{path}: 'instance' has shape {instance.shape}, expected (N, 6)")
    finite = np.isfinite(instance[:, :6]).all(1)
    instance = instance[finite]
    colors = instance[:, 3:6]
    scale = 255.0 if colors.max(initial=0.0) <= 1.0 else 1.0
    return instance[:, :3].astype(np.float32), np.clip(np.round(colors * scale), 0, 255).astype(np.uint8)


_CAMERA_FROM_UNTILTED = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""SUN RGB-D's untilted depth frame (x right, y forward, z up) to the OpenCV camera frame."""


def read_sunrgbd_calib(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(K (3, 3), camera_from_upright (4, 4))`` of one ``calib/<id>.txt`` in ppkt's conventions
    (0-based pixel centres, OpenCV camera frame; module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    try:
        if len(lines) < 2 or len(lines[0]) != 9 or len(lines[1]) != 9:
            raise ValueError("expected two lines of 9 numbers (Rtilt, K)")
        Rtilt = np.array([float(x) for x in lines[0]]).reshape(3, 3, order="F")
        K = np.array([float(x) for x in lines[1]]).reshape(3, 3, order="F")
    except ValueError as err:
        raise ValueError(f"{path}: not a SUN RGB-D calib file ({err})") from err
    if not (np.isfinite(Rtilt).all() and np.isfinite(K).all()) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{path}: Rtilt or K is not finite, or a focal length is not positive")
    K = K.copy()
    K[:2, 2] -= 1.0  # MATLAB's first pixel is 1
    camera_from_upright = np.eye(4)
    camera_from_upright[:3, :3] = _CAMERA_FROM_UNTILTED @ Rtilt.T
    return K, camera_from_upright


def read_sunrgbd_camera(root: str | Path, scene_id: str) -> SceneCamera:
    """The photo of a ``sunrgbd_trainval`` scene (``image/<id>.jpg``) with its calibration."""
    from PIL import Image

    root = Path(root)
    K, camera_from_upright = read_sunrgbd_calib(root / "calib" / f"{scene_id}.txt")
    path = root / "image" / f"{scene_id}.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    return SceneCamera(rgb, K, camera_from_upright, f"image/{scene_id}.jpg")


class SunRGBDDetectionSource:
    """``sunrgbd_trainval`` scenes: split ``s`` lists its ids in ``<root>/<s>_data_idx.txt``. Each
    point belongs to the first box that contains it (SUN RGB-D has no instance masks; VoteNet's
    votes come from the points inside each box the same way). Skipped label lines of the scenes
    read so far are in :attr:`skips`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset root not found")
        self.class_names = SUNRGBD_DETECTION_CLASS_NAMES
        self.skips: dict[str, list[SunRGBDSkip]] = {}

    def scene_ids(self, split: str) -> list[str]:
        path = self.root / f"{split}_data_idx.txt"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: split file not found (VoteNet's export writes train/val_data_idx.txt)"
            )
        try:
            return [f"{int(x):06d}" for x in path.read_text().split()]
        except ValueError as err:
            raise ValueError(f"{path}: expected one integer id a line ({err})") from err

    def read(self, scene_id: str) -> DetectionScene:
        points, colors = read_sunrgbd_points(self.root / "depth" / f"{scene_id}.mat")
        boxes, skips = read_sunrgbd_labels(self.root / "label" / f"{scene_id}.txt")
        self.skips[scene_id] = skips
        instance_ids = np.full(len(points), -1, dtype=np.int64)
        if len(boxes):
            inside = boxes.contains(points)
            has = inside.any(0)
            instance_ids[has] = inside[:, has].argmax(0)
        return DetectionScene(points, colors, boxes, instance_ids, scene_id)

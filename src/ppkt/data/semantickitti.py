"""SemanticKITTI: KITTI odometry sweeps with per-point semantic labels, plus image_2 for pairs.

Layout (``root`` may be the folder holding ``dataset/``, ``dataset/`` itself or ``sequences/``)::

    sequences/08/velodyne/000123.bin   float32 x, y, z, reflectance
    sequences/08/labels/000123.label   uint32 per point: lower 16 bits semantic id, upper 16 instance
    sequences/08/image_2/000123.png    (from the KITTI odometry colour images)
    sequences/08/calib.txt             P0..P3 (3x4), Tr (3x4): velodyne -> rectified camera 0

The 19 benchmark classes and the raw-id -> class map follow ``learning_map`` in the official
``config/semantic-kitti.yaml`` of github.com/PRBonn/semantic-kitti-api: moving objects join their
static class, bus/on-rails join other-vehicle, lane-marking joins road, and unlabeled, outlier,
other-structure and other-object are ignored. Class ids here are the yaml's 1..19 minus one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppkt.data.kitti import KITTI_CAMERA_NAME, read_kitti_points, rectified_camera_from_lidar
from ppkt.data.lidar_common import (
    HDL64_BEAM_SPACING_DEG,
    RecordSamples,
    calibration_matrix,
    homogeneous,
    load_rgb,
    map_labels,
    read_calibration_text,
    read_uint_records,
)
from ppkt.data.report import MISSING_FILE, FrameError
from ppkt.data.types import IGNORE_LABEL, CameraImage, LabeledScene, LidarCameraSample

SEMANTICKITTI19_CLASS_NAMES: tuple[str, ...] = (
    "car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist", "motorcyclist",
    "road", "parking", "sidewalk", "other-ground", "building", "fence", "vegetation", "trunk",
    "terrain", "pole", "traffic-sign",
)  # fmt: skip

# Raw semantic id -> benchmark class name (None = ignored). Every id the dataset defines is listed,
# so that an id outside this table is reported as a corrupt or foreign label file.
SEMANTICKITTI_RAW_TO_CLASS: dict[int, str | None] = {
    0: None,  # unlabeled
    1: None,  # outlier
    10: "car",
    11: "bicycle",
    13: "other-vehicle",  # bus
    15: "motorcycle",
    16: "other-vehicle",  # on-rails
    18: "truck",
    20: "other-vehicle",
    30: "person",
    31: "bicyclist",
    32: "motorcyclist",
    40: "road",
    44: "parking",
    48: "sidewalk",
    49: "other-ground",
    50: "building",
    51: "fence",
    52: None,  # other-structure
    60: "road",  # lane-marking
    70: "vegetation",
    71: "trunk",
    72: "terrain",
    80: "pole",
    81: "traffic-sign",
    99: None,  # other-object
    252: "car",  # moving-car
    253: "bicyclist",  # moving-bicyclist
    254: "person",  # moving-person
    255: "motorcyclist",  # moving-motorcyclist
    256: "other-vehicle",  # moving-on-rails
    257: "other-vehicle",  # moving-bus
    258: "truck",  # moving-truck
    259: "other-vehicle",  # moving-other-vehicle
}

# Official sequence split (semantic-kitti.yaml); 11-21 have no public labels.
SEMANTICKITTI_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("00", "01", "02", "03", "04", "05", "06", "07", "09", "10"),
    "val": ("08",),
    "test": tuple(f"{i:02d}" for i in range(11, 22)),
}


def semantickitti_lut() -> np.ndarray:
    """Lookup table raw semantic id (0..259) -> class id / IGNORE_LABEL; undefined ids -> -2."""
    lut = np.full(max(SEMANTICKITTI_RAW_TO_CLASS) + 1, -2, dtype=np.int64)
    for raw, name in SEMANTICKITTI_RAW_TO_CLASS.items():
        lut[raw] = IGNORE_LABEL if name is None else SEMANTICKITTI19_CLASS_NAMES.index(name)
    return lut


def read_semantickitti_labels(path: str | Path, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` int64 class ids (or IGNORE_LABEL) and ``(N,)`` int64 instance ids of a ``.label``."""
    raw = read_uint_records(path, "<u4", expected_count=num_points)
    semantic = (raw & 0xFFFF).astype(np.int64)
    return map_labels(semantic, _LUT, path), (raw >> 16).astype(np.int64)


_LUT = semantickitti_lut()


def read_semantickitti_calibration(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``K, camera_from_lidar`` of image_2 from a sequence's ``calib.txt`` (``Tr`` is already rectified)."""
    path = Path(path)
    calib = read_calibration_text(path)
    P2 = calibration_matrix(calib, "P2", (3, 4), path)
    tr = calibration_matrix(calib, "Tr", (3, 4), path)
    return rectified_camera_from_lidar(P2, homogeneous(tr), path)


def is_sequences_dir(path: Path) -> bool:
    """Whether ``path`` holds sequence folders (two-digit names) with a ``velodyne/`` folder."""
    return path.is_dir() and any(
        p.name.isdigit() and len(p.name) == 2 and (p / "velodyne").is_dir() for p in path.iterdir()
    )


def find_sequences_dir(root: str | Path) -> Path:
    root = Path(root)
    for candidate in (root / "dataset" / "sequences", root / "sequences", root):
        if is_sequences_dir(candidate):
            return candidate
    raise FrameError(
        root, MISSING_FILE, "no SemanticKITTI sequences (expected [dataset/]sequences/XX/velodyne)"
    )


@dataclass(frozen=True)
class SemanticKittiFrameRecord:
    sample_id: str
    velodyne: Path
    label: Path
    image: Path
    calibration: Path


class SemanticKittiSamples(RecordSamples):
    """SemanticKITTI sweeps as :class:`LidarCameraSample`.

    Args:
        root: see the module docstring.
        split: "train", "val" or "test" (official sequences), or None when ``sequences`` is given.
        sequences: explicit sequence names ("00", "08", ...); default: those of ``split`` that
            exist (all found when both are None).
        with_labels: read ``labels/*.label`` mapped to :data:`SEMANTICKITTI19_CLASS_NAMES`.
        with_images: load image_2 and its calibration (for pretraining pairs).
        frame_step: keep every ``frame_step``-th sweep.
    """

    beam_spacing_deg: float = HDL64_BEAM_SPACING_DEG
    """Vertical angle between lidar beams, for :func:`ppkt.data.lidar_common.sample_pairs`."""

    def __init__(
        self,
        root: str | Path,
        *,
        split: str | None = None,
        sequences: Sequence[str] | None = None,
        with_labels: bool = True,
        with_images: bool = False,
        frame_step: int = 1,
    ):
        if frame_step < 1:
            raise ValueError(f"frame_step must be >= 1, got {frame_step}")
        self.sequences_dir = find_sequences_dir(root)
        self.with_labels = with_labels
        self.with_images = with_images
        if sequences is None:
            found = sorted(p.name for p in self.sequences_dir.iterdir() if (p / "velodyne").is_dir())
            if split is not None:
                if split not in SEMANTICKITTI_SPLITS:
                    raise ValueError(
                        f"unknown SemanticKITTI split {split!r}; use {sorted(SEMANTICKITTI_SPLITS)}"
                    )
                found = [s for s in found if s in SEMANTICKITTI_SPLITS[split]]
                if not found:
                    raise FrameError(self.sequences_dir, MISSING_FILE, f"no sequence of split {split!r}")
            sequences = found
        self.records: list[SemanticKittiFrameRecord] = []
        self._calibration: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
        for seq in sequences:
            seq_dir = self.sequences_dir / seq
            if not (seq_dir / "velodyne").is_dir():
                raise FrameError(seq_dir / "velodyne", MISSING_FILE, "no velodyne folder for this sequence")
            for f in sorted((seq_dir / "velodyne").glob("*.bin"))[::frame_step]:
                self.records.append(
                    SemanticKittiFrameRecord(
                        sample_id=f"{seq}/{f.stem}",
                        velodyne=f,
                        label=seq_dir / "labels" / f"{f.stem}.label",
                        image=seq_dir / "image_2" / f"{f.stem}.png",
                        calibration=seq_dir / "calib.txt",
                    )
                )

    def load(self, record: SemanticKittiFrameRecord) -> LidarCameraSample:
        points, reflectance = read_kitti_points(record.velodyne)
        labels = None
        if self.with_labels:
            labels, _ = read_semantickitti_labels(record.label, points.shape[0])
        images = []
        if self.with_images:
            if record.calibration not in self._calibration:
                self._calibration[record.calibration] = read_semantickitti_calibration(record.calibration)
            K, camera_from_lidar = self._calibration[record.calibration]
            images.append(
                CameraImage(load_rgb(record.image), K.copy(), camera_from_lidar.copy(), KITTI_CAMERA_NAME)
            )
        return LidarCameraSample(
            points=points,
            intensity=reflectance,
            images=images,
            labels=labels,
            sample_id=record.sample_id,
            class_names=SEMANTICKITTI19_CLASS_NAMES if labels is not None else (),
        )


class SemanticKittiSceneSource:
    """SemanticKITTI sweeps as labelled "scenes" for ``ppkt.eval`` (its ``SceneSource``).

    A scene id is ``"<sequence>/<frame>"`` (e.g. ``"08/000123"``); splits are the official ones
    (train, val, test); colours are zeros (use input features ``constant``).
    """

    class_names: tuple[str, ...] = SEMANTICKITTI19_CLASS_NAMES

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.sequences_dir = find_sequences_dir(root)

    def scene_ids(self, split: str) -> list[str]:
        return [r.sample_id for r in SemanticKittiSamples(self.root, split=split).records]

    def read(self, scene_id: str) -> LabeledScene:
        sequence, _, frame = scene_id.partition("/")
        seq_dir = self.sequences_dir / sequence
        record = SemanticKittiFrameRecord(
            sample_id=scene_id,
            velodyne=seq_dir / "velodyne" / f"{frame}.bin",
            label=seq_dir / "labels" / f"{frame}.label",
            image=seq_dir / "image_2" / f"{frame}.png",
            calibration=seq_dir / "calib.txt",
        )
        points, _ = read_kitti_points(record.velodyne)
        labels, _ = read_semantickitti_labels(record.label, points.shape[0])
        return LabeledScene(
            points=points,
            colors=np.zeros((points.shape[0], 3), dtype=np.uint8),
            labels=labels,
            scene_id=scene_id,
            class_names=self.class_names,
        )

"""Generic RGB-D sequences: Microsoft 7-Scenes (and the tsdf-fusion layout) and TUM RGB-D.

7-Scenes / tsdf-fusion, any folder under ``root`` holding frames::

    <seq>/frame-000000.color.png (or .jpg)   colour
    <seq>/frame-000000.depth.png             uint16 millimetres; 0 and 65535 are invalid
    <seq>/frame-000000.pose.txt              4x4 camera-to-world (= world_from_camera)
    camera-intrinsics.txt                    3x3 K, in <seq> or any parent up to root (optional;
                                             default: 7-Scenes' fx = fy = 585, cx = 320, cy = 240)

7-Scenes' depth is not registered to its colour camera (a few pixels of offset); like most users
we treat the two as one camera (``color_from_depth`` = identity, the same K).

TUM RGB-D, one sequence per folder::

    <seq>/rgb.txt, depth.txt                 "timestamp path" lines ('#' comments); paths relative to <seq>
    <seq>/groundtruth.txt                    "t tx ty tz qx qy qz qw": the colour camera in the world
    <seq>/rgb/*.png, depth/*.png             depth is uint16 at 5000 units per metre, 0 invalid

Colour and depth are associated by nearest timestamp (at most ``max_time_diff`` apart) and each
colour frame gets the nearest ground-truth pose (at most ``max_pose_diff`` away); frames without
one are skipped ("missing pose"). Without ``groundtruth.txt`` (TUM's validation sequences) the
pose is None. TUM's depth is registered to colour, so both share K.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ppkt.data.images import (
    FileRGBDFrames,
    FrameRecord,
    intrinsics_problem,
    read_intrinsics_txt,
    read_pose_txt,
)
from ppkt.data.report import (
    BAD_INTRINSICS,
    INVALID_POSE,
    MISSING_FILE,
    MISSING_POSE,
    UNMATCHED,
    UNREADABLE,
    DataReport,
    FrameError,
)

SEVEN_SCENES_K = np.array([[585.0, 0.0, 320.0], [0.0, 585.0, 240.0], [0.0, 0.0, 1.0]])
"""7-Scenes' published intrinsics (640x480), used when no camera-intrinsics.txt is found."""

TUM_INTRINSICS: dict[str, tuple[float, float, float, float]] = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
    "default": (525.0, 525.0, 319.5, 239.5),
}
"""TUM RGB-D colour intrinsics (fx, fy, cx, cy) per Freiburg camera, from the dataset's web page.

The sequence folder name (``rgbd_dataset_freiburg1_xyz``) picks the camera; otherwise ``default``
(the ROS default TUM recommends for the already registered depth). Lens distortion (fr1, fr2) is
ignored.
"""


def _as_K(K: np.ndarray | Sequence[Sequence[float]], source: str) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"{source}: K must be 3x3, got shape {K.shape}")
    problem = intrinsics_problem(K)
    if problem:
        raise ValueError(f"{source}: {problem}")
    return K


def _select(items: list, frame_skip: int) -> list:
    if frame_skip < 1:
        raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
    return items[::frame_skip]


def find_seven_scenes_sequences(root: Path) -> list[Path]:
    """Folders under ``root`` (itself included) that contain ``frame-*.pose.txt`` files, sorted."""
    found = []
    for folder, _dirs, files in os.walk(root):
        if any(name.startswith("frame-") and name.endswith(".pose.txt") for name in files):
            found.append(Path(folder))
    return sorted(found)


class SevenScenesFrames(FileRGBDFrames):
    """7-Scenes / tsdf-fusion sequences under ``root``: a Sequence / torch Dataset of RGBDFrame.

    Args:
        root: a sequence folder, or a folder with sequences anywhere below it.
        frame_skip: keep every ``frame_skip``-th frame of each sequence.
        K: intrinsics for every sequence; default: ``camera-intrinsics.txt`` or ``SEVEN_SCENES_K``.
        depth_scale: depth units per metre (1000).
        strict: raise on the first bad frame instead of skipping it.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        frame_skip: int = 1,
        K: np.ndarray | None = None,
        depth_scale: float = 1000.0,
        strict: bool = False,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset folder not found")
        self.report = DataReport(root=str(self.root), format="7scenes")
        self.records = []
        given_K = _as_K(K, "K") if K is not None else None
        for seq_dir in find_seven_scenes_sequences(self.root):
            seq_K = given_K if given_K is not None else self._find_K(seq_dir, frame_skip, strict)
            if seq_K is None:
                continue
            self._index_sequence(seq_dir, seq_K, frame_skip, depth_scale, strict)
        self.report.frames_usable = len(self.records)

    def _find_K(self, seq_dir: Path, frame_skip: int, strict: bool) -> np.ndarray | None:
        for folder in (seq_dir, *seq_dir.parents):
            candidate = folder / "camera-intrinsics.txt"
            if candidate.is_file():
                try:
                    return read_intrinsics_txt(candidate)
                except FrameError as err:
                    if strict:
                        raise
                    count = len(_select(self._frame_ids(seq_dir), frame_skip))
                    self.report.frames_found += count
                    for _ in range(count):
                        self.report.add_skip(FrameError(err.path, BAD_INTRINSICS, err.detail))
                    return None
            if folder == self.root:
                break
        note = "no camera-intrinsics.txt: using 7-Scenes' fx=fy=585, cx=320, cy=240"
        if note not in self.report.notes:
            self.report.notes.append(note)
        return SEVEN_SCENES_K

    @staticmethod
    def _frame_ids(seq_dir: Path) -> list[str]:
        names = os.listdir(seq_dir)
        ids = {n[: -len(".pose.txt")] for n in names if n.startswith("frame-") and n.endswith(".pose.txt")}
        ids |= {n[: -len(".depth.png")] for n in names if n.startswith("frame-") and n.endswith(".depth.png")}
        return sorted(ids)

    def _index_sequence(
        self, seq_dir: Path, K: np.ndarray, frame_skip: int, depth_scale: float, strict: bool
    ):
        names = set(os.listdir(seq_dir))
        scene_id = seq_dir.relative_to(self.root).as_posix() if seq_dir != self.root else seq_dir.name
        for stem in _select(self._frame_ids(seq_dir), frame_skip):
            self.report.frames_found += 1
            try:
                color_name = next(
                    (f"{stem}.color{s}" for s in (".png", ".jpg") if f"{stem}.color{s}" in names), None
                )
                if color_name is None:
                    raise FrameError(seq_dir / f"{stem}.color.png", MISSING_FILE)
                if f"{stem}.depth.png" not in names:
                    raise FrameError(seq_dir / f"{stem}.depth.png", MISSING_FILE)
                pose = read_pose_txt(seq_dir / f"{stem}.pose.txt")
            except FrameError as err:
                self._skip(err, strict)
                continue
            self.records.append(
                FrameRecord(
                    scene_id=scene_id,
                    frame_id=stem[len("frame-") :],
                    color_path=str(seq_dir / color_name),
                    depth_path=str(seq_dir / f"{stem}.depth.png"),
                    K_color=K,
                    K_depth=K,
                    world_from_camera=pose,
                    depth_scale=depth_scale,
                )
            )


def read_tum_list(path: Path) -> tuple[np.ndarray, list[list[str]]]:
    """Read a TUM list file: (timestamps (N,) float64, remaining fields per line)."""
    times, fields = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            times.append(float(parts[0]))
        except ValueError as err:
            raise ValueError(f"{path}:{number}: bad timestamp {parts[0]!r}") from err
        fields.append(parts[1:])
    return np.array(times, dtype=np.float64), fields


def nearest(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query time, the index of the nearest reference time and |difference| (reference sorted)."""
    if reference.size == 0:
        return np.zeros(query.shape, dtype=np.int64), np.full(query.shape, np.inf)
    right = np.clip(np.searchsorted(reference, query), 0, reference.size - 1)
    left = np.clip(right - 1, 0, reference.size - 1)
    take_left = np.abs(query - reference[left]) < np.abs(query - reference[right])
    index = np.where(take_left, left, right)
    return index, np.abs(query - reference[index])


def quaternion_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(x, y, z, w)`` -> ``(3, 3)`` rotation matrix (Hamilton convention)."""
    x, y, z, w = np.asarray(q_xyzw, dtype=np.float64) / np.linalg.norm(q_xyzw)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def tum_default_K(seq_dir: Path) -> tuple[np.ndarray, str]:
    name = seq_dir.resolve().name
    camera = next((key for key in ("freiburg1", "freiburg2", "freiburg3") if key in name), "default")
    fx, fy, cx, cy = TUM_INTRINSICS[camera]
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), camera


def find_tum_sequences(root: Path) -> list[Path]:
    """``root`` if it holds rgb.txt and depth.txt, else its sub-folders that do, sorted."""
    if (root / "rgb.txt").is_file() and (root / "depth.txt").is_file():
        return [root]
    return sorted(p.parent for p in root.glob("*/rgb.txt") if (p.parent / "depth.txt").is_file())


class TumFrames(FileRGBDFrames):
    """TUM RGB-D sequences: a Sequence / torch Dataset of RGBDFrame.

    Args:
        root: a sequence folder (with rgb.txt, depth.txt) or a folder of such folders.
        K: colour (= registered depth) intrinsics; default: from ``TUM_INTRINSICS`` by the folder name
            (freiburg1: fx 517.3, fy 516.5, cx 318.6, cy 255.3; freiburg2: 520.9, 521.0, 325.1, 249.7;
            freiburg3: 535.4, 539.2, 320.1, 247.6; otherwise 525.0, 525.0, 319.5, 239.5).
        depth_scale: depth units per metre (TUM: 5000).
        frame_skip: keep every ``frame_skip``-th colour frame.
        max_time_diff: largest colour-depth timestamp difference in seconds (TUM's associate.py: 0.02).
        max_pose_diff: largest colour-pose timestamp difference in seconds.
        strict: raise on the first bad frame instead of skipping it.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        K: np.ndarray | None = None,
        depth_scale: float = 5000.0,
        frame_skip: int = 1,
        max_time_diff: float = 0.02,
        max_pose_diff: float = 0.02,
        strict: bool = False,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset folder not found")
        self.report = DataReport(root=str(self.root), format="tum")
        self.records = []
        sequences = find_tum_sequences(self.root)
        if not sequences:
            raise FileNotFoundError(f"{self.root}: no TUM sequence (a folder with rgb.txt and depth.txt)")
        for seq_dir in sequences:
            if K is not None:
                seq_K = _as_K(K, "K")
            else:
                seq_K, camera = tum_default_K(seq_dir)
                self.report.notes.append(f"{seq_dir.name}: {camera} intrinsics {TUM_INTRINSICS[camera]}")
            try:
                self._index_sequence(
                    seq_dir, seq_K, depth_scale, frame_skip, max_time_diff, max_pose_diff, strict
                )
            except (ValueError, OSError) as err:
                if strict or isinstance(err, FrameError):
                    raise
                # A broken list file loses its sequence, not the whole dataset.
                self.report.frames_found += 1
                self.report.add_skip(FrameError(seq_dir, UNREADABLE, str(err)))
        self.report.frames_usable = len(self.records)

    def _index_sequence(self, seq_dir, K, depth_scale, frame_skip, max_time_diff, max_pose_diff, strict):
        rgb_times, rgb_fields = read_tum_list(seq_dir / "rgb.txt")
        depth_times, depth_fields = read_tum_list(seq_dir / "depth.txt")
        depth_order = np.argsort(depth_times)
        depth_times, depth_fields = depth_times[depth_order], [depth_fields[i] for i in depth_order]
        gt_path = seq_dir / "groundtruth.txt"
        if gt_path.is_file():
            gt_times, gt_fields = read_tum_list(gt_path)
            gt_order = np.argsort(gt_times)
            gt_times, gt_fields = gt_times[gt_order], [gt_fields[i] for i in gt_order]
        else:
            gt_times, gt_fields = None, []
            self.report.notes.append(f"{seq_dir.name}: no groundtruth.txt, poses are None")
        keep = _select(list(range(len(rgb_times))), frame_skip)
        depth_index, depth_diff = nearest(rgb_times[keep], depth_times)
        if gt_times is not None:
            gt_index, gt_diff = nearest(rgb_times[keep], gt_times)
        listed: dict[Path, set[str]] = {}

        def exists(path: Path) -> bool:
            if path.parent not in listed:
                listed[path.parent] = set(os.listdir(path.parent)) if path.parent.is_dir() else set()
            return path.name in listed[path.parent]

        for k, i in enumerate(keep):
            self.report.frames_found += 1
            color_path = seq_dir / rgb_fields[i][0]
            try:
                if depth_diff[k] > max_time_diff:
                    raise FrameError(color_path, UNMATCHED, f"no depth within {max_time_diff} s")
                depth_path = seq_dir / depth_fields[depth_index[k]][0]
                for path in (color_path, depth_path):
                    if not exists(path):
                        raise FrameError(path, MISSING_FILE)
                pose = None
                if gt_times is not None:
                    if gt_diff[k] > max_pose_diff:
                        raise FrameError(
                            color_path, MISSING_POSE, f"no ground truth within {max_pose_diff} s"
                        )
                    pose = self._pose(gt_fields[gt_index[k]], gt_path)
            except FrameError as err:
                self._skip(err, strict)
                continue
            self.records.append(
                FrameRecord(
                    scene_id=seq_dir.name,
                    frame_id=f"{rgb_times[i]:.6f}",
                    color_path=str(color_path),
                    depth_path=str(depth_path),
                    K_color=K,
                    K_depth=K,
                    world_from_camera=pose,
                    depth_scale=depth_scale,
                )
            )

    @staticmethod
    def _pose(fields: list[str], source: Path) -> np.ndarray:
        try:
            values = np.array(fields[:7], dtype=np.float64)
        except ValueError as err:
            raise FrameError(source, INVALID_POSE, str(err)) from err
        if values.size != 7 or not np.all(np.isfinite(values)):
            raise FrameError(source, INVALID_POSE, f"expected 7 finite numbers, got {fields}")
        norm = np.linalg.norm(values[3:])
        if abs(norm - 1.0) > 0.01:
            raise FrameError(source, INVALID_POSE, f"quaternion norm {norm:.4f} is not 1")
        pose = np.eye(4)
        pose[:3, :3] = quaternion_to_matrix(values[3:])
        pose[:3, 3] = values[:3]
        return pose

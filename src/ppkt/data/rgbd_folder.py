"""A folder of RGB-D frames of your own (phone, RealSense, Kinect exports): the ``rgbd-folder`` format.

Layout, one sequence per folder (or a folder of such sequence folders)::

    <seq>/rgbd.yaml            camera description (below); rgbd.yml or rgbd.json also work
    <seq>/color/<id>.jpg|png   colour images (``colour/`` also works)
    <seq>/depth/<id>.png       16-bit depth PNGs; 0 and 65535 are invalid (as in every reader)
    <seq>/pose/<id>.txt        optional: 4x4 camera-to-world (world_from_camera), 16 numbers

Frames are matched by file name without the extension (``000120.jpg`` with ``000120.png``) and
sorted numerically when the names are numbers. ``rgbd.yaml`` (YAML, or the same keys as JSON)::

    color_intrinsics: [fx, fy, cx, cy]    # pixels of the colour images (required)
    depth_intrinsics: [fx, fy, cx, cy]    # pixels of the depth images (default: color_intrinsics)
    depth_scale: 1000                     # depth PNG units per metre (required: 1000 = millimetres)
    color_from_depth: [[...], ...]        # optional 4x4 depth camera -> colour camera (default: identity)

Colour and depth may differ in size; each keeps its own intrinsics. Poses are SLAM-style (the
world is wherever the tracker started), so the reader rotates them to a z-up world with
``up_axis`` (``ppkt.data.gravity``). Without ``pose/`` every pose is None and pretraining uses
the camera frame. A bad file is a counted, named skip; a bad ``rgbd.yaml`` loses its sequence.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppkt.data.images import (
    COLOR_SUFFIXES,
    FileRGBDFrames,
    FrameRecord,
    files_by_stem,
    intrinsics_problem,
    pose_problem,
    read_pose_txt,
)
from ppkt.data.report import BAD_INTRINSICS, MISSING_FILE, MISSING_POSE, DataReport, FrameError

CAMERA_FILES = ("rgbd.yaml", "rgbd.yml", "rgbd.json")
COLOR_FOLDERS = ("color", "colour")



@dataclass(frozen=True)
class FolderCamera:
    """What ``rgbd.yaml`` says.

    Attributes:
        K_color: ``(3, 3)`` colour intrinsics.
        K_depth: ``(3, 3)`` depth intrinsics.
        depth_scale: depth PNG units per metre.
        color_from_depth: ``(4, 4)`` depth camera -> colour camera.
    """

    K_color: np.ndarray
    K_depth: np.ndarray
    depth_scale: float
    color_from_depth: np.ndarray


def _K(values, path: Path, key: str) -> np.ndarray:
    try:
        fx, fy, cx, cy = (float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise FrameError(path, BAD_INTRINSICS, f"{key} must be [fx, fy, cx, cy], got {values!r}") from err
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    problem = intrinsics_problem(K)
    if problem:
        raise FrameError(path, BAD_INTRINSICS, f"{key}: {problem}")
    return K


def read_camera_file(path: str | Path) -> FolderCamera:
    """Parse an ``rgbd.yaml`` / ``rgbd.json``; raises FrameError (bad intrinsics) naming the key."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except FileNotFoundError as err:
        raise FrameError(path, MISSING_FILE) from err
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
        raise FrameError(path, BAD_INTRINSICS, f"not readable: {err}".splitlines()[0]) from err
    if not isinstance(data, dict):
        raise FrameError(path, BAD_INTRINSICS, "expected a mapping with color_intrinsics and depth_scale")
    unknown = sorted(set(data) - {"color_intrinsics", "depth_intrinsics", "depth_scale", "color_from_depth"})
    if unknown:
        raise FrameError(path, BAD_INTRINSICS, f"unknown keys {unknown}")
    for key in ("color_intrinsics", "depth_scale"):
        if key not in data:
            raise FrameError(path, BAD_INTRINSICS, f"{key} is required")
    K_color = _K(data["color_intrinsics"], path, "color_intrinsics")
    K_depth = (
        _K(data["depth_intrinsics"], path, "depth_intrinsics") if "depth_intrinsics" in data else K_color
    )
    try:
        depth_scale = float(data["depth_scale"])
    except (TypeError, ValueError):
        depth_scale = float("nan")
    if not np.isfinite(depth_scale) or depth_scale <= 0:
        raise FrameError(
            path, BAD_INTRINSICS, f"depth_scale must be a positive number, got {data['depth_scale']!r}"
        )
    color_from_depth = np.eye(4)
    if data.get("color_from_depth") is not None:
        try:
            color_from_depth = np.array(data["color_from_depth"], dtype=np.float64).reshape(4, 4)
        except (TypeError, ValueError) as err:
            raise FrameError(path, BAD_INTRINSICS, f"color_from_depth must be 4x4 numbers ({err})") from err
        problem = pose_problem(color_from_depth)
        if problem:
            raise FrameError(path, BAD_INTRINSICS, f"color_from_depth: {problem}")
    return FolderCamera(K_color, K_depth, depth_scale, color_from_depth)


def camera_file(folder: Path) -> Path | None:
    return next((folder / name for name in CAMERA_FILES if (folder / name).is_file()), None)


def is_sequence(folder: Path) -> bool:
    return camera_file(folder) is not None and any((folder / name).is_dir() for name in COLOR_FOLDERS)


def find_sequences(root: Path) -> list[Path]:
    """``root`` if it is a sequence, else its sub-folders that are, sorted."""
    if is_sequence(root):
        return [root]
    if not root.is_dir():
        return []
    return sorted(
        Path(entry.path) for entry in os.scandir(root) if entry.is_dir() and is_sequence(Path(entry.path))
    )


def _sort_key(stem: str) -> tuple[int, int | str]:
    return (0, int(stem)) if stem.isdigit() else (1, stem)


class RGBDFolderFrames(FileRGBDFrames):
    """``rgbd-folder`` sequences under ``root``: a Sequence / torch Dataset of RGBDFrame.

    Args:
        root: a sequence folder (with ``rgbd.yaml``) or a folder of them.
        frame_skip: keep every ``frame_skip``-th frame of each sequence.
        strict: raise on the first bad file instead of counting it.
    """

    def __init__(self, root: str | Path, *, frame_skip: int = 1, strict: bool = False):
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset folder not found")
        self.report = DataReport(root=str(self.root), format="rgbd-folder")
        self.records: list[FrameRecord] = []
        sequences = find_sequences(self.root)
        if not sequences:
            raise FileNotFoundError(
                f"{self.root}: no rgbd-folder sequence (a folder with rgbd.yaml and color/, "
                "see docs/your-own-data.md)"
            )
        for seq_dir in sequences:
            self._index_sequence(seq_dir, frame_skip, strict)
        self.report.frames_usable = len(self.records)

    def _index_sequence(self, seq_dir: Path, frame_skip: int, strict: bool) -> None:
        color_dir = next(seq_dir / name for name in COLOR_FOLDERS if (seq_dir / name).is_dir())
        colors = files_by_stem(color_dir, COLOR_SUFFIXES)
        depths = files_by_stem(seq_dir / "depth", (".png",))
        has_poses = (seq_dir / "pose").is_dir()
        poses = files_by_stem(seq_dir / "pose", (".txt",)) if has_poses else {}
        stems = sorted(set(colors) | set(depths), key=_sort_key)[::frame_skip]
        scene_id = seq_dir.name if seq_dir == self.root else seq_dir.relative_to(self.root).as_posix()
        try:
            camera = read_camera_file(camera_file(seq_dir))
        except FrameError as err:
            if strict:
                raise
            self.report.frames_found += len(stems)
            for _ in stems:
                self.report.add_skip(err)
            return
        if not has_poses:
            self.report.notes.append(f"{scene_id}: no pose/ folder, poses are None (camera-frame points)")
        for stem in stems:
            self.report.frames_found += 1
            try:
                if stem not in colors:
                    raise FrameError(
                        color_dir / f"{stem}.jpg", MISSING_FILE, "no colour image for this depth"
                    )
                if stem not in depths:
                    raise FrameError(
                        seq_dir / "depth" / f"{stem}.png", MISSING_FILE, "no depth for this colour image"
                    )
                pose = None
                if has_poses:
                    if stem not in poses:
                        raise FrameError(seq_dir / "pose" / f"{stem}.txt", MISSING_POSE)
                    pose = read_pose_txt(seq_dir / "pose" / poses[stem])
            except FrameError as err:
                self._skip(err, strict)
                continue
            self.records.append(
                FrameRecord(
                    scene_id=scene_id,
                    frame_id=stem,
                    color_path=str(color_dir / colors[stem]),
                    depth_path=str(seq_dir / "depth" / depths[stem]),
                    K_color=camera.K_color,
                    K_depth=camera.K_depth,
                    world_from_camera=pose,
                    depth_scale=camera.depth_scale,
                    color_from_depth=camera.color_from_depth,
                )
            )


def write_rgbd_folder(
    folder: str | Path,
    colors: list[np.ndarray],
    depths_mm: list[np.ndarray],
    K_color: np.ndarray,
    K_depth: np.ndarray | None = None,
    poses: list[np.ndarray] | None = None,
    *,
    depth_scale: float = 1000.0,
) -> Path:
    """Write a small ``rgbd-folder`` sequence (tests, examples): JPEG colour, 16-bit PNG depth."""
    from PIL import Image

    folder = Path(folder)
    for name in ("color", "depth") + (("pose",) if poses is not None else ()):
        (folder / name).mkdir(parents=True, exist_ok=True)

    def four(K: np.ndarray) -> list[float]:
        return [float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])]

    camera = {"color_intrinsics": four(K_color), "depth_scale": float(depth_scale)}
    if K_depth is not None:
        camera["depth_intrinsics"] = four(K_depth)
    (folder / "rgbd.json").write_text(json.dumps(camera, indent=2))
    for i, (color, depth) in enumerate(zip(colors, depths_mm, strict=True)):
        Image.fromarray(color).save(folder / "color" / f"{i:06d}.jpg", quality=95)
        Image.fromarray(np.asarray(depth, dtype=np.uint16)).save(folder / "depth" / f"{i:06d}.png")
        if poses is not None:
            np.savetxt(folder / "pose" / f"{i:06d}.txt", poses[i])
    return folder

"""ScanNet v2: exported RGB-D frames, labelled scene meshes, and the official splits.

Exported-frames layout (what ScanNet's ``SensReader`` writes; also ``ppkt synth``)::

    <root>/scannetv2_train.txt, scannetv2_val.txt      scene names, one a line (optional)
    <root>/<scene>/color/<i>.jpg                       colour, e.g. 1296x968
    <root>/<scene>/depth/<i>.png                       uint16 depth in millimetres, e.g. 640x480
    <root>/<scene>/pose/<i>.txt                        4x4 camera-to-world (= world_from_camera)
    <root>/<scene>/intrinsic/intrinsic_color.txt       4x4; the top-left 3x3 is K
    <root>/<scene>/intrinsic/intrinsic_depth.txt       (scannet_frames_25k: <scene>/intrinsics_*.txt)
    <root>/<scene>/<scene>_vh_clean_2.ply              mesh vertices x y z red green blue
    <root>/<scene>/<scene>_vh_clean_2.labels.ply       vertex ``label`` = NYU40 id

``<i>`` is the frame number in the raw stream (``0``, ``25``, or zero-padded ``000025``).
Real ScanNet has poses full of ``-inf`` (tracking lost); those frames are skipped and counted.
The colour and depth cameras of the exports are registered, so ``color_from_depth`` is identity,
but their intrinsics differ: each image gets its own K.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ppkt.data.images import (
    COLOR_SUFFIXES,
    FileRGBDFrames,
    FrameRecord,
    files_by_stem,
    read_intrinsics_txt,
    read_pose_txt,
)
from ppkt.data.ply import read_ply_vertices
from ppkt.data.report import (
    BAD_INTRINSICS,
    MISSING_FILE,
    UNREADABLE,
    DataReport,
    FrameError,
    every_kth_frame,
)
from ppkt.data.scannet_classes import NYU40_LABEL_SETS, read_label_tsv
from ppkt.data.scannet_classes import label_set as scannet_label_set
from ppkt.data.types import LabeledScene

PAPER_FRAME_SKIP = 25
"""PPKT uses every 25th frame of the ScanNet stream for pretraining."""



def scannet_split(root: str | Path, split: str) -> list[str]:
    """Scene names of ``split`` from ``<root>/scannetv2_<split>.txt`` (``split`` = "train", "val", ...)."""
    path = Path(root) / f"scannetv2_{split}.txt"
    try:
        lines = path.read_text().split()
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{path}: split file not found (ScanNet ships scannetv2_train.txt / scannetv2_val.txt; "
            "copy them to the dataset root or pass scenes explicitly)"
        ) from err
    if not lines:
        raise ValueError(f"{path}: split file is empty")
    return lines


def list_scenes(root: str | Path) -> list[str]:
    """Scene folders of ``root`` (those with a ``color/`` folder), sorted; ``["."]`` if root is a scene."""
    root = Path(root)
    if (root / "color").is_dir():
        return ["."]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    return sorted(
        entry.name for entry in os.scandir(root) if entry.is_dir() and (Path(entry.path) / "color").is_dir()
    )


def _intrinsics_path(scene_dir: Path, camera: str) -> Path:
    """SensReader's ``intrinsic/intrinsic_<camera>.txt``, else ``intrinsics_<camera>.txt`` (frames_25k)."""
    candidates = [
        scene_dir / "intrinsic" / f"intrinsic_{camera}.txt",
        scene_dir / f"intrinsics_{camera}.txt",
        scene_dir / f"intrinsic_{camera}.txt",
    ]
    return next((path for path in candidates if path.is_file()), candidates[0])


def _frame_sort_key(frame_id: str) -> tuple[int, int | str]:
    return (0, int(frame_id)) if frame_id.isdigit() else (1, frame_id)


def _read_frame_list(path: Path) -> dict[str, set[str]]:
    """``<scene> <frame>`` or ``<scene>/<frame>`` per line -> {scene: {frame ids}} (ids compared as ints)."""
    selected: dict[str, set[str]] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace("/", " ").split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: expected '<scene> <frame>', got {line!r}")
        scene, frame = parts
        selected.setdefault(scene, set()).add(str(int(frame)) if frame.isdigit() else frame)
    return selected


class ScanNetFrames(FileRGBDFrames):
    """The RGB-D frames of exported ScanNet scenes: a Sequence / torch Dataset of RGBDFrame.

    Indexing lists the folders and reads the pose files once; images are decoded in
    ``__getitem__``. Frames with a missing file, an invalid pose (non-finite or not rigid) or a
    scene with unreadable intrinsics are left out and counted in ``self.report``; with
    ``strict=True`` the first such problem raises :class:`FrameError` instead.

    Args:
        root: dataset root (folders ``<scene>/``) or a single scene folder.
        scenes: scene names to read (default: all, or those of ``split``).
        split: read ``<root>/scannetv2_<split>.txt`` for the scene names.
        frame_skip: keep frames whose number is a multiple of ``frame_skip`` (the paper: 25). Applied
            to the raw-stream frame numbers in the file names, so an export that already kept every
            25th frame is read whole with 25 (or 1). Non-numeric names are subsampled by position.
        frame_list: optional text file of ``<scene> <frame>`` lines; when given, only those frames
            are read (``frame_skip`` is ignored).
        depth_scale: depth PNG units per metre (1000: millimetres).
        color_downscale: decode colour at 1/k resolution (1, 2, 4 or 8; JPEG DCT scaling, about twice
            as fast at 4), with ``K_color`` adjusted. ScanNet's 1296x968 colour at 4 is 324x242, about
            the 240x320 the paper feeds its teacher.
        strict: raise on the first bad frame instead of skipping it.
        progress: show a progress bar over the scenes while indexing (reading the pose files of
            all of ScanNet takes tens of seconds).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        scenes: Sequence[str] | None = None,
        split: str | None = None,
        frame_skip: int = PAPER_FRAME_SKIP,
        frame_list: str | Path | None = None,
        depth_scale: float = 1000.0,
        color_downscale: int = 1,
        strict: bool = False,
        progress: bool = False,
    ):
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
        self.root = Path(root)
        self.frame_skip = frame_skip
        self.depth_scale = depth_scale
        if color_downscale not in (1, 2, 4, 8):
            raise ValueError(f"color_downscale must be 1, 2, 4 or 8, got {color_downscale}")
        self.color_downscale = color_downscale
        self.report = DataReport(root=str(self.root), format="scannet")
        if scenes is None:
            scenes = scannet_split(self.root, split) if split is not None else list_scenes(self.root)
        self.scenes = list(scenes)
        selected = _read_frame_list(Path(frame_list)) if frame_list is not None else None
        if selected is not None:
            self.report.notes.append(f"frames selected by {frame_list}")
        else:
            self.report.notes.append(f"{every_kth_frame(frame_skip)} (frame_skip={frame_skip})")
        self.records = []
        from tqdm.auto import tqdm

        bar = tqdm(self.scenes, desc="indexing scenes", unit="scene", disable=None if progress else True)
        for scene in bar:
            self._index_scene(scene, selected, strict)
        self.report.frames_usable = len(self.records)

    def _index_scene(self, scene: str, selected: dict[str, set[str]] | None, strict: bool) -> None:
        scene_dir = self.root / scene
        scene_id = self.root.resolve().name if scene == "." else scene
        if not scene_dir.is_dir():
            self.report.frames_found += 1
            self._skip(FrameError(scene_dir, MISSING_FILE, "scene folder listed but not found"), strict)
            return
        try:
            colors = files_by_stem(scene_dir / "color", COLOR_SUFFIXES)
            depths = files_by_stem(scene_dir / "depth", (".png",))
            poses = files_by_stem(scene_dir / "pose", (".txt",))
        except OSError as err:
            self.report.frames_found += 1
            self._skip(FrameError(err.filename or scene_dir, UNREADABLE, err.strerror or str(err)), strict)
            return
        frame_ids = sorted(set(colors) | set(depths) | set(poses), key=_frame_sort_key)
        if selected is not None:
            wanted = selected.get(scene_id, set())
            frame_ids = [f for f in frame_ids if (str(int(f)) if f.isdigit() else f) in wanted]
        else:
            frame_ids = [
                f
                for position, f in enumerate(frame_ids)
                if (int(f) if f.isdigit() else position) % self.frame_skip == 0
            ]
        self.report.frames_found += len(frame_ids)
        if not frame_ids:
            return
        K_color_path, K_depth_path = (
            _intrinsics_path(scene_dir, "color"),
            _intrinsics_path(scene_dir, "depth"),
        )
        try:
            K_color = read_intrinsics_txt(K_color_path)
            K_depth = read_intrinsics_txt(K_depth_path)
        except FrameError as err:
            if strict:
                raise
            # One intrinsics problem makes every frame of the scene unusable; count each frame.
            self.report.add_skip(
                FrameError(err.path, BAD_INTRINSICS, err.detail or err.reason), len(frame_ids)
            )
            return
        for frame_id in frame_ids:
            try:
                for folder, files, example in (("color", colors, ".jpg"), ("depth", depths, ".png")):
                    if frame_id not in files:
                        raise FrameError(scene_dir / folder / f"{frame_id}{example}", MISSING_FILE)
                if frame_id not in poses:
                    raise FrameError(scene_dir / "pose" / f"{frame_id}.txt", MISSING_FILE)
                pose = read_pose_txt(scene_dir / "pose" / poses[frame_id])
            except FrameError as err:
                self._skip(err, strict)
                continue
            self.records.append(
                FrameRecord(
                    scene_id=scene_id,
                    frame_id=frame_id,
                    color_path=str(scene_dir / "color" / colors[frame_id]),
                    depth_path=str(scene_dir / "depth" / depths[frame_id]),
                    K_color=K_color,
                    K_depth=K_depth,
                    world_from_camera=pose,
                    depth_scale=self.depth_scale,
                    color_downscale=self.color_downscale,
                    K_color_path=str(K_color_path),
                    K_depth_path=str(K_depth_path),
                )
            )


def read_scannet_scene(
    scene_dir: str | Path, label_set: str = "scannet20", raw_category_ids: dict[str, int] | None = None
) -> LabeledScene:
    """Read a labelled ScanNet scene: the vertices of ``<scene>_vh_clean_2.ply`` and their labels.

    ``scannet20`` / ``nyu40``: the NYU40 ids of ``<scene>_vh_clean_2.labels.ply``, mapped to the 20
    benchmark classes (every other id, 0 = unannotated, ceiling, ... -> IGNORE_LABEL) or to all 40.
    ``scannet200``: each object of ``<scene>.aggregation.json`` labels the vertices of its segments
    (``<scene>_vh_clean_2.0.010000.segs.json``) with its raw category's tsv id
    (``raw_category_ids``, from :func:`ppkt.data.scannet_classes.read_label_tsv`), kept when it is
    one of the 200 classes; a raw category missing from the tsv leaves its vertices unlabelled.
    """
    class_names, mapping = scannet_label_set(label_set)
    scene_dir = Path(scene_dir)
    scene_id = scene_dir.resolve().name
    mesh_path = scene_dir / f"{scene_id}_vh_clean_2.ply"
    if not mesh_path.is_file():
        raise FileNotFoundError(f"{mesh_path}: not found (the scene's mesh)")
    mesh = read_ply_vertices(mesh_path)
    missing = [name for name in ("x", "y", "z", "red", "green", "blue") if name not in mesh]
    if missing:
        raise ValueError(f"{mesh_path}: vertex properties {missing} missing")
    points = np.stack([mesh["x"], mesh["y"], mesh["z"]], axis=1).astype(np.float32)
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{mesh_path}: {int((~np.isfinite(points)).any(1).sum())} vertices are not finite")
    if label_set in NYU40_LABEL_SETS:
        raw = _nyu40_ids(scene_dir / f"{scene_id}_vh_clean_2.labels.ply", len(points), mesh_path)
    else:
        if raw_category_ids is None:
            raise ValueError(
                f"label set {label_set} needs the raw category ids of scannetv2-labels.combined.tsv"
            )
        raw = _tsv_ids(scene_dir, scene_id, len(points), raw_category_ids)
    colors = np.stack([mesh["red"], mesh["green"], mesh["blue"]], axis=1)
    if colors.dtype != np.uint8:
        # Some tools write float colours in [0, 1]; integer colours beyond 255 are clipped.
        scale = 255.0 if np.issubdtype(colors.dtype, np.floating) and colors.max(initial=0) <= 1.0 else 1.0
        colors = np.clip(np.round(colors * scale), 0, 255).astype(np.uint8)
    return LabeledScene(
        points=points,
        colors=colors,
        labels=mapping(raw),
        scene_id=scene_id,
        class_names=class_names,
    )


def _nyu40_ids(labels_path: Path, num_vertices: int, mesh_path: Path) -> np.ndarray:
    if not labels_path.is_file():
        raise FileNotFoundError(f"{labels_path}: not found (a labelled ScanNet scene needs both PLY files)")
    labels = read_ply_vertices(labels_path)
    if "label" not in labels:
        raise ValueError(f"{labels_path}: no vertex property 'label' (NYU40 id)")
    if len(labels["label"]) != num_vertices:
        raise ValueError(
            f"vertex count mismatch: {mesh_path} has {num_vertices} vertices, "
            f"{labels_path} has {len(labels['label'])}"
        )
    return labels["label"]


def _tsv_ids(
    scene_dir: Path, scene_id: str, num_vertices: int, raw_category_ids: dict[str, int]
) -> np.ndarray:
    """Per-vertex tsv id of the raw category of the object each vertex belongs to (0 = none)."""
    import json

    segs_path = scene_dir / f"{scene_id}_vh_clean_2.0.010000.segs.json"
    aggregation_path = scene_dir / f"{scene_id}.aggregation.json"
    try:
        segments = np.asarray(json.loads(segs_path.read_text())["segIndices"], dtype=np.int64)
        groups = json.loads(aggregation_path.read_text())["segGroups"]
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err.filename}: not found (ScanNet200 labels need it)") from err
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{scene_dir}: unreadable segments or aggregation file ({err!r})") from err
    if len(segments) != num_vertices:
        raise ValueError(
            f"vertex count mismatch: {segs_path} has {len(segments)} entries, the mesh {num_vertices}"
        )
    ids = np.zeros(num_vertices, dtype=np.int64)
    for group in groups:
        tsv_id = raw_category_ids.get(group.get("label"), 0)
        ids[np.isin(segments, np.asarray(group.get("segments", []), dtype=np.int64))] = tsv_id
    return ids


class ScanNetSceneSource:
    """Labelled ScanNet v2 scenes (and the synthetic rooms, same layout): ``<root>/<scene>/*.ply``.

    Split ``s`` lists its scenes in ``<scene_lists>/scannetv2_<s>.txt`` (default: in the root).
    ``label_set`` picks the classes (``ppkt.data.scannet_classes.LABEL_SETS``); ``scannet200``
    reads ``label_map`` (ScanNet's scannetv2-labels.combined.tsv, default: in the root).
    """

    def __init__(
        self,
        root: str | Path,
        scene_lists: str | Path | None = None,
        label_set: str = "scannet20",
        label_map: str | Path | None = None,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset root not found")
        self.scene_lists = self.root if scene_lists is None else Path(scene_lists)
        if not self.scene_lists.is_dir():
            raise FileNotFoundError(f"{self.scene_lists}: scene-list folder not found")
        self.label_set = label_set
        self.class_names = scannet_label_set(label_set)[0]
        self.raw_category_ids = None
        if label_set not in NYU40_LABEL_SETS:
            self.raw_category_ids = read_label_tsv(
                self.root / "scannetv2-labels.combined.tsv" if label_map is None else label_map
            )

    def scene_ids(self, split: str) -> list[str]:
        return scannet_split(self.scene_lists, split)

    def read(self, scene_id: str) -> LabeledScene:
        return read_scannet_scene(self.root / scene_id, self.label_set, self.raw_category_ids)

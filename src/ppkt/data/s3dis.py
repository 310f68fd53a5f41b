"""S3DIS (Stanford Large-Scale 3D Indoor Spaces), ``Stanford3dDataset_v1.2_Aligned_Version``.

Layout, as unpacked from the authors' archive::

    <root>/Area_<n>/<room>/Annotations/<class>_<k>.txt    one object: rows "x y z r g b"
    <root>/Area_<n>/<room>/<room>.txt                     the whole room (not read: the
                                                          annotations are its labelled parts)

``<root>`` is the ``Stanford3dDataset_v1.2_Aligned_Version`` folder (or its parent). Coordinates
are metres in the "aligned" frame, z up; colours 0-255. A room is the union of its annotation
files, labelled by the file name's class among the 13 of :data:`S3DIS_CLASS_NAMES`. A class
name outside them (PointNet's preparation script ``indoor3d_util.py`` mentions a ``stairs``
class in some rooms) becomes ``clutter``, as there; the first such file of each name is noted.

The release has a few malformed rows, reported by users of many projects: a stray control
character inside a number, e.g. ``103.0\x100000`` in ``Area_5/office_19/Annotations/ceiling_1.txt``
(line 323474; zeliu98/CloserLook3D#15, JonasSchult/Mask3D#87) and ``-9.1\x160`` in Area 3's
``hallway_2`` (loicland/superpoint_graph#230). Every row that is not six finite numbers is
dropped and counted as a named skip (file and line) in ``source.report``, so nothing needs
patching; a file with nothing readable loses only itself.

Scene ids are ``Area_<n>/<room>``; a split is ``Area_5``, a comma-separated list of areas
(``Area_1,Area_2,Area_3,Area_4,Area_6``) or ``all``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ppkt.data.report import MISSING_FILE, UNREADABLE, DataReport, FrameError
from ppkt.data.types import LabeledScene

S3DIS_CLASS_NAMES: tuple[str, ...] = (
    "ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa",
    "bookcase", "board", "clutter",
)  # fmt: skip
"""The 13 classes of S3DIS semantic segmentation, in the order the field uses (PointNet's)."""

S3DIS_AREAS: tuple[str, ...] = tuple(f"Area_{n}" for n in range(1, 7))
ALIGNED_FOLDER = "Stanford3dDataset_v1.2_Aligned_Version"

MALFORMED_ROW = "malformed row"
"""Skip reason: a row of an annotation file that is not six numbers."""
EMPTY_FILE = "empty annotation file"

_ANNOTATION = re.compile(r"^(?P<cls>[A-Za-z]+)_(?P<k>\d+)\.txt$")


def find_areas(root: Path) -> list[Path]:
    """The ``Area_<n>`` folders of ``root`` (or of ``root/Stanford3dDataset_v1.2_Aligned_Version``)."""
    for base in (root, root / ALIGNED_FOLDER):
        areas = [base / name for name in S3DIS_AREAS if (base / name).is_dir()]
        if areas:
            return areas
    return []


def parse_xyzrgb(path: Path, report: DataReport | None = None) -> np.ndarray:
    """``(N, 6)`` float32 rows of an S3DIS text file; malformed rows are dropped and counted.

    Raises:
        FrameError: the file is missing or unreadable.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError as err:
        raise FrameError(path, MISSING_FILE) from err
    except OSError as err:
        raise FrameError(path, UNREADABLE, str(err)) from err
    lines = text.splitlines()
    try:
        values = np.array(text.split(), dtype=np.float32)
        if values.size == 6 * len(lines):
            return values.reshape(-1, 6)
    except ValueError:
        pass
    # Slow path, only for files with a bad row: find and count them.
    rows = []
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            row = [float(p) for p in parts]
        except ValueError:
            row = []
        if len(row) != 6 or not np.all(np.isfinite(row)):
            if report is not None:
                report.add_skip(FrameError(f"{path}:{number}", MALFORMED_ROW, repr(line[:60])))
            continue
        rows.append(row)
    return np.asarray(rows, dtype=np.float32).reshape(-1, 6)


class S3DISSceneSource:
    """Labelled S3DIS rooms for fine-tuning and evaluation (a ``SceneSource``).

    Args:
        root: the ``Stanford3dDataset_v1.2_Aligned_Version`` folder or its parent.

    Attributes:
        rooms: every ``Area_<n>/<room>`` found, sorted.
        report: malformed rows and unreadable files met so far (``read`` adds to it).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        areas = find_areas(self.root)
        if not areas:
            raise FileNotFoundError(
                f"{self.root}: no S3DIS areas (Area_1 ... Area_6, here or in {ALIGNED_FOLDER}/)"
            )
        self.base = areas[0].parent
        self.class_names = S3DIS_CLASS_NAMES
        self.report = DataReport(root=str(self.base), format="s3dis")
        self.rooms: list[str] = []
        for area in areas:
            for entry in sorted(os.scandir(area), key=lambda e: e.name):
                if entry.is_dir() and (Path(entry.path) / "Annotations").is_dir():
                    self.rooms.append(f"{area.name}/{entry.name}")

    def scene_ids(self, split: str) -> list[str]:
        if split == "all":
            return list(self.rooms)
        wanted = [part.strip() for part in split.split(",") if part.strip()]
        unknown = [a for a in wanted if a not in S3DIS_AREAS]
        if unknown or not wanted:
            raise ValueError(
                f"S3DIS split {split!r}: expected 'all', an area or comma-separated areas of "
                + ", ".join(S3DIS_AREAS)
            )
        return [room for room in self.rooms if room.split("/")[0] in wanted]

    def read(self, scene_id: str) -> LabeledScene:
        """The room ``Area_<n>/<room>``: the union of its annotation files, labelled by file name."""
        folder = self.base / scene_id / "Annotations"
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: S3DIS room not found")
        parts, labels = [], []
        for name in sorted(os.listdir(folder)):
            match = _ANNOTATION.match(name)
            if match is None:
                continue  # .DS_Store and other stray files of the archive
            cls = match["cls"]
            if cls not in S3DIS_CLASS_NAMES:
                note = f"class {cls!r} read as clutter (e.g. {folder / name})"
                if not any(n.startswith(f"class {cls!r}") for n in self.report.notes):
                    self.report.notes.append(note)
                cls = "clutter"
            try:
                rows = parse_xyzrgb(folder / name, self.report)
            except FrameError as err:
                self.report.add_skip(err)
                continue
            if not len(rows):
                self.report.add_skip(FrameError(folder / name, EMPTY_FILE))
                continue
            parts.append(rows)
            labels.append(np.full(len(rows), S3DIS_CLASS_NAMES.index(cls), dtype=np.int64))
        if not parts:
            raise ValueError(f"{folder}: no readable annotation file (<class>_<k>.txt with x y z r g b rows)")
        rows = np.concatenate(parts)
        return LabeledScene(
            points=rows[:, :3].astype(np.float32),
            colors=np.clip(np.round(rows[:, 3:]), 0, 255).astype(np.uint8),
            labels=np.concatenate(labels),
            scene_id=scene_id,
            class_names=S3DIS_CLASS_NAMES,
        )


def scan_s3dis(path: Path, strict: bool, *, frame_skip: int | None = None, workers: int = 0) -> DataReport:
    """check-data for S3DIS: read every (``frame_skip``-th) room; rooms are the "frames" counted."""
    source = S3DISSceneSource(path)
    report = source.report
    for room in source.rooms[:: frame_skip or 1]:
        report.frames_found += 1
        skipped_before = report.frames_skipped
        try:
            scene = source.read(room)
        except (ValueError, OSError) as err:
            if strict:
                raise
            report.add_skip(FrameError(source.base / room, UNREADABLE, str(err)))
            continue
        if strict and report.frames_skipped > skipped_before:
            reason = next(iter(report.skipped))
            raise FrameError(source.base / room, reason, report.examples[reason][0])
        report.frames_usable += 1
        del scene
    report.notes.append(
        f"{len(source.rooms)} rooms in {', '.join(sorted({r.split('/')[0] for r in source.rooms}))}"
    )
    report.notes.append("frames = rooms; malformed rows are dropped from their room, which stays usable")
    report.decoded = True
    return report

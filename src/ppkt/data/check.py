"""Check a dataset before a long run: index it, decode every frame, report what is usable.

``scan_dataset(path)`` picks the format (or takes ``format=``) from the registry of formats
(``ppkt.data.registry``), checks it and returns a :class:`~ppkt.data.report.DataReport`. A new
format needs nothing here: its registry entry says how to open (or scan) it.

Bad input never ends a scan: every problem becomes a counted skip with the file named, except in
strict mode, where the first one is raised with the same message.

Formats with 3D boxes check their annotations too (``ppkt.data.boxes.check_detection_scenes``):
SUN RGB-D through its registry ``scan``, ScanNet after its frames (:func:`check_scannet_boxes`,
every scan that has its instance annotations); the annotations left out are counted by reason
and named in the report's notes (:func:`box_check_notes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ppkt.data.boxes import check_detection_scenes
from ppkt.data.gravity import alignment_note
from ppkt.data.images import DEPTH_RANGE
from ppkt.data.report import (
    EMPTY_DEPTH,
    MAX_EXAMPLES,
    NO_DEPTH_IN_RANGE,
    SIZE_MISMATCH,
    UNREADABLE,
    DataReport,
    FrameError,
)
from ppkt.data.scannet_boxes import ScanNetDetectionSource
from ppkt.data.types import RGBDFrame


class _FrameDataset(Protocol):
    report: DataReport

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> RGBDFrame: ...
    def describe(self, index: int) -> str: ...


class _CheckedFrames:
    """Decodes frame ``i`` and returns what the check needs (small, so workers can send it back).

    Depth problems are reported under the depth file's name (``describe_depth`` of readers with
    one file per image), everything else under ``describe``.
    """

    def __init__(self, frames: _FrameDataset, depth_range: tuple[float, float] = DEPTH_RANGE):
        self.frames = frames
        self.depth_range = depth_range

    def _depth_source(self, index: int) -> str:
        describe = getattr(self.frames, "describe_depth", self.frames.describe)
        return describe(index)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> tuple[str, tuple[int, int], tuple[int, int], FrameError | None]:
        try:
            frame = self.frames[index]
        except FrameError as err:
            return "", (0, 0), (0, 0), err
        except Exception as err:  # a scan reports every failure, whatever raised it
            error = FrameError(self.frames.describe(index), UNREADABLE, f"{type(err).__name__}: {err}")
            return "", (0, 0), (0, 0), error
        valid = (frame.depth > 0) & (frame.depth < float("inf"))
        error = None
        if not valid.any():
            error = FrameError(self._depth_source(index), EMPTY_DEPTH, "no valid pixel")
        else:
            near, far = self.depth_range
            depth = frame.depth[valid]
            if not ((depth > near) & (depth <= far)).any():
                error = FrameError(
                    self._depth_source(index),
                    NO_DEPTH_IN_RANGE,
                    f"valid depth spans {depth.min():.3g}..{depth.max():.3g} m, pretraining uses "
                    f"{near:g}..{far:g} m (data.min_depth, data.max_depth); wrong depth scale?",
                )
        return frame.scene_id, frame.color_hw, frame.depth_hw, error


def _identity(batch):
    return batch


def check_frames(
    frames: _FrameDataset,
    strict: bool = False,
    workers: int = 0,
    desc: str = "checking",
    depth_range: tuple[float, float] = DEPTH_RANGE,
) -> DataReport:
    """Decode every indexed frame of a reader and update (and return) its ``report``.

    Besides decoding errors, a frame whose colour or depth size differs from the first frame of
    its scene is a "size mismatch", a depth map with no valid pixel is "empty depth", and one whose
    valid depth all lies outside ``depth_range`` (metres; pretraining's default data.min_depth,
    data.max_depth) is "no depth within range" (often a wrong depth scale).
    """
    from tqdm.auto import tqdm

    report = frames.report
    checked = _CheckedFrames(frames, depth_range)
    if workers > 0:
        from torch.utils.data import DataLoader

        results = DataLoader(checked, batch_size=None, num_workers=workers, collate_fn=_identity)
    else:
        results = (checked[i] for i in range(len(checked)))
    sizes: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}
    usable = 0
    for index, (scene, color_hw, depth_hw, error) in enumerate(
        tqdm(results, total=len(checked), desc=desc, unit="frame", disable=None, mininterval=1.0)
    ):
        if error is None:
            expected = sizes.setdefault(scene, (color_hw, depth_hw))
            if expected != (color_hw, depth_hw):
                error = FrameError(
                    frames.describe(index),
                    SIZE_MISMATCH,
                    f"colour {color_hw[1]}x{color_hw[0]}, depth {depth_hw[1]}x{depth_hw[0]}; "
                    f"the scene's first frame has colour {expected[0][1]}x{expected[0][0]}, "
                    f"depth {expected[1][1]}x{expected[1][0]}",
                )
        if error is not None:
            if strict:
                raise error
            report.add_skip(error)
        else:
            usable += 1
    report.frames_usable = usable
    report.decoded = True
    return report


def box_check_notes(check) -> list[str]:
    """Report notes of a box check (``ppkt.data.boxes.DetectionCheck``): the boxes kept, the
    annotations left out by reason, the first :data:`MAX_EXAMPLES` of them named."""
    left_out = sum(check.skips.values())
    counts = ", ".join(f"{reason} {n}" for reason, n in sorted(check.skips.items(), key=lambda kv: -kv[1]))
    notes = [
        f"boxes: {check.boxes} usable, {left_out} annotations left out" + (f" ({counts})" if counts else "")
    ]
    notes += [f"left out: {line}" for line in check.named[:MAX_EXAMPLES]]
    if len(check.named) > MAX_EXAMPLES:
        notes.append(f"... and {len(check.named) - MAX_EXAMPLES} more annotations left out")
    return notes


def _annotated_scans(path: Path) -> tuple[Path, list[str]]:
    """``(root, scene ids)`` of the ScanNet scans at ``path`` (a root or one scan folder) that have
    their instance annotations (``<scene>.aggregation.json``)."""
    if (path / f"{path.resolve().name}.aggregation.json").is_file():
        return path.resolve().parent, [path.resolve().name]
    if not path.is_dir():
        return path, []
    scans = [c.name for c in path.iterdir() if c.is_dir() and (c / f"{c.name}.aggregation.json").is_file()]
    return path, sorted(scans)


def check_scannet_boxes(path: str | Path, report: DataReport, strict: bool = False) -> DataReport:
    """Add the box check of the ScanNet scans at ``path`` to ``report`` (its notes): every scan
    with an ``aggregation.json`` read as VoteNet's benchmark reads it
    (``ppkt.data.scannet_boxes``), its bad annotations (no points, unknown class, non-finite,
    non-positive size) counted and named, unreadable scans named with their error. Scans without
    annotations (ScanNet's test split) are not box scans. With ``strict`` the first unreadable
    scan raises."""
    root, ids = _annotated_scans(Path(path))
    if not ids:
        report.notes.append("boxes: no scan with instance annotations (<scene>.aggregation.json)")
        return report
    check = check_detection_scenes(ScanNetDetectionSource(root), ids, strict=strict)
    notes = [f"boxes: {check.scenes} of {len(ids)} annotated scans read"]
    notes += [f"unreadable scan: {sid}: {error}" for sid, error in list(check.failed.items())[:MAX_EXAMPLES]]
    if len(check.failed) > MAX_EXAMPLES:
        notes.append(f"... and {len(check.failed) - MAX_EXAMPLES} more unreadable scans")
    report.notes += notes + box_check_notes(check)
    return report


def detect_format(path: str | Path) -> str:
    """The name of the format at ``path`` (``ppkt.data.registry.detect`` also says which folder)."""
    # local: cycle with ppkt.data.registry (the registry imports box_check_notes from here)
    from ppkt.data.registry import detect

    return detect(path).format


def scan_dataset(
    path: str | Path,
    format: str = "auto",
    strict: bool = False,
    *,
    frame_skip: int | None = None,
    workers: int = 0,
    boxes: bool = True,
) -> DataReport:
    """Index and decode a dataset; return what is usable and why the rest is not.

    The format comes from the registry (``ppkt.data.registry``): its ``scan`` when it has one
    (the lidar formats), else every frame of its ``open_frames`` decoded by :func:`check_frames`
    (the RGB-D formats). Labelled point-cloud formats (S3DIS) check every room's files.

    Args:
        path: dataset root (or a single scene / sequence / .sens file); with ``format="auto"`` the
            root may also be one level above or below (the report's notes say which was read).
        format: a registered format name or ``"auto"``.
        strict: raise the first problem (a :class:`FrameError` naming the file) instead of counting it.
        frame_skip: check every k-th frame; default: what the reader uses for pretraining
            (ScanNet 25 as in the paper, 1 for the others).
        workers: decoding processes (torch DataLoader workers); 0 decodes in this process.
        boxes: ScanNet: also check the box annotations of the annotated scans
            (:func:`check_scannet_boxes`; reads every scan's mesh).
    """
    # local: cycle with ppkt.data.registry (the registry imports box_check_notes from here)
    from ppkt.data.registry import FrameRequest, detect, frame_poses, get_spec

    path = Path(path)
    note = None
    if format == "auto":
        detection = detect(path)
        format, path, note = detection.format, detection.root, detection.note
    spec = get_spec(format)
    options: dict[str, int] = {}
    if frame_skip is not None:
        options["frame_skip"] = frame_skip
    if workers:
        options["workers"] = workers
    if spec.scan is not None:
        report = spec.scan(path, strict, **options)
    elif spec.open_frames is not None:
        # up_axis "z": report the poses as the dataset has them.
        request = FrameRequest(
            path, frame_skip=frame_skip or spec.default_frame_skip, up_axis="z", strict=strict
        )
        frames = spec.open_frames(request)
        report = check_frames(frames, strict, workers, format)
        gravity = alignment_note(frame_poses(frames))
        if gravity is not None:
            report.notes.append(gravity)
        if format == "scannet" and boxes:
            check_scannet_boxes(path, report, strict)
    else:
        raise ValueError(f"format {format} cannot be checked (it has neither frames nor a scan)")
    if note is not None:
        report.notes.insert(0, note)
    return report

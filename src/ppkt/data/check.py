"""Check a dataset before a long run: index it, decode every frame, report what is usable.

``scan_dataset(path)`` picks the format (or takes ``format=``) from the registry of formats
(``ppkt.data.registry``), checks it and returns a :class:`~ppkt.data.report.DataReport`. A new
format needs nothing here: its registry entry says how to open (or scan) it.

Bad input never ends a scan: every problem becomes a counted skip with the file named, except in
strict mode, where the first one is raised with the same message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ppkt.data.report import EMPTY_DEPTH, SIZE_MISMATCH, UNREADABLE, DataReport, FrameError
from ppkt.data.types import RGBDFrame


class _FrameDataset(Protocol):
    report: DataReport

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> RGBDFrame: ...
    def describe(self, index: int) -> str: ...


class _CheckedFrames:
    """Decodes frame ``i`` and returns what the check needs (small, so workers can send it back)."""

    def __init__(self, frames: _FrameDataset):
        self.frames = frames

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
        source = self.frames.describe(index)
        valid = frame.depth > 0
        if not valid.any() or not (frame.depth[valid] < float("inf")).any():
            return (
                frame.scene_id,
                frame.color_hw,
                frame.depth_hw,
                FrameError(source, EMPTY_DEPTH, "no valid pixel"),
            )
        return frame.scene_id, frame.color_hw, frame.depth_hw, None


def _identity(batch):
    return batch


def check_frames(
    frames: _FrameDataset, strict: bool = False, workers: int = 0, desc: str = "checking"
) -> DataReport:
    """Decode every indexed frame of a reader and update (and return) its ``report``.

    Besides decoding errors, a frame whose colour or depth size differs from the first frame of
    its scene is a "size mismatch", and a depth map with no valid pixel is "empty depth".
    """
    from tqdm.auto import tqdm

    report = frames.report
    checked = _CheckedFrames(frames)
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


def detect_format(path: str | Path) -> str:
    """The name of the format at ``path`` (``ppkt.data.registry.detect`` also says which folder)."""
    from ppkt.data.registry import detect

    return detect(path).format


def scan_dataset(
    path: str | Path,
    format: str = "auto",
    strict: bool = False,
    *,
    frame_skip: int | None = None,
    workers: int = 0,
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
    """
    from ppkt.data.gravity import alignment_note
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
    else:
        raise ValueError(f"format {format} cannot be checked (it has neither frames nor a scan)")
    if note is not None:
        report.notes.insert(0, note)
    return report

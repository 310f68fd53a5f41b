"""Check a dataset before a long run: index it, decode every frame, report what is usable.

``scan_dataset(path)`` picks the format (or takes ``format=``), runs that format's scanner from
the flat ``SCANNERS`` registry and returns a :class:`~ppkt.data.report.DataReport`. A scanner is
``scanner(path, strict, **options) -> DataReport``; options it may accept are ``frame_skip`` and
``workers``, and ``scan_dataset`` passes only those that are set. To add a format, add its
scanner to ``SCANNERS`` and a detector (``path -> bool``) to ``DETECTORS``.

Bad input never ends a scan: every problem becomes a counted skip with the file named, except in
strict mode, where the first one is raised with the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ppkt.data.images import DEPTH_RANGE
from ppkt.data.lidar_common import LIDAR_DETECTORS, LIDAR_SCANNERS
from ppkt.data.report import EMPTY_DEPTH, NO_DEPTH_IN_RANGE, SIZE_MISMATCH, UNREADABLE, DataReport, FrameError
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


def _scan_scannet(path: Path, strict: bool, *, frame_skip: int | None = None, workers: int = 0) -> DataReport:
    from ppkt.data.scannet import PAPER_FRAME_SKIP, ScanNetFrames

    frames = ScanNetFrames(path, frame_skip=frame_skip or PAPER_FRAME_SKIP, strict=strict, progress=True)
    return check_frames(frames, strict, workers, "scannet")


def _scan_scannet_sens(
    path: Path, strict: bool, *, frame_skip: int | None = None, workers: int = 0
) -> DataReport:
    from ppkt.data.scannet import PAPER_FRAME_SKIP
    from ppkt.data.sens import SensScenes

    frames = SensScenes(path, frame_skip=frame_skip or PAPER_FRAME_SKIP, strict=strict)
    if not frames.files and not frames.report.frames_found:
        frames.report.notes.append("no .sens files found")
    return check_frames(frames, strict, workers, "scannet-sens")


def _scan_7scenes(path: Path, strict: bool, *, frame_skip: int | None = None, workers: int = 0) -> DataReport:
    from ppkt.data.rgbd_sequences import SevenScenesFrames

    return check_frames(
        SevenScenesFrames(path, frame_skip=frame_skip or 1, strict=strict), strict, workers, "7scenes"
    )


def _scan_tum(path: Path, strict: bool, *, frame_skip: int | None = None, workers: int = 0) -> DataReport:
    from ppkt.data.rgbd_sequences import TumFrames

    return check_frames(TumFrames(path, frame_skip=frame_skip or 1, strict=strict), strict, workers, "tum")


SCANNERS: dict[str, Callable[..., DataReport]] = {
    "scannet": _scan_scannet,
    "scannet-sens": _scan_scannet_sens,
    "7scenes": _scan_7scenes,
    "tum": _scan_tum,
    **LIDAR_SCANNERS,
}


def _is_scannet(path: Path) -> bool:
    if (path / "color").is_dir():
        return True
    return path.is_dir() and any((child / "color").is_dir() for child in path.iterdir() if child.is_dir())


def _is_sens(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".sens"
    return path.is_dir() and (any(path.glob("*.sens")) or any(path.glob("*/*.sens")))


def _is_7scenes(path: Path) -> bool:
    patterns = ("frame-*.pose.txt", "*/frame-*.pose.txt", "*/*/frame-*.pose.txt")
    return path.is_dir() and any(any(path.glob(pattern)) for pattern in patterns)


def _is_tum(path: Path) -> bool:
    from ppkt.data.rgbd_sequences import find_tum_sequences

    return path.is_dir() and bool(find_tum_sequences(path))


DETECTORS: dict[str, Callable[[Path], bool]] = {
    "scannet": _is_scannet,
    "scannet-sens": _is_sens,
    "7scenes": _is_7scenes,
    "tum": _is_tum,
    **LIDAR_DETECTORS,
}
"""Format detectors, tried in order; the first that says yes picks the format."""


def detect_format(path: str | Path) -> str:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found")
    for name, detector in DETECTORS.items():
        if detector(path):
            return name
    raise ValueError(
        f"{path}: cannot tell the dataset format (known: {', '.join(SCANNERS)}); pass it with --format"
    )


def scan_dataset(
    path: str | Path,
    format: str = "auto",
    strict: bool = False,
    *,
    frame_skip: int | None = None,
    workers: int = 0,
) -> DataReport:
    """Index and decode a dataset; return what is usable and why the rest is not.

    Args:
        path: dataset root (or a single scene / sequence / .sens file).
        format: a key of ``SCANNERS`` or ``"auto"``.
        strict: raise the first problem (a :class:`FrameError` naming the file) instead of counting it.
        frame_skip: check every k-th frame; default: what the reader uses for pretraining
            (ScanNet 25 as in the paper, 1 for 7-Scenes and TUM).
        workers: decoding processes (torch DataLoader workers); 0 decodes in this process.
    """
    path = Path(path)
    if format == "auto":
        format = detect_format(path)
    if format not in SCANNERS:
        raise ValueError(f"unknown dataset format {format!r}; known: {', '.join(SCANNERS)}")
    options: dict[str, int] = {}
    if frame_skip is not None:
        options["frame_skip"] = frame_skip
    if workers:
        options["workers"] = workers
    return SCANNERS[format](path, strict, **options)

"""ScanNet's raw ``<scene>.sens`` stream, read frame by frame without exporting.

The format (ScanNet ``SensReader``, little-endian)::

    header: version uint32 (= 4); sensor name (uint64 length + bytes);
            intrinsic_color, extrinsic_color, intrinsic_depth, extrinsic_depth (4x4 float32 each);
            color compression int32 (-1 unknown, 0 raw, 1 png, 2 jpeg);
            depth compression int32 (-1 unknown, 0 raw_ushort, 1 zlib_ushort, 2 occi_ushort);
            color_width, color_height, depth_width, depth_height uint32; depth_shift float32;
            num_frames uint64
    frame:  camera_to_world 4x4 float32; timestamp_color, timestamp_depth uint64;
            color_size_bytes, depth_size_bytes uint64; color bytes; depth bytes

Indexing reads only the 96 fixed bytes of each frame and seeks over the image data, so a
2 GB file is indexed in well under a second; ``__getitem__`` seeks to one frame and decodes it.
A file cut short (an interrupted download) ends the index at the last complete frame; the
cut frame is counted as a skip (or raised with ``strict=True``).
"""

from __future__ import annotations

import bisect
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppkt.data.images import check_intrinsics_fit, decode_color_bytes, depth_to_metres, pose_problem
from ppkt.data.report import (
    BAD_DEPTH_SCALE,
    INVALID_POSE,
    MAX_EXAMPLES,
    MISSING_FILE,
    SIZE_MISMATCH,
    TRUNCATED,
    UNDECODABLE,
    DataReport,
    FrameError,
    every_kth_frame,
)
from ppkt.data.scannet import PAPER_FRAME_SKIP, scannet_split
from ppkt.data.types import RGBDFrame

SENS_VERSION = 4
COLOR_COMPRESSION = {-1: "unknown", 0: "raw", 1: "png", 2: "jpeg"}
DEPTH_COMPRESSION = {-1: "unknown", 0: "raw_ushort", 1: "zlib_ushort", 2: "occi_ushort"}
_FRAME_HEADER = struct.Struct("<16f4Q")  # camera_to_world, 2 timestamps, 2 sizes = 96 bytes
_CALIBRATION = struct.Struct("<64f")
_IMAGE_INFO = struct.Struct("<ii4If Q")


@dataclass(frozen=True)
class SensHeader:
    """The header of a .sens file (matrices as float64)."""

    sensor_name: str
    intrinsic_color: np.ndarray
    extrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    extrinsic_depth: np.ndarray
    color_compression: str
    depth_compression: str
    color_hw: tuple[int, int]
    depth_hw: tuple[int, int]
    depth_shift: float
    num_frames: int
    header_bytes: int


def _read_exact(handle, size: int, path: Path, what: str) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise FrameError(path, TRUNCATED, f"file ends inside {what} ({len(data)} of {size} bytes)")
    return data


def read_sens_header(path: str | Path) -> SensHeader:
    path = Path(path)
    if not path.is_file():
        raise FrameError(path, MISSING_FILE, "no such .sens file")
    with open(path, "rb") as handle:
        (version,) = struct.unpack("<I", _read_exact(handle, 4, path, "the version"))
        if version != SENS_VERSION:
            raise FrameError(
                path, UNDECODABLE, f"not a ScanNet .sens v{SENS_VERSION} file (version {version})"
            )
        (name_len,) = struct.unpack("<Q", _read_exact(handle, 8, path, "the sensor name"))
        if name_len > 4096:
            raise FrameError(path, UNDECODABLE, f"implausible sensor-name length {name_len}")
        name = _read_exact(handle, name_len, path, "the sensor name").decode("utf-8", errors="replace")
        calib = np.array(_CALIBRATION.unpack(_read_exact(handle, _CALIBRATION.size, path, "the calibration")))
        color_type, depth_type, cw, ch, dw, dh, shift, num = _IMAGE_INFO.unpack(
            _read_exact(handle, _IMAGE_INFO.size, path, "the image info")
        )
        header_bytes = handle.tell()
    matrices = calib.reshape(4, 4, 4).astype(np.float64)
    return SensHeader(
        sensor_name=name,
        intrinsic_color=matrices[0],
        extrinsic_color=matrices[1],
        intrinsic_depth=matrices[2],
        extrinsic_depth=matrices[3],
        color_compression=COLOR_COMPRESSION.get(color_type, f"invalid ({color_type})"),
        depth_compression=DEPTH_COMPRESSION.get(depth_type, f"invalid ({depth_type})"),
        color_hw=(ch, cw),
        depth_hw=(dh, dw),
        depth_shift=float(shift),
        num_frames=int(num),
        header_bytes=header_bytes,
    )


@dataclass(frozen=True)
class _SensFrameEntry:
    index: int
    offset: int  # start of the colour bytes
    color_bytes: int
    depth_bytes: int
    world_from_camera: np.ndarray


class SensFrames(Sequence):
    """The frames of one ``.sens`` file: a Sequence / torch Dataset of RGBDFrame.

    Args:
        path: the ``<scene>.sens`` file.
        frame_skip: keep frames ``0, k, 2k, ...`` of the stream (the paper: 25).
        depth_scale: depth units per metre; default: the file's ``depth_shift`` (1000 in ScanNet).
        strict: raise on the first bad frame (invalid pose, truncation) instead of skipping it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        frame_skip: int = PAPER_FRAME_SKIP,
        depth_scale: float | None = None,
        strict: bool = False,
    ):
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
        self.path = Path(path)
        self.header = read_sens_header(self.path)
        self.scene_id = self.path.stem
        self.frame_skip = frame_skip
        if depth_scale is None:
            depth_scale = self.header.depth_shift
            if not (np.isfinite(depth_scale) and depth_scale > 0):
                # Guessing millimetres here would silently scale every point cloud.
                raise FrameError(
                    self.path,
                    BAD_DEPTH_SCALE,
                    f"header depth_shift is {depth_scale:g} (depth units per metre; ScanNet 1000); "
                    "pass depth_scale to read the file anyway",
                )
        elif not (np.isfinite(depth_scale) and depth_scale > 0):
            raise ValueError(f"depth_scale must be a finite number > 0, got {depth_scale}")
        self.depth_scale = float(depth_scale)
        self.report = DataReport(root=str(self.path), format="scannet-sens")
        self.report.notes.append(f"{every_kth_frame(frame_skip)} (frame_skip={frame_skip})")
        self.K_color = self.header.intrinsic_color[:3, :3].copy()
        self.K_depth = self.header.intrinsic_depth[:3, :3].copy()
        if self.header.depth_compression not in ("zlib_ushort", "raw_ushort"):
            raise FrameError(
                self.path, UNDECODABLE, f"unsupported depth compression {self.header.depth_compression}"
            )
        if self.header.color_compression not in ("jpeg", "png", "raw"):
            raise FrameError(
                self.path, UNDECODABLE, f"unsupported colour compression {self.header.color_compression}"
            )
        self.entries: list[_SensFrameEntry] = []
        self._index(strict)

    def _index(self, strict: bool) -> None:
        size = os.path.getsize(self.path)
        # Every frame holds at least its fixed header: a (corrupt) frame count the file cannot hold
        # is not looped over; the frames actually there are indexed and the rest counted once.
        promised = self.header.num_frames
        fits = (size - self.header.header_bytes) // _FRAME_HEADER.size
        count_error = None
        if promised > fits:
            error = count_error = FrameError(
                self.path,
                TRUNCATED,
                f"header promises {promised} frames, the {size}-byte file can hold at most {fits} "
                "(corrupt header or cut download)",
            )
            if strict:
                raise error
        with open(self.path, "rb") as handle:
            handle.seek(self.header.header_bytes)
            for index in range(min(promised, fits + 1)):
                keep = index % self.frame_skip == 0
                raw = handle.read(_FRAME_HEADER.size)
                start = handle.tell()
                if len(raw) == _FRAME_HEADER.size:
                    values = _FRAME_HEADER.unpack(raw)
                    color_bytes, depth_bytes = values[18], values[19]
                    end = start + color_bytes + depth_bytes
                if len(raw) != _FRAME_HEADER.size or end > size:
                    error = FrameError(
                        self.path,
                        TRUNCATED,
                        f"header promises {promised} frames, file ends in frame {index}",
                    )
                    if strict:
                        raise error
                    # The promised frames we would have kept, lost to the truncation: counted, but
                    # at most as many as the file could have held, so a corrupt count cannot hang.
                    lost = len(
                        range(index + (-index % self.frame_skip), min(promised, fits + 1), self.frame_skip)
                    )
                    if count_error is not None:  # a corrupt count, not lost frames: one counted error
                        error, lost = count_error, 1
                    else:
                        self.report.notes.append(
                            f"{promised - index} of {promised} frames lost to truncation"
                        )
                    if lost:
                        self.report.frames_found += lost
                        self.report.add_skip(error, count=lost)
                    break
                handle.seek(end)
                if not keep:
                    continue
                self.report.frames_found += 1
                pose = np.array(values[:16], dtype=np.float64).reshape(4, 4)
                problem = pose_problem(pose)
                if problem:
                    error = FrameError(f"{self.path}#frame{index}", INVALID_POSE, problem)
                    if strict:
                        raise error
                    self.report.add_skip(error)
                    continue
                self.entries.append(_SensFrameEntry(index, start, color_bytes, depth_bytes, pose))
        self.report.frames_usable = len(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self, index: int) -> str:
        return f"{self.path}#frame{self.entries[index].index}"

    def __getitem__(self, index: int) -> RGBDFrame:  # type: ignore[override]
        if not -len(self.entries) <= index < len(self.entries):
            raise IndexError(f"frame index {index} out of range for {len(self.entries)} frames")
        entry = self.entries[index]
        source = self.describe(index)
        # Open per call: cheap, and safe with DataLoader workers (no shared file offsets).
        with open(self.path, "rb") as handle:
            handle.seek(entry.offset)
            color_data = handle.read(entry.color_bytes)
            depth_data = handle.read(entry.depth_bytes)
        if len(depth_data) != entry.depth_bytes:
            raise FrameError(source, TRUNCATED, "file changed since it was indexed")
        return RGBDFrame(
            color=self._decode_color(color_data, source),
            depth=self._decode_depth(depth_data, source),
            K_color=self.K_color,
            K_depth=self.K_depth,
            world_from_camera=entry.world_from_camera,
            scene_id=self.scene_id,
            frame_id=str(entry.index),
        )

    def __iter__(self) -> Iterator[RGBDFrame]:
        for index in range(len(self)):
            yield self[index]

    def _decode_color(self, data: bytes, source: str) -> np.ndarray:
        h, w = self.header.color_hw
        if self.header.color_compression == "raw":
            if len(data) != h * w * 3:
                raise FrameError(
                    source, SIZE_MISMATCH, f"raw colour has {len(data)} bytes, expected {h}x{w}x3"
                )
            color = np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3).copy()
        else:
            color = decode_color_bytes(data, source)
        if color.shape[:2] != (h, w):
            raise FrameError(
                source, SIZE_MISMATCH, f"colour is {color.shape[1]}x{color.shape[0]}, header says {w}x{h}"
            )
        check_intrinsics_fit(self.K_color, (h, w), source, "colour", f"{self.path} (header)")
        return color

    def _decode_depth(self, data: bytes, source: str) -> np.ndarray:
        h, w = self.header.depth_hw
        if self.header.depth_compression == "zlib_ushort":
            try:
                data = zlib.decompress(data)
            except zlib.error as err:
                raise FrameError(source, UNDECODABLE, f"depth zlib stream: {err}") from err
        if len(data) != h * w * 2:
            raise FrameError(source, SIZE_MISMATCH, f"depth has {len(data)} bytes, expected {h}x{w} uint16")
        check_intrinsics_fit(self.K_depth, (h, w), source, "depth", f"{self.path} (header)")
        return depth_to_metres(np.frombuffer(data, dtype="<u2").reshape(h, w), self.depth_scale)


def find_sens_files(root: Path, scenes: Sequence[str] | None = None) -> list[Path]:
    """``<root>/<scene>/<scene>.sens`` (ScanNet's download layout) or ``<root>/*.sens``, sorted by scene."""
    if root.is_file():
        return [root]
    if scenes is not None:
        found = []
        for scene in scenes:
            candidates = [root / scene / f"{scene}.sens", root / f"{scene}.sens"]
            found.append(next((c for c in candidates if c.is_file()), candidates[0]))
        return found
    return sorted(set(root.glob("*.sens")) | set(root.glob("*/*.sens")), key=lambda p: (p.stem, str(p)))


class SensScenes(Sequence):
    """All ``.sens`` files of a ScanNet download as one Sequence / torch Dataset of RGBDFrame.

    Args:
        root: ScanNet's ``scans/`` folder (``<scene>/<scene>.sens``), a folder of ``.sens`` files,
            or one file.
        scenes: scene names to read (default: every ``.sens`` found, or those of ``split``).
        split: read ``<root>/scannetv2_<split>.txt`` for the scene names.
        frame_skip, depth_scale, strict: as for :class:`SensFrames`. A file that cannot be opened
            (missing, not a .sens, cut inside its header) is skipped and counted unless ``strict``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        scenes: Sequence[str] | None = None,
        split: str | None = None,
        frame_skip: int = PAPER_FRAME_SKIP,
        depth_scale: float | None = None,
        strict: bool = False,
    ):

        self.root = Path(root)
        if scenes is None and split is not None:
            scenes = scannet_split(self.root, split)
        self.report = DataReport(root=str(self.root), format="scannet-sens")
        self.report.notes.append(f"{every_kth_frame(frame_skip)} (frame_skip={frame_skip})")
        self.files: list[SensFrames] = []
        for path in find_sens_files(self.root, scenes):
            try:
                frames = SensFrames(path, frame_skip=frame_skip, depth_scale=depth_scale, strict=strict)
            except (FrameError, OSError) as err:
                if strict:
                    raise
                error = err if isinstance(err, FrameError) else FrameError(path, MISSING_FILE, str(err))
                self.report.frames_found += 1
                self.report.add_skip(error)
                continue
            self.files.append(frames)
            _merge_report(self.report, frames.report)
        self._ends = np.cumsum([len(f) for f in self.files]).tolist()

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def _locate(self, index: int) -> tuple[SensFrames, int]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"frame index {index} out of range for {len(self)} frames")
        file_index = bisect.bisect_right(self._ends, index)
        start = self._ends[file_index - 1] if file_index else 0
        return self.files[file_index], index - start

    def __getitem__(self, index: int) -> RGBDFrame:  # type: ignore[override]
        frames, local = self._locate(index)
        return frames[local]

    def describe(self, index: int) -> str:
        frames, local = self._locate(index)
        return frames.describe(local)

    def __iter__(self) -> Iterator[RGBDFrame]:
        for index in range(len(self)):
            yield self[index]


def _merge_report(into: DataReport, part: DataReport) -> None:
    into.frames_found += part.frames_found
    into.frames_usable += part.frames_usable
    for reason, count in part.skipped.items():
        into.skipped[reason] = into.skipped.get(reason, 0) + count
        examples = into.examples.setdefault(reason, [])
        examples += part.examples.get(reason, [])[: max(0, MAX_EXAMPLES - len(examples))]
    into.notes += [note for note in part.notes if note not in into.notes]


def write_sens(
    path: str | Path,
    colors: Sequence[np.ndarray],
    depths_mm: Sequence[np.ndarray],
    poses: Sequence[np.ndarray],
    K_color: np.ndarray,
    K_depth: np.ndarray,
    *,
    depth_shift: float = 1000.0,
    color_compression: str = "jpeg",
    sensor_name: str = "ppkt",
) -> Path:
    """Write a small ``.sens`` file (tests, examples): ``(H,W,3)`` uint8 colours, ``(h,w)`` uint16 depths.

    Colours are JPEG- or PNG-compressed (``color_compression``), depths zlib-compressed, as ScanNet does.
    """
    from io import BytesIO

    from PIL import Image

    if not (len(colors) == len(depths_mm) == len(poses)) or not colors:
        raise ValueError("write_sens: need the same non-zero number of colours, depths and poses")
    if color_compression not in ("jpeg", "png"):
        raise ValueError(f"write_sens: color_compression must be 'jpeg' or 'png', got {color_compression!r}")
    codes = {name: code for code, name in COLOR_COMPRESSION.items()}
    ch, cw = colors[0].shape[:2]
    dh, dw = depths_mm[0].shape

    def as4(K: np.ndarray) -> np.ndarray:
        out = np.eye(4)
        out[:3, :3] = K
        return out

    parts = [struct.pack("<I", SENS_VERSION), struct.pack("<Q", len(sensor_name)), sensor_name.encode()]
    for matrix in (as4(K_color), np.eye(4), as4(K_depth), np.eye(4)):
        parts.append(np.asarray(matrix, dtype="<f4").tobytes())
    parts.append(_IMAGE_INFO.pack(codes[color_compression], 1, cw, ch, dw, dh, depth_shift, len(colors)))
    for index, (color, depth, pose) in enumerate(zip(colors, depths_mm, poses, strict=True)):
        buffer = BytesIO()
        Image.fromarray(color).save(
            buffer, format="JPEG" if color_compression == "jpeg" else "PNG", quality=95
        )
        color_data = buffer.getvalue()
        depth_data = zlib.compress(np.ascontiguousarray(depth, dtype="<u2").tobytes())
        parts.append(np.asarray(pose, dtype="<f4").tobytes())
        parts.append(struct.pack("<4Q", index, index, len(color_data), len(depth_data)))
        parts += [color_data, depth_data]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(parts))
    return path

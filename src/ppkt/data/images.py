"""Decoding helpers shared by the RGB-D readers, and the base of the file-per-frame datasets.

Readers index their files once (cheap: listing folders, reading small text files) into
:class:`FrameRecord` rows; images are decoded only in ``__getitem__``. Every decoding problem is
raised as a :class:`~ppkt.data.report.FrameError` that names the file.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ppkt.data.report import (
    BAD_INTRINSICS,
    INVALID_POSE,
    MISSING_FILE,
    SIZE_MISMATCH,
    UNDECODABLE,
    DataReport,
    FrameError,
)
from ppkt.data.types import RGBDFrame

INVALID_DEPTH = (0, 65535)
"""Raw depth values that mean "no measurement", the same in every RGB-D reader: 0 (ScanNet, TUM,
Kinect/RealSense exports) and 65535 (7-Scenes, saturated 16-bit sensors)."""

DECODER_ERRORS: tuple[type[Exception], ...] = (
    UnidentifiedImageError,
    Image.DecompressionBombError,  # a header claiming a huge image; not an OSError
    OSError,  # truncated or corrupt data
    SyntaxError,  # some PIL plugins raise it on a bad header
    ValueError,
    EOFError,
)
"""Everything an image decoder raises on a bad file; every reader turns it into a FrameError."""

DEPTH_RANGE = (0.1, 6.0)
"""Depth (m) that gives a point by default: pretraining's data.min_depth/max_depth, and check-data."""

PRINCIPAL_POINT_TOLERANCE = 0.15
"""Largest distance of the principal point from the image centre, as a fraction of the image side.

Real cameras have it within a few per cent of the centre; intrinsics made for an image 1.5 times
larger or smaller than the one read put it at 1/6 of the side or farther."""

POSE_TOLERANCE = 1e-3
"""Largest allowed deviation of R^T R from the identity in a camera pose (poses are text, 6 decimals)."""


def read_color(path: str | Path, downscale: int = 1) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8 RGB.

    With ``downscale = s > 1`` the result is ``(ceil(H/s), ceil(W/s))``, output pixel ``ij``
    covering input pixels ``[s*i, s*i+s) x [s*j, s*j+s)``: JPEGs are decoded at that scale
    directly (DCT scaling, about twice as fast for s = 4), other formats are box-averaged.
    Use :func:`downscale_intrinsics` for the matching K.
    """
    try:
        with Image.open(path) as image:
            if downscale > 1:
                w, h = image.size
                target = (-(-w // downscale), -(-h // downscale))
                if image.format == "JPEG":
                    # draft() picks the largest DCT scale (1/2, 1/4, 1/8) not below the request.
                    image.draft("RGB", (w // downscale, h // downscale))
                image = image.convert("RGB")
                done = max(1, round(w / image.size[0]))
                if image.size != target and downscale % done == 0:
                    image = image.reduce(downscale // done)
                if image.size != target:
                    raise FrameError(path, UNDECODABLE, f"cannot decode at 1/{downscale} scale")
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError as err:
        raise FrameError(path, MISSING_FILE) from err
    except DECODER_ERRORS as err:
        raise FrameError(path, UNDECODABLE, str(err)) from err


def decode_color_bytes(data: bytes, source: str) -> np.ndarray:
    """Decode compressed image bytes (JPEG, PNG) to ``(H, W, 3)`` uint8 RGB; ``source`` names them."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except DECODER_ERRORS as err:
        raise FrameError(source, UNDECODABLE, str(err)) from err


def resize_image(image: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """``(3, H, W)`` float -> ``(3, *out_hw)``, bilinear with pixel centres at integer ``uv``
    (``u' = (u + 0.5) * W'/W - 0.5``, docs/conventions.md); antialiased when shrinking."""
    if tuple(image.shape[1:]) == tuple(out_hw):
        return image
    return F.interpolate(image[None], size=out_hw, mode="bilinear", align_corners=False, antialias=True)[0]


def prepare_image(color: np.ndarray, image_hw: tuple[int, int]) -> torch.Tensor:
    """``(H0, W0, 3)`` uint8 RGB -> ``(3, H, W)`` float32 in ``[0, 1]`` at ``image_hw``, no crop.

    The one preparation of a colour image for the teacher: pretraining samples
    (``ppkt.train.samples``) and the teacher feature cache (``ppkt.teachers.cache``) both call it,
    so cached features equal recomputed ones by construction. Raises ``ValueError`` on a wrong
    shape or dtype.
    """
    if color.ndim != 3 or color.shape[2] != 3 or color.dtype != np.uint8:
        raise ValueError(f"colour image must be (H, W, 3) uint8, got {color.shape} {color.dtype}")
    array = np.ascontiguousarray(color) if color.flags.writeable else np.array(color)  # torch wants writable
    return resize_image(torch.from_numpy(array).permute(2, 0, 1).float() / 255.0, tuple(image_hw))


def read_depth_png(
    path: str | Path, depth_scale: float, invalid_values: Sequence[int] = INVALID_DEPTH
) -> np.ndarray:
    """Decode a 16-bit depth PNG to ``(h, w)`` float32 metres (``value / depth_scale``).

    Pixels equal to one of ``invalid_values`` (:data:`INVALID_DEPTH`) become 0 (invalid).
    """
    try:
        with Image.open(path) as image:
            mode = image.mode
            raw = np.asarray(image)
    except FileNotFoundError as err:
        raise FrameError(path, MISSING_FILE) from err
    except DECODER_ERRORS as err:
        raise FrameError(path, UNDECODABLE, str(err)) from err
    if raw.ndim != 2 or not mode.startswith("I"):
        raise FrameError(path, UNDECODABLE, f"depth must be a single-channel 16-bit PNG, got mode {mode}")
    return depth_to_metres(raw, depth_scale, invalid_values)


def depth_to_metres(
    raw: np.ndarray, depth_scale: float, invalid_values: Sequence[int] = INVALID_DEPTH
) -> np.ndarray:
    depth = raw.astype(np.float32) / np.float32(depth_scale)
    for value in invalid_values:
        if value != 0:
            depth[raw == value] = 0.0
    return depth


def downscale_intrinsics(K: np.ndarray, downscale: int) -> np.ndarray:
    """K of an image reduced by an integer factor (pixel ``ij`` = block ``[s*i, s*i+s)``).

    With pixel centres at integer uv, ``u' = (u + 0.5) / s - 0.5`` (docs/conventions.md).
    """
    if downscale == 1:
        return K
    K = np.array(K, dtype=np.float64)
    K[:2, :2] /= downscale
    K[:2, 2] = (K[:2, 2] + 0.5) / downscale - 0.5
    return K


def parse_matrix(text: str, source: str, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    """Parse whitespace-separated numbers into a float64 matrix (``inf``/``nan`` tokens are kept)."""
    try:
        values = np.array(text.split(), dtype=np.float64)
    except ValueError as err:
        raise FrameError(source, INVALID_POSE, f"not numbers: {err}") from err
    if values.size != shape[0] * shape[1]:
        raise FrameError(source, INVALID_POSE, f"expected {shape[0]}x{shape[1]} numbers, found {values.size}")
    return values.reshape(shape)


def read_pose_txt(path: str | Path) -> np.ndarray:
    """Read a 4x4 camera-to-world text pose and check that it is a finite rigid transform."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError as err:
        raise FrameError(path, MISSING_FILE) from err
    except (OSError, UnicodeDecodeError) as err:
        raise FrameError(path, INVALID_POSE, str(err)) from err
    pose = parse_matrix(text, str(path))
    problem = pose_problem(pose)
    if problem:
        raise FrameError(path, INVALID_POSE, problem)
    return pose


def pose_problem(pose: np.ndarray) -> str | None:
    """Why ``pose`` is not a finite rigid 4x4 transform, or None when it is."""
    if pose.shape != (4, 4):
        return f"shape {pose.shape}, expected (4, 4)"
    if not np.all(np.isfinite(pose)):
        return "non-finite values (inf/nan)"
    if np.abs(pose[3] - [0, 0, 0, 1]).max() > POSE_TOLERANCE:
        return f"last row {pose[3].tolist()} is not [0, 0, 0, 1]"
    rotation = pose[:3, :3]
    error = np.abs(rotation.T @ rotation - np.eye(3)).max()
    if error > POSE_TOLERANCE or np.linalg.det(rotation) < 0:
        det = np.linalg.det(rotation)
        return f"rotation part is not a rotation (|R^T R - I| = {error:.3g}, det = {det:.3g})"
    return None


def read_intrinsics_txt(path: str | Path) -> np.ndarray:
    """Read a 3x3 (7-Scenes) or 4x4 (ScanNet) intrinsics text file; returns the ``(3, 3)`` K."""
    try:
        values = np.array(Path(path).read_text().split(), dtype=np.float64)
    except FileNotFoundError as err:
        raise FrameError(path, MISSING_FILE) from err
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise FrameError(path, BAD_INTRINSICS, str(err)) from err
    if values.size not in (9, 16):
        raise FrameError(path, BAD_INTRINSICS, f"expected 3x3 or 4x4 numbers, found {values.size}")
    side = 3 if values.size == 9 else 4
    K = values.reshape(side, side)[:3, :3].copy()
    problem = intrinsics_problem(K)
    if problem:
        raise FrameError(path, BAD_INTRINSICS, problem)
    return K


def intrinsics_problem(K: np.ndarray) -> str | None:
    if not np.all(np.isfinite(K)):
        return "non-finite values"
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        return f"focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}"
    if abs(K[2, 2] - 1) > 1e-6 or np.abs(K[2, :2]).max() > 1e-6:
        return f"last row {K[2].tolist()} is not [0, 0, 1]"
    return None


def check_intrinsics_fit(
    K: np.ndarray, hw: tuple[int, int], source: str, what: str, intrinsics_source: str = ""
) -> None:
    """Raise SIZE_MISMATCH when K was made for another image size than ``hw``.

    Tested through the principal point: it must lie within :data:`PRINCIPAL_POINT_TOLERANCE` of
    the image centre (a depth PNG saved at half size with full-size intrinsics is caught here;
    left alone its geometry would be silently wrong). ``intrinsics_source`` names K's file.
    """
    h, w = hw
    cx, cy = K[0, 2], K[1, 2]
    off_x, off_y = abs(cx - (w - 1) / 2) / w, abs(cy - (h - 1) / 2) / h
    if max(off_x, off_y) > PRINCIPAL_POINT_TOLERANCE:
        made_for = f"about {2 * cx + 1:.0f}x{2 * cy + 1:.0f}"
        of = f" of {intrinsics_source}" if intrinsics_source else ""
        raise FrameError(
            source,
            SIZE_MISMATCH,
            f"{what} image is {w}x{h} but the principal point ({cx:.1f}, {cy:.1f}){of} is that of an "
            f"image of {made_for}: the intrinsics belong to another image size",
        )


@dataclass
class FrameRecord:
    """Where one frame's files are; made while indexing, decoded in ``__getitem__``."""

    scene_id: str
    frame_id: str
    color_path: str
    depth_path: str
    K_color: np.ndarray
    K_depth: np.ndarray
    world_from_camera: np.ndarray | None
    depth_scale: float
    invalid_depth: tuple[int, ...] = INVALID_DEPTH
    color_from_depth: np.ndarray = field(default_factory=lambda: np.eye(4))
    color_downscale: int = 1
    K_color_path: str = ""
    K_depth_path: str = ""


def load_record(record: FrameRecord) -> RGBDFrame:
    """Decode one indexed frame; raises FrameError naming the file on any problem."""
    color = read_color(record.color_path, record.color_downscale)
    K_color = downscale_intrinsics(record.K_color, record.color_downscale)
    depth = read_depth_png(record.depth_path, record.depth_scale, record.invalid_depth)
    check_intrinsics_fit(K_color, color.shape[:2], record.color_path, "colour", record.K_color_path)
    check_intrinsics_fit(record.K_depth, depth.shape, record.depth_path, "depth", record.K_depth_path)
    return RGBDFrame(
        color=color,
        depth=depth,
        K_color=K_color,
        K_depth=record.K_depth,
        world_from_camera=record.world_from_camera,
        scene_id=record.scene_id,
        frame_id=record.frame_id,
        color_from_depth=record.color_from_depth,
    )


class FileRGBDFrames(Sequence):
    """Base of the readers with one file per image: a Sequence (and torch Dataset) of RGBDFrame.

    Subclasses fill ``self.records`` (usable frames only) and ``self.report`` while indexing.
    ``frames[i]`` decodes frame ``i`` and raises :class:`FrameError` (naming the file) when it
    cannot; run ``ppkt check-data`` before a long run to find such frames.
    """

    records: list[FrameRecord]
    report: DataReport

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> RGBDFrame:  # type: ignore[override]
        if not -len(self.records) <= index < len(self.records):
            raise IndexError(f"frame index {index} out of range for {len(self.records)} frames")
        return load_record(self.records[index])

    def __iter__(self) -> Iterator[RGBDFrame]:
        for index in range(len(self)):
            yield self[index]

    def describe(self, index: int) -> str:
        """The file(s) of frame ``index``, for reports."""
        return self.records[index].color_path

    def describe_depth(self, index: int) -> str:
        """The depth file of frame ``index``, for reports of depth problems."""
        return self.records[index].depth_path

    def _skip(self, error: FrameError, strict: bool) -> None:
        if strict:
            raise error
        self.report.add_skip(error)


COLOR_SUFFIXES = (".jpg", ".jpeg", ".png")
"""Colour image files the folder readers (ScanNet export, rgbd-folder) take."""


def files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, str]:
    """frame id -> file name of the files in ``folder`` with one of ``suffixes`` (empty when the
    folder is missing: the readers count the frames that then lack a file)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return {}
    out = {}
    for name in names:
        stem, dot, suffix = name.rpartition(".")
        if dot and "." + suffix.lower() in suffixes:
            out[stem] = name
    return out

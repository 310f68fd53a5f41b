"""Small valid datasets and run folders for tests/cli/test_bad_input.py, each test breaks one thing.

Imported by name (not a conftest). The ScanNet export: colour 80x60, depth 40x30 at 1 m, each image
with intrinsics that fit it; the .sens file holds the same frames.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

K_COLOR = np.array([[120.0, 0.0, 39.5], [0.0, 120.0, 29.5], [0.0, 0.0, 1.0]])  # 80x60 colour
K_DEPTH = np.array([[60.0, 0.0, 19.5], [0.0, 60.0, 14.5], [0.0, 0.0, 1.0]])  # 40x30 depth
SCENE = "scene0000_00"


def pose(index: int) -> np.ndarray:
    angle = 0.1 * index
    out = np.eye(4)
    out[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    out[:3, 3] = [0.1 * index, 1.0, 1.5]
    return out


def images(index: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured colour image and a uint16 depth in millimetres (about 1 m)."""
    rng = np.random.default_rng(index)
    color = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    depth = np.full((30, 40), 1000 + 10 * index, dtype=np.uint16)
    depth += np.arange(40, dtype=np.uint16)[None, :] * 5
    return color, depth


def write_matrix(path: Path, matrix: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(" ".join(f"{v:f}" for v in row) for row in matrix) + "\n")


def write_scannet(root: Path, frames: int = 4) -> Path:
    """One exported ScanNet scene ``root/scene0000_00`` with ``frames`` frames 0, 1, ..."""
    scene = root / SCENE
    for K, name in ((K_COLOR, "intrinsic_color.txt"), (K_DEPTH, "intrinsic_depth.txt")):
        K4 = np.eye(4)
        K4[:3, :3] = K
        write_matrix(scene / "intrinsic" / name, K4)
    for folder in ("color", "depth", "pose"):
        (scene / folder).mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        color, depth = images(index)
        Image.fromarray(color).save(scene / "color" / f"{index}.jpg", quality=95)
        Image.fromarray(depth).save(scene / "depth" / f"{index}.png")
        write_matrix(scene / "pose" / f"{index}.txt", pose(index))
    return root


def png_bomb_header(width: int = 30000, height: int = 30000) -> bytes:
    """The start of a PNG whose header claims ``width x height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


def write_sens_file(path: Path, frames: int = 3) -> Path:
    from ppkt.data.sens import write_sens

    colors, depths = zip(*(images(i) for i in range(frames)), strict=True)
    poses = [pose(i) for i in range(frames)]
    return write_sens(path, list(colors), list(depths), poses, K_COLOR, K_DEPTH)


def sens_header_offset(path: Path, field: str) -> int:
    """Byte offset of a header field of a .sens file written by :func:`write_sens_file`."""
    data = path.read_bytes()
    (name_len,) = struct.unpack_from("<Q", data, 4)
    info = 4 + 8 + name_len + 64 * 4  # version, name length, name, four 4x4 float32 matrices
    offsets = {
        "version": 0,
        "name_len": 4,
        "color_compression": info,
        "depth_compression": info + 4,
        "depth_shift": info + 24,
        "num_frames": info + 28,
        "first_frame": info + 36,
    }
    return offsets[field]


def patch_bytes(path: Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))

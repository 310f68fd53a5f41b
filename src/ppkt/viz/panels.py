"""Panels: titled images side by side, legends, and writing PNG / PLY files."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ppkt.data.ply import write_ply_vertices
from ppkt.utils.io import atomic_write_bytes

_TITLE_HEIGHT = 22


def _font(size: int = 14) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def titled(image: np.ndarray, title: str) -> np.ndarray:
    """Add a white title bar above ``image (H,W,3)``."""
    h, w = image.shape[:2]
    canvas = Image.new("RGB", (w, h + _TITLE_HEIGHT), (255, 255, 255))
    canvas.paste(Image.fromarray(np.ascontiguousarray(image[..., :3])), (0, _TITLE_HEIGHT))
    ImageDraw.Draw(canvas).text((4, 3), title, fill=(0, 0, 0), font=_font())
    return np.asarray(canvas)


def hstack(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, gap: int = 6) -> np.ndarray:
    """Place images side by side (top-aligned, white gaps), each optionally titled."""
    if titles is not None:
        images = [titled(im, t) for im, t in zip(images, titles, strict=True)]
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    x = 0
    for im in images:
        canvas[: im.shape[0], x : x + im.shape[1]] = im[..., :3]
        x += im.shape[1] + gap
    return canvas


def vstack(images: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    width = max(im.shape[1] for im in images)
    height = sum(im.shape[0] for im in images) + gap * (len(images) - 1)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    y = 0
    for im in images:
        canvas[y : y + im.shape[0], : im.shape[1]] = im[..., :3]
        y += im.shape[0] + gap
    return canvas


def legend(names: Sequence[str], colors: np.ndarray, width: int = 170) -> np.ndarray:
    """A vertical legend: one swatch and name per class."""
    row = 18
    canvas = Image.new("RGB", (width, row * len(names) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for k, (name, color) in enumerate(zip(names, colors, strict=True)):
        y = 4 + k * row
        draw.rectangle([4, y + 2, 18, y + 14], fill=tuple(int(c) for c in color), outline=(0, 0, 0))
        draw.text((24, y + 1), name, fill=(0, 0, 0), font=_font(12))
    return np.asarray(canvas)


def caption(image: np.ndarray, text: str, *, size: int = 13) -> np.ndarray:
    """Add a white bar above ``image (H,W,3)`` holding ``text``, wrapped to the image's width."""
    font = _font(size)
    width = image.shape[1]
    lines: list[str] = []
    for paragraph in text.split("\n"):
        words, line = paragraph.split(), ""
        for word in words:
            trial = f"{line} {word}".strip()
            if line and font.getlength(trial) > width - 8:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    step = size + 5
    canvas = Image.new("RGB", (width, image.shape[0] + step * len(lines) + 6), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(lines):
        draw.text((4, 3 + k * step), line, fill=(0, 0, 0), font=font)
    canvas.paste(Image.fromarray(np.ascontiguousarray(image[..., :3])), (0, step * len(lines) + 6))
    return np.asarray(canvas)


def colorbar(
    colors: np.ndarray, vmin: float, vmax: float, label: str, *, height: int = 360, ticks: int = 5
) -> np.ndarray:
    """A vertical colour scale: ``colors (K, 3)`` uint8 from ``vmin`` (bottom) to ``vmax`` (top),
    with ``ticks`` labelled values and ``label`` above it."""
    bar_w, left, width, top = 18, 6, 92, 26
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    inner = height - top - 10
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    for y in range(inner):
        t = 1.0 - y / max(inner - 1, 1)
        c = colors[min(int(round(t * (len(colors) - 1))), len(colors) - 1)]
        draw.line([(left, top + y), (left + bar_w, top + y)], fill=tuple(int(v) for v in c))
    draw.rectangle([left, top, left + bar_w, top + inner - 1], outline=(0, 0, 0))
    for k in range(ticks):
        t = k / max(ticks - 1, 1)
        y = top + round((1 - t) * (inner - 1))
        draw.line([(left + bar_w, y), (left + bar_w + 4, y)], fill=(0, 0, 0))
        draw.text(
            (left + bar_w + 7, y - 7), f"{vmin + t * (vmax - vmin):.2f}", fill=(0, 0, 0), font=_font(12)
        )
    draw.text((2, 4), label, fill=(0, 0, 0), font=_font(12))
    return np.asarray(canvas)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an ``(H,W,3)`` uint8 image as PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image[..., :3].astype(np.uint8))).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def save_colored_ply(path: str | Path, points: np.ndarray, colors: np.ndarray, comment: str = "") -> Path:
    """Write a coloured point cloud (opens in MeshLab, CloudCompare, Open3D)."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    return write_ply_vertices(
        path,
        {
            "x": points[:, 0],
            "y": points[:, 1],
            "z": points[:, 2],
            "red": colors[:, 0],
            "green": colors[:, 1],
            "blue": colors[:, 2],
        },  # fmt: skip
        comment=comment,
    )

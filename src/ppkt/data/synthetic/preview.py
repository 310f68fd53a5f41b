"""A contact sheet of a synthetic dataset: colour, colourised depth and labels, a few frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ppkt.utils.io import atomic_write

_DEPTH_STOPS = np.array(
    [[0.05, 0.03, 0.35], [0.1, 0.45, 0.85], [0.2, 0.8, 0.5], [0.95, 0.85, 0.2], [0.9, 0.2, 0.1]]
)


def colorize_depth(depth_mm: np.ndarray, max_m: float = 6.0) -> np.ndarray:
    """``(H, W)`` uint16 millimetres -> ``(H, W, 3)`` uint8, near blue to far red, invalid black."""
    t = np.clip(depth_mm.astype(np.float32) / (1000.0 * max_m), 0, 1) * (len(_DEPTH_STOPS) - 1)
    k = np.minimum(t.astype(np.int64), len(_DEPTH_STOPS) - 2)
    f = (t - k)[..., None]
    rgb = _DEPTH_STOPS[k] * (1 - f) + _DEPTH_STOPS[k + 1] * f
    rgb[depth_mm == 0] = 0
    return (rgb * 255).astype(np.uint8)


def label_palette() -> np.ndarray:
    """``(256, 3)`` uint8 colours for NYU40 ids (0 = black), fixed and well separated."""
    rng = np.random.default_rng(40)
    palette = rng.integers(40, 256, size=(256, 3)).astype(np.uint8)
    palette[0] = 0
    return palette


def write_preview(
    root: str | Path, out_png: str | Path, *, scenes: int = 3, frames_per_scene: int = 2
) -> Path:
    """Tile ``frames_per_scene`` evenly spaced frames of the first ``scenes`` rooms into one PNG.

    Columns: colour, depth (colourised), labels (colourised, when ``label/`` was written).
    """
    root = Path(root)
    scene_dirs = sorted(p for p in root.glob("scene*_00") if p.is_dir())[:scenes]
    if not scene_dirs:
        raise FileNotFoundError(f"{root}: no scene folders to preview")
    palette = label_palette()
    rows = []
    for scene_dir in scene_dirs:
        ids = sorted(int(p.stem) for p in (scene_dir / "color").glob("*.jpg"))
        picks = [ids[int(k)] for k in np.linspace(0, len(ids) - 1, min(frames_per_scene, len(ids)))]
        for i in picks:
            tiles = [np.asarray(Image.open(scene_dir / "color" / f"{i}.jpg").convert("RGB"))]
            tiles.append(colorize_depth(np.asarray(Image.open(scene_dir / "depth" / f"{i}.png"))))
            label_path = scene_dir / "label" / f"{i}.png"
            if label_path.is_file():
                tiles.append(palette[np.asarray(Image.open(label_path))])
            rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0))) for r in rows]
    sheet = np.concatenate(rows, axis=0)
    return atomic_write(out_png, lambda tmp: Image.fromarray(sheet).save(tmp, format="PNG"))

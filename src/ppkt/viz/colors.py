"""Colours: a fixed class palette and a perceptually ordered colormap (no matplotlib needed)."""

from __future__ import annotations

import colorsys

import numpy as np

# Anchors of a viridis-like map (dark purple -> blue -> green -> yellow): ordered in lightness,
# readable by colour-blind viewers, and free of matplotlib so that rendering works without it.
_ANCHORS = np.array(
    [
        [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
        [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
    ],
    dtype=np.float64,
)  # fmt: skip

IGNORE_COLOR = (0, 0, 0)


def colormap(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Map scalars to ``(..., 3)`` uint8 RGB; NaN maps to black. Limits default to 1st/99th percentiles."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if vmin is None or vmax is None:
        lo, hi = np.percentile(values[finite], [1, 99]) if finite.any() else (0.0, 1.0)
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    span = max(vmax - vmin, 1e-12)
    t = np.clip((np.where(finite, values, vmin) - vmin) / span, 0, 1) * (len(_ANCHORS) - 1)
    low = np.floor(t).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (t - low)[..., None]
    rgb = _ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac
    rgb[~finite] = 0
    return rgb.round().astype(np.uint8)


def class_palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 distinct colours, the same for every call (golden-ratio hues)."""
    colors = []
    for k in range(num_classes):
        hue = (k * 0.618033988749895) % 1.0
        sat = 0.65 + 0.3 * ((k // 3) % 2)
        val = 0.95 - 0.25 * ((k // 2) % 2)
        colors.append(colorsys.hsv_to_rgb(hue, sat, val))
    return (np.array(colors).reshape(-1, 3) * 255).round().astype(np.uint8)


def label_colors(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Colours for class ids; ignore (negative) labels are black."""
    labels = np.asarray(labels)
    palette = class_palette(num_classes)
    out = np.zeros((*labels.shape, 3), dtype=np.uint8)
    valid = (labels >= 0) & (labels < num_classes)
    out[valid] = palette[labels[valid]]
    return out

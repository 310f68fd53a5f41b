"""Colours: a fixed class palette and a perceptually ordered colormap (no matplotlib needed)."""

from __future__ import annotations

import functools

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


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` sRGB in [0, 255] -> CIELAB (D65 white): ``L`` in [0, 100], ``a``, ``b``."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz_from_rgb = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = linear @ xyz_from_rgb.T / np.array([0.95047, 1.0, 1.08883])
    delta = 6.0 / 29.0
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4.0 / 29.0)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


# The first two classes of every label set here are the large calm surfaces (ScanNet: wall, floor):
# they keep the ScanNet benchmark's soft blue and green; every further colour is the one farthest
# (CIELAB distance) from all colours taken so far, from the white background and from the black of
# unlabelled points. For 20 classes the closest pair is about 40 Lab units apart (a "just noticeable"
# difference is about 2.3), so chair/desk or window/curtain no longer look alike.
_FIRST_COLORS = ((174, 199, 232), (152, 223, 138))


@functools.lru_cache(maxsize=8)
def _farthest_point_palette(num_classes: int) -> np.ndarray:
    levels = np.linspace(0, 255, 18)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    lab = srgb_to_lab(grid)
    keep = (lab[:, 0] > 25) & (lab[:, 0] < 90)  # not near black (unlabelled) or white (background)
    grid, lab = grid[keep], lab[keep]
    fixed = np.array(_FIRST_COLORS[:num_classes], dtype=np.float64).reshape(-1, 3)
    distance = np.full(len(lab), np.inf)
    for taken in [srgb_to_lab(np.array([[0, 0, 0], [255, 255, 255]], np.float64)), srgb_to_lab(fixed)]:
        for row in taken:
            distance = np.minimum(distance, np.linalg.norm(lab - row, axis=1))
    chosen = []
    for _ in range(num_classes - len(fixed)):
        best = int(np.argmax(distance))  # argmax takes the first of equals: deterministic
        chosen.append(best)
        distance = np.minimum(distance, np.linalg.norm(lab - lab[best], axis=1))
    return np.concatenate([fixed, grid[chosen]]).round().astype(np.uint8)


def class_palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 colours, every pair easy to tell apart, the same for every call;
    the first ``k`` colours do not depend on ``num_classes``."""
    if num_classes <= 0:
        return np.zeros((0, 3), dtype=np.uint8)
    return _farthest_point_palette(max(num_classes, 20))[:num_classes].copy()


def label_colors(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Colours for class ids; ignore (negative) labels are black."""
    labels = np.asarray(labels)
    palette = class_palette(num_classes)
    out = np.zeros((*labels.shape, 3), dtype=np.uint8)
    valid = (labels >= 0) & (labels < num_classes)
    out[valid] = palette[labels[valid]]
    return out

"""The ScanNet v2 semantic segmentation benchmark classes (20) and their NYU40 ids.

ScanNet's ``.labels.ply`` files store NYU40 ids per vertex; the benchmark keeps 20 of them
and ignores the rest (including ceiling, 22). This table is the benchmark's own
(``VALID_CLASS_IDS`` in the ScanNet evaluation scripts).
"""

from __future__ import annotations

import numpy as np

from ppkt.data.types import IGNORE_LABEL

SCANNET20_CLASS_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
    "bathtub", "otherfurniture",
)  # fmt: skip

SCANNET20_NYU40_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)


def nyu40_to_scannet20(nyu40: np.ndarray) -> np.ndarray:
    """Map NYU40 ids (0 = unannotated) to benchmark ids ``0..19``; everything else to IGNORE_LABEL."""
    lut = np.full(256, IGNORE_LABEL, dtype=np.int64)
    lut[list(SCANNET20_NYU40_IDS)] = np.arange(len(SCANNET20_NYU40_IDS))
    nyu40 = np.asarray(nyu40).astype(np.int64)
    out = np.full(nyu40.shape, IGNORE_LABEL, dtype=np.int64)
    in_range = (nyu40 >= 0) & (nyu40 < 256)
    out[in_range] = lut[nyu40[in_range]]
    return out

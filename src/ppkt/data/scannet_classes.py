"""ScanNet's label sets: the 20 benchmark classes (default) and the 40 NYU40 classes.

ScanNet's ``.labels.ply`` files store NYU40 ids per vertex (0 = unannotated). The benchmark keeps
20 of them and ignores the rest (including ceiling, 22): its table is the benchmark's own
(``VALID_CLASS_IDS`` in the ScanNet evaluation scripts). ``nyu40`` keeps all 40 ids (class id =
NYU40 id - 1), with the names of the ``nyu40class`` column of ScanNet's
``scannetv2-labels.combined.tsv`` (NYU Depth v2's 40-class set, Gupta et al. 2013).

ScanNet200 is not here: its 200 class ids come from the raw category column of the
``.tsv`` through ScanNet's per-scene ``aggregation.json`` / segment files, and its class list
is not reproduced in ppkt.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ppkt.data.types import IGNORE_LABEL

SCANNET20_CLASS_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
    "bathtub", "otherfurniture",
)  # fmt: skip

SCANNET20_NYU40_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)


NYU40_CLASS_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)  # fmt: skip
"""NYU40 class names, index = NYU40 id - 1 (the spelling "refridgerator" is ScanNet's)."""


def nyu40_to_scannet20(nyu40: np.ndarray) -> np.ndarray:
    """Map NYU40 ids (0 = unannotated) to benchmark ids ``0..19``; everything else to IGNORE_LABEL."""
    lut = np.full(256, IGNORE_LABEL, dtype=np.int64)
    lut[list(SCANNET20_NYU40_IDS)] = np.arange(len(SCANNET20_NYU40_IDS))
    nyu40 = np.asarray(nyu40).astype(np.int64)
    out = np.full(nyu40.shape, IGNORE_LABEL, dtype=np.int64)
    in_range = (nyu40 >= 0) & (nyu40 < 256)
    out[in_range] = lut[nyu40[in_range]]
    return out


def nyu40_to_nyu40(nyu40: np.ndarray) -> np.ndarray:
    """Map NYU40 ids ``1..40`` to ``0..39``; 0 (unannotated) and anything else to IGNORE_LABEL."""
    nyu40 = np.asarray(nyu40).astype(np.int64)
    return np.where((nyu40 >= 1) & (nyu40 <= 40), nyu40 - 1, IGNORE_LABEL)


LABEL_SETS: dict[str, tuple[tuple[str, ...], Callable[[np.ndarray], np.ndarray]]] = {
    "scannet20": (SCANNET20_CLASS_NAMES, nyu40_to_scannet20),
    "nyu40": (NYU40_CLASS_NAMES, nyu40_to_nyu40),
}
"""``data.label_set`` -> (class names, NYU40 id -> class id mapping)."""


def label_set(name: str) -> tuple[tuple[str, ...], Callable[[np.ndarray], np.ndarray]]:
    if name not in LABEL_SETS:
        hint = " (ScanNet200 is not supported yet)" if name == "scannet200" else ""
        raise ValueError(f"unknown label set {name!r}{hint}; known: {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]

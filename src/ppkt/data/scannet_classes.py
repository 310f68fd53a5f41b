"""ScanNet's label sets: the 20 benchmark classes (default), the 40 NYU40 classes, ScanNet200.

ScanNet's ``.labels.ply`` files store NYU40 ids per vertex (0 = unannotated). The benchmark keeps
20 of them and ignores the rest (including ceiling, 22): its table is the benchmark's own
(``VALID_CLASS_IDS`` in the ScanNet evaluation scripts). ``nyu40`` keeps all 40 ids (class id =
NYU40 id - 1), with the names of the ``nyu40class`` column of ScanNet's
``scannetv2-labels.combined.tsv`` (NYU Depth v2's 40-class set, Gupta et al. 2013).

ScanNet200 (Rozenberszki et al., "Language-Grounded Indoor 3D Semantic Segmentation in the
Wild", ECCV 2022) labels vertices with the ``id`` column of ``scannetv2-labels.combined.tsv``
(one id per raw category) and keeps 200 of those ids. Its table below is the benchmark's own:
``VALID_CLASS_IDS_200`` and ``CLASS_LABELS_200`` of ScanNet's
``BenchmarkScripts/ScanNet200/scannet200_constants.py`` (github.com/ScanNet/ScanNet), in that
order; the raw categories come from each scene's aggregation and segment files
(``ppkt.data.scannet.read_scannet_scene``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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


SCANNET200_CLASS_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17,
    18, 19, 21, 22, 23, 24, 26, 27, 28, 29, 31, 32, 33, 34, 35, 36,
    38, 39, 40, 41, 42, 44, 45, 46, 47, 48, 49, 50, 51, 52, 54, 55,
    56, 57, 58, 59, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73,
    74, 75, 76, 77, 78, 79, 80, 82, 84, 86, 87, 88, 89, 90, 93, 95,
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 110, 112, 115, 116,
    118, 120, 121, 122, 125, 128, 130, 131, 132, 134, 136, 138, 139, 140, 141, 145,
    148, 154, 155, 156, 157, 159, 161, 163, 165, 166, 168, 169, 170, 177, 180, 185,
    188, 191, 193, 195, 202, 208, 213, 214, 221, 229, 230, 232, 233, 242, 250, 261,
    264, 276, 283, 286, 300, 304, 312, 323, 325, 331, 342, 356, 370, 392, 395, 399,
    408, 417, 488, 540, 562, 570, 572, 581, 609, 748, 776, 1156, 1163, 1164, 1165, 1166,
    1167, 1168, 1169, 1170, 1171, 1172, 1173, 1174, 1175, 1176, 1178, 1179, 1180, 1181, 1182, 1183,
    1184, 1185, 1186, 1187, 1188, 1189, 1190, 1191,
)  # fmt: skip
"""ScanNet200's 200 class ids: values of the ``id`` column of scannetv2-labels.combined.tsv."""

SCANNET200_CLASS_NAMES: tuple[str, ...] = (
    "wall", "chair", "floor", "table", "door", "couch",
    "cabinet", "shelf", "desk", "office chair", "bed", "pillow",
    "sink", "picture", "window", "toilet", "bookshelf", "monitor",
    "curtain", "book", "armchair", "coffee table", "box", "refrigerator",
    "lamp", "kitchen cabinet", "towel", "clothes", "tv", "nightstand",
    "counter", "dresser", "stool", "cushion", "plant", "ceiling",
    "bathtub", "end table", "dining table", "keyboard", "bag", "backpack",
    "toilet paper", "printer", "tv stand", "whiteboard", "blanket", "shower curtain",
    "trash can", "closet", "stairs", "microwave", "stove", "shoe",
    "computer tower", "bottle", "bin", "ottoman", "bench", "board",
    "washing machine", "mirror", "copier", "basket", "sofa chair", "file cabinet",
    "fan", "laptop", "shower", "paper", "person", "paper towel dispenser",
    "oven", "blinds", "rack", "plate", "blackboard", "piano",
    "suitcase", "rail", "radiator", "recycling bin", "container", "wardrobe",
    "soap dispenser", "telephone", "bucket", "clock", "stand", "light",
    "laundry basket", "pipe", "clothes dryer", "guitar", "toilet paper holder", "seat",
    "speaker", "column", "bicycle", "ladder", "bathroom stall", "shower wall",
    "cup", "jacket", "storage bin", "coffee maker", "dishwasher", "paper towel roll",
    "machine", "mat", "windowsill", "bar", "toaster", "bulletin board",
    "ironing board", "fireplace", "soap dish", "kitchen counter", "doorframe", "toilet paper dispenser",
    "mini fridge", "fire extinguisher", "ball", "hat", "shower curtain rod", "water cooler",
    "paper cutter", "tray", "shower door", "pillar", "ledge", "toaster oven",
    "mouse", "toilet seat cover dispenser", "furniture", "cart", "storage container", "scale",
    "tissue box", "light switch", "crate", "power outlet", "decoration", "sign",
    "projector", "closet door", "vacuum cleaner", "candle", "plunger", "stuffed animal",
    "headphones", "dish rack", "broom", "guitar case", "range hood", "dustpan",
    "hair dryer", "water bottle", "handicap bar", "purse", "vent", "shower floor",
    "water pitcher", "mailbox", "bowl", "paper bag", "alarm clock", "music stand",
    "projector screen", "divider", "laundry detergent", "bathroom counter", "object", "bathroom vanity",
    "closet wall", "laundry hamper", "bathroom stall door", "ceiling light", "trash bin", "dumbbell",
    "stair rail", "tube", "bathroom cabinet", "cd case", "closet rod", "coffee kettle",
    "structure", "shower head", "keyboard piano", "case of water bottles", "coat rack", "storage organizer",
    "folded chair", "fire alarm", "power strip", "calendar", "poster", "potted plant",
    "luggage", "mattress",
)  # fmt: skip
"""ScanNet200's class names, in the order of :data:`SCANNET200_CLASS_IDS`."""


def tsv_ids_to_scannet200(tsv_ids: np.ndarray) -> np.ndarray:
    """Map ``id`` values of scannetv2-labels.combined.tsv to ScanNet200 classes ``0..199``;
    every other id (0 = unannotated, ids outside the 200) to IGNORE_LABEL."""
    lut = np.full(max(SCANNET200_CLASS_IDS) + 1, IGNORE_LABEL, dtype=np.int64)
    lut[list(SCANNET200_CLASS_IDS)] = np.arange(len(SCANNET200_CLASS_IDS))
    tsv_ids = np.asarray(tsv_ids).astype(np.int64)
    out = np.full(tsv_ids.shape, IGNORE_LABEL, dtype=np.int64)
    in_range = (tsv_ids >= 0) & (tsv_ids < len(lut))
    out[in_range] = lut[tsv_ids[in_range]]
    return out


def read_label_tsv(path: str | Path) -> dict[str, int]:
    """``raw_category -> id`` from ScanNet's ``scannetv2-labels.combined.tsv`` (tab-separated, header).

    Raises:
        FileNotFoundError / ValueError: naming the file (missing, no such columns, a bad id).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found (ScanNet200 labels need ScanNet's scannetv2-labels.combined.tsv; "
            "put it in the dataset root or pass data.label_map)"
        )
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    if "id" not in header or "raw_category" not in header:
        raise ValueError(f"{path}: expected the columns 'id' and 'raw_category' in its header line")
    id_col, raw_col = header.index("id"), header.index("raw_category")
    mapping = {}
    for number, line in enumerate(lines[1:], 2):
        fields = line.split("\t")
        if len(fields) <= max(id_col, raw_col):
            continue
        try:
            # The first row of a raw category wins, as in ScanNet's ScanNet200 preparation.
            mapping.setdefault(fields[raw_col], int(fields[id_col]))
        except ValueError as err:
            raise ValueError(f"{path}:{number}: id {fields[id_col]!r} is not an integer") from err
    return mapping


def nyu40_to_nyu40(nyu40: np.ndarray) -> np.ndarray:
    """Map NYU40 ids ``1..40`` to ``0..39``; 0 (unannotated) and anything else to IGNORE_LABEL."""
    nyu40 = np.asarray(nyu40).astype(np.int64)
    return np.where((nyu40 >= 1) & (nyu40 <= 40), nyu40 - 1, IGNORE_LABEL)


LABEL_SETS: dict[str, tuple[tuple[str, ...], Callable[[np.ndarray], np.ndarray]]] = {
    "scannet20": (SCANNET20_CLASS_NAMES, nyu40_to_scannet20),
    "nyu40": (NYU40_CLASS_NAMES, nyu40_to_nyu40),
    "scannet200": (SCANNET200_CLASS_NAMES, tsv_ids_to_scannet200),
}
"""``data.label_set`` -> (class names, mapping to class ids). scannet20 and nyu40 map the NYU40 ids
of ``.labels.ply``; scannet200 maps the tsv ids of the raw categories (:func:`read_label_tsv`)."""

NYU40_LABEL_SETS = ("scannet20", "nyu40")
"""Label sets read from ``.labels.ply`` alone (no tsv, aggregation or segment file needed)."""


def label_set(name: str) -> tuple[tuple[str, ...], Callable[[np.ndarray], np.ndarray]]:
    if name not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]

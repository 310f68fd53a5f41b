"""Tiny in-memory detection rooms: coloured boxes on a floor, each box's points known."""

import numpy as np

from ppkt.data.boxes import Boxes3D, DetectionScene

CLASS_NAMES = ("red", "blue")
COLORS = np.array([[220, 40, 40], [40, 40, 220]], dtype=np.uint8)


def make_detection_room(scene_id: str, seed: int, per_box: int = 300, floor: int = 400) -> DetectionScene:
    """A 4 m x 4 m floor with three boxes (random class, size and heading), points on their surfaces."""
    rng = np.random.default_rng(seed)
    pts = [np.c_[rng.uniform(0, 4, (floor, 2)), np.zeros(floor)]]
    cols = [np.full((floor, 3), 128, dtype=np.uint8)]
    inst = [np.full(floor, -1)]
    centers, sizes, headings, labels = [], [], [], []
    for k, (cx, cy) in enumerate([(1.0, 1.0), (3.0, 1.2), (2.0, 3.0)]):
        size = rng.uniform(0.4, 0.9, 3)
        h = float(rng.uniform(-np.pi, np.pi))
        label = int(rng.integers(2))
        local = rng.uniform(-0.5, 0.5, (per_box, 3)) * size
        face = rng.integers(3, size=per_box)  # push every point onto a face
        local[np.arange(per_box), face] = np.sign(local[np.arange(per_box), face]) * size[face] / 2
        c, s = np.cos(h), np.sin(h)
        world = local @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + [cx, cy, size[2] / 2]
        pts.append(world)
        cols.append(
            np.clip(COLORS[label].astype(int) + rng.integers(-10, 11, (per_box, 3)), 0, 255).astype(np.uint8)
        )
        inst.append(np.full(per_box, k))
        centers.append([cx, cy, size[2] / 2])
        sizes.append(size)
        headings.append(h)
        labels.append(label)
    boxes = Boxes3D(np.array(centers), np.array(sizes), np.array(headings), np.array(labels), CLASS_NAMES)
    return DetectionScene(
        np.concatenate(pts).astype(np.float32), np.concatenate(cols), boxes, np.concatenate(inst), scene_id
    )

"""Small labelled rooms made in memory: colour and height tell the class, so a net can learn them."""

import numpy as np

from ppkt.data.types import IGNORE_LABEL, LabeledScene
from ppkt.eval.data import InMemorySceneSource

CLASS_NAMES = ("wall", "floor", "box", "unused")
COLORS = np.array([[200, 200, 190], [120, 80, 40], [30, 60, 200], [0, 0, 0]], dtype=np.uint8)


def make_room(scene_id: str, seed: int, points_per_face: int = 150) -> LabeledScene:
    """A 3 m x 3 m room: floor (z = 0), two walls, a box on the floor; a few unlabelled points."""
    rng = np.random.default_rng(seed)
    n = points_per_face
    floor = np.c_[rng.uniform(0, 3, (n, 2)), np.zeros(n)]
    wall_x = np.c_[np.zeros(n), rng.uniform(0, 3, n), rng.uniform(0, 2.5, n)]
    wall_y = np.c_[rng.uniform(0, 3, n), np.zeros(n), rng.uniform(0, 2.5, n)]
    centre = rng.uniform(0.8, 2.2, 2)
    box = np.c_[rng.uniform(-0.3, 0.3, (n, 2)) + centre, rng.uniform(0, 0.6, n)]
    points = np.concatenate([floor, wall_x, wall_y, box]).astype(np.float32)
    labels = np.repeat(np.array([1, 0, 0, 2]), n).astype(np.int64)
    labels[rng.random(len(labels)) < 0.05] = IGNORE_LABEL
    colors = COLORS[np.maximum(labels, 0)].astype(np.int64) + rng.integers(-15, 16, (len(labels), 3))
    return LabeledScene(points, np.clip(colors, 0, 255).astype(np.uint8), labels, scene_id, CLASS_NAMES)


def rooms_source_fixture() -> InMemorySceneSource:
    train = [make_room(f"scene{i:04d}_00", i) for i in range(4)]
    val = [make_room(f"scene{i:04d}_00", i) for i in range(100, 102)]
    return InMemorySceneSource({"train": train, "val": val}, CLASS_NAMES)


def write_scannet_layout(root, train: int = 3, val: int = 2):
    """Rooms as ScanNet scenes (PLY mesh + NYU40 labels, split files); classes wall/floor/cabinet."""
    from pathlib import Path

    from ppkt.data.ply import write_ply_vertices
    from ppkt.data.scannet_classes import SCANNET20_NYU40_IDS

    root = Path(root)
    names = {
        "train": [f"scene{i:04d}_00" for i in range(train)],
        "val": [f"scene{i:04d}_00" for i in range(100, 100 + val)],
    }
    for split, ids in names.items():
        for k, sid in enumerate(ids):
            room = make_room(sid, k + (100 if split == "val" else 0))
            folder = root / sid
            folder.mkdir(parents=True, exist_ok=True)
            p, c = room.points, room.colors
            write_ply_vertices(
                folder / f"{sid}_vh_clean_2.ply",
                {"x": p[:, 0], "y": p[:, 1], "z": p[:, 2], "red": c[:, 0], "green": c[:, 1], "blue": c[:, 2]},
            )
            nyu = np.where(room.labels >= 0, np.asarray(SCANNET20_NYU40_IDS)[np.maximum(room.labels, 0)], 0)
            write_ply_vertices(folder / f"{sid}_vh_clean_2.labels.ply", {"label": nyu.astype(np.uint16)})
        (root / f"scannetv2_{split}.txt").write_text("\n".join(ids) + "\n")
    return root

"""ScanNet scans in ScanNet's own layout for the detection tests: the mesh, its labels, segments,
aggregation and axisAlignment (:func:`write_scan`), and exported RGB-D frames (:func:`write_frames`)."""

import json

import numpy as np
from PIL import Image

from ppkt.data.ply import write_ply_vertices

CHAIR, TABLE, WALL = 5, 7, 1  # NYU40


def write_scan(
    root, scene="scene0000_00", alignment=None, extra_groups=(), segs_override=None, labels_override=None
):
    """Three objects: a chair (segments 1, 2), a table (3), a wall (0); one vertex per segment pattern."""
    rng = np.random.default_rng(0)
    folder = root / scene
    folder.mkdir(parents=True)
    chair = rng.uniform([1, 1, 0], [1.5, 1.4, 0.9], (60, 3))
    table = rng.uniform([3, 2, 0], [4.2, 2.8, 0.75], (80, 3))
    wall = np.c_[rng.uniform(0, 5, 50), np.zeros(50), rng.uniform(0, 2.5, 50)]
    points = np.concatenate([chair, table, wall]).astype(np.float32)
    labels = np.repeat([CHAIR, TABLE, WALL], [60, 80, 50]).astype(np.uint16)
    if labels_override is not None:
        labels = np.asarray(labels_override, dtype=np.uint16)
    segs = np.repeat([1, 2, 3, 0], [30, 30, 80, 50])
    if alignment is not None:  # store the scan un-aligned: vertices = inverse(alignment) @ aligned
        inv = np.linalg.inv(alignment)
        points = (points.astype(np.float64) @ inv[:3, :3].T + inv[:3, 3]).astype(np.float32)
    colors = np.full((len(points), 3), 100, np.uint8)
    xyz = {"x": points[:, 0], "y": points[:, 1], "z": points[:, 2]}
    write_ply_vertices(
        folder / f"{scene}_vh_clean_2.ply",
        {**xyz, "red": colors[:, 0], "green": colors[:, 1], "blue": colors[:, 2]},
    )
    write_ply_vertices(folder / f"{scene}_vh_clean_2.labels.ply", {**xyz, "label": labels})
    (folder / f"{scene}_vh_clean_2.0.010000.segs.json").write_text(
        json.dumps(
            {"sceneId": scene, "segIndices": (segs if segs_override is None else segs_override).tolist()}
        )
    )
    groups = [
        {"id": 0, "objectId": 0, "label": "chair", "segments": [1, 2]},
        {"id": 1, "objectId": 1, "label": "table", "segments": [3]},
        {"id": 2, "objectId": 2, "label": "wall", "segments": [0]},
        *extra_groups,
    ]
    (folder / f"{scene}.aggregation.json").write_text(json.dumps({"sceneId": scene, "segGroups": groups}))
    meta = "colorHeight = 968\n"
    if alignment is not None:
        meta += "axisAlignment = " + " ".join(f"{x:.10f}" for x in alignment.reshape(-1)) + "\n"
    (folder / f"{scene}.txt").write_text(meta)
    (root / "scannetv2_train.txt").write_text(scene + "\n")
    return chair, table


def write_frames(scene_dir, K, world_from_cameras, hw=(48, 64)):
    """Exported frames ``color/<i>.jpg``, ``depth/<i>.png`` (1 m), ``pose/<i>.txt`` (raw scan frame)
    and ``intrinsic/intrinsic_{color,depth}.txt`` (4x4) in a scan folder, one per pose."""
    for folder in ("color", "depth", "pose", "intrinsic"):
        (scene_dir / folder).mkdir(parents=True, exist_ok=True)
    K4 = np.eye(4)
    K4[:3, :3] = K
    for name in ("intrinsic_color.txt", "intrinsic_depth.txt"):
        (scene_dir / "intrinsic" / name).write_text("\n".join(" ".join(f"{v:f}" for v in row) for row in K4))
    for i, pose in enumerate(world_from_cameras):
        Image.fromarray(np.full((*hw, 3), 90, np.uint8)).save(scene_dir / "color" / f"{i}.jpg")
        Image.fromarray(np.full(hw, 1000, np.uint16)).save(scene_dir / "depth" / f"{i}.png")
        (scene_dir / "pose" / f"{i}.txt").write_text(
            "\n".join(" ".join(f"{v:.9f}" for v in row) for row in pose)
        )

"""The furniture of a synthetic room as 3D boxes, and synthetic rooms as detection scenes.

The generator knows every object: its parts, their instance, NYU40 class, yaw and size
(``ppkt.data.synthetic.layout``). A box is made for each **(object, NYU40 class)** group whose
class is one of VoteNet's 18 ScanNet detection classes: the tightest box, in the object's own
frame (heading = the object's yaw), around the bounding boxes of the group's parts. Grouping by
class as well as object matches ScanNet, whose instances carry one label each: a desk's monitor
(NYU40 39, "otherfurniture" = VoteNet's "garbagebin") is its own box, the bed's pillows (NYU40
18, not a detection class) have none.

Boxes are **computed from the layout**, which the generator draws from its own random stream
(``SeedSequence([seed, room]).spawn(4)[0]``) before anything is rendered; nothing is written,
so datasets generated before boxes existed are read unchanged and stay byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ppkt.data.boxes import (
    SCANNET_DETECTION_CLASS_NAMES,
    Boxes3D,
    DetectionScene,
    nyu40_to_scannet_detection,
)
from ppkt.data.scannet import read_scannet_scene, scannet_split
from ppkt.data.scannet_classes import SCANNET20_NYU40_IDS
from ppkt.data.synthetic.dataset import GENERATOR_VERSION
from ppkt.data.synthetic.layout import Scene, generate_scene

INSTANCE_MARGIN = 0.01
"""A cloud point belongs to a box when it has the box's NYU40 class and lies within this many
metres of it (points are sampled on the parts' surfaces, i.e. on the box boundary)."""


def scene_boxes(scene: Scene) -> tuple[Boxes3D, np.ndarray]:
    """Boxes of a generated room's furniture (ScanNet detection class ids) and their ``(N,)`` NYU40 ids."""
    groups: dict[tuple[int, int], list] = {}
    for part in scene.parts:
        if nyu40_to_scannet_detection(np.array(part.nyu40)) >= 0:
            groups.setdefault((part.instance, part.nyu40), []).append(part)
    centers, sizes, headings, nyu40 = [], [], [], []
    for (_, label), parts in sorted(groups.items()):
        yaw = parts[0].yaw  # every part of an object shares its yaw (layout._Layout._emit)
        c, s = np.cos(yaw), np.sin(yaw)
        to_local = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for part in parts:
            local_centre = to_local @ part.center
            lo = np.minimum(lo, local_centre - part.half)
            hi = np.maximum(hi, local_centre + part.half)
        centers.append(to_local.T @ ((lo + hi) / 2))
        sizes.append(hi - lo)
        headings.append(yaw)
        nyu40.append(label)
    if not centers:
        return Boxes3D.empty(SCANNET_DETECTION_CLASS_NAMES), np.zeros(0, dtype=np.int64)
    headings = np.angle(np.exp(1j * np.asarray(headings)))  # wrapped into (-pi, pi]
    labels = nyu40_to_scannet_detection(np.asarray(nyu40))
    return Boxes3D(
        np.array(centers), np.array(sizes), headings, labels, SCANNET_DETECTION_CLASS_NAMES
    ), np.asarray(nyu40)


def assign_instances(
    boxes: Boxes3D, box_nyu40: np.ndarray, points: np.ndarray, nyu40: np.ndarray
) -> np.ndarray:
    """``(P,)`` index of the box each point belongs to (same NYU40 class, inside the box grown by
    :data:`INSTANCE_MARGIN`; the first such box), -1 for none."""
    out = np.full(len(points), -1, dtype=np.int64)
    nyu40 = np.asarray(nyu40)
    for k in range(len(boxes)):  # only points of the box's class can belong to it (walls and floor never)
        candidates = np.flatnonzero((nyu40 == box_nyu40[k]) & (out < 0))
        inside = boxes.select(np.array([k])).contains(points[candidates], margin=INSTANCE_MARGIN)[0]
        out[candidates[inside]] = k
    return out


def _layout_of(root: Path, scene_id: str) -> Scene:

    manifest_path = root / "synthetic.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path}: not a synthetic dataset (its boxes come from this manifest)"
        )
    manifest = json.loads(manifest_path.read_text())
    if str(manifest.get("version")) != GENERATOR_VERSION:
        raise ValueError(
            f"{manifest_path}: generator version {manifest.get('version')!r}, this ppkt makes version "
            f"{GENERATOR_VERSION!r} and cannot recompute that dataset's boxes; regenerate it"
        )
    params = manifest["params"]
    names = [entry["name"] for entry in manifest["scenes"]]
    if scene_id not in names:
        raise KeyError(f"{manifest_path}: no scene {scene_id!r}")
    index = names.index(scene_id)
    layout_rng = np.random.default_rng(np.random.SeedSequence([int(params["seed"]), index]).spawn(4)[0])
    return generate_scene(layout_rng, ceiling=bool(params["ceiling"]))


def read_synthetic_detection_scene(root: str | Path, scene_id: str) -> DetectionScene:
    """A synthetic room of the dataset at ``root`` as a detection scene: its labelled cloud (the
    ``_vh_clean_2`` PLY files) and its furniture boxes (recomputed from the layout)."""

    root = Path(root)
    boxes, box_nyu40 = scene_boxes(_layout_of(root, scene_id))
    cloud = read_scannet_scene(root / scene_id)
    nyu40 = np.where(cloud.labels >= 0, np.asarray(SCANNET20_NYU40_IDS)[np.maximum(cloud.labels, 0)], 0)
    instances = assign_instances(boxes, box_nyu40, cloud.points, nyu40)
    # Objects hidden from the sampled cloud (e.g. behind others) give nothing to vote for.
    seen = np.bincount(instances[instances >= 0], minlength=len(boxes)) > 0
    remap = np.cumsum(seen) - 1
    instances = np.where(instances >= 0, remap[np.maximum(instances, 0)], -1)
    return DetectionScene(cloud.points, cloud.colors, boxes.select(seen), instances, scene_id)


class SyntheticDetectionSource:
    """Synthetic rooms (``ppkt.data.synthetic``) with their furniture boxes; ScanNet's 18 classes."""

    def __init__(self, root: str | Path, scene_lists: str | Path | None = None):
        self.root = Path(root)
        self.scene_lists = self.root if scene_lists is None else Path(scene_lists)
        self.class_names = SCANNET_DETECTION_CLASS_NAMES

    def scene_ids(self, split: str) -> list[str]:

        return scannet_split(self.scene_lists, split)

    def read(self, scene_id: str) -> DetectionScene:
        return read_synthetic_detection_scene(self.root, scene_id)

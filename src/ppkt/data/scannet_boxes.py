"""ScanNet v2 object boxes from the instance annotations that ship with every scan.

Files read per scene (ScanNet's own layout, ``<root>/<scene>/``)::

    <scene>_vh_clean_2.ply                    mesh vertices: x, y, z, red, green, blue
    <scene>_vh_clean_2.labels.ply             the same vertices with their NYU40 id ("label")
    <scene>_vh_clean_2.0.010000.segs.json     {"segIndices": [segment id of each vertex]}
    <scene>.aggregation.json                  {"segGroups": [{"objectId", "label", "segments": [...]}]}
    <scene>.txt                               "axisAlignment = m00 m01 ... m33" (row-major 4x4)

As VoteNet's ScanNet benchmark (votenet ``scannet/load_scannet_data.py``): the vertices are
transformed by the scan's ``axisAlignment`` (so walls line up with x and y; identity when the
line is missing, with ``axis_aligned`` False in the result), each object of the aggregation takes
the vertices of its segments, and its box is the **axis-aligned** bounding box of those vertices
(heading 0). The object's class is the majority vote of its vertices' NYU40 ids in ``labels.ply``
(which ScanNet made from the same aggregation labels through ``scannetv2-labels.combined.tsv``),
where the ids of the 20 ScanNet benchmark classes vote each for itself and every other id
(otherprop, ceiling, ..., and 0 = unannotated) votes for one pooled "other"; the winner is kept
when it is one of VoteNet's 18 detection classes ("other" is no box).

Bad annotations are skipped, counted and named (:class:`AnnotationSkip`): an object with no
vertices (segments absent from the segmentation), an object none of whose vertices carries a
NYU40 class in ``labels.ply`` (0 = unannotated or an id outside 1..40: "unknown class"; the labels
file does not belong to this aggregation), a box with a non-finite value or a zero size. Objects of
other classes (walls, floors, ...) are not detection objects and are not skips. A vertex or an
``axisAlignment`` that is not finite makes the whole scan unreadable (one line naming the file).

The scan's exported RGB-D frames (``color/``, ``depth/``, ``pose/``, ``intrinsic/``, read by
``ppkt.data.scannet.ScanNetFrames``) give :func:`read_scannet_scene_camera` a photo of the scene
to draw boxes into; poses are in the raw scan frame, so ``axisAlignment`` is applied to them too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppkt.data.boxes import (
    SCANNET_DETECTION_CLASS_NAMES,
    Boxes3D,
    DetectionScene,
    SceneCamera,
    nyu40_to_scannet_detection,
    validate_boxes,
)
from ppkt.data.scannet import ScanNetFrames, read_scannet_scene, scannet_split
from ppkt.data.scannet_classes import nyu40_to_scannet20
from ppkt.geometry.camera import project_points, transform_points


@dataclass(frozen=True)
class AnnotationSkip:
    """An object annotation left out of a scene's boxes.

    Attributes:
        scene_id: the scene.
        object_id: the object's id in the annotation file.
        label: its label as annotated.
        reason: "no points", "unknown class", "non-finite" or "non-positive size".
    """

    scene_id: str
    object_id: int
    label: str
    reason: str

    @property
    def what(self) -> str:
        return f"object {self.object_id} {self.label!r}"


def read_axis_alignment(meta_path: Path) -> np.ndarray | None:
    """The 4x4 ``axisAlignment`` of a scan's ``<scene>.txt``, or None when the line is absent."""
    for line in meta_path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "axisAlignment":
            numbers = value.split()
            if len(numbers) != 16:
                raise ValueError(f"{meta_path}: axisAlignment has {len(numbers)} numbers, expected 16")
            matrix = np.array([float(x) for x in numbers], dtype=np.float64).reshape(4, 4)
            if not np.isfinite(matrix).all():
                raise ValueError(f"{meta_path}: axisAlignment is not finite")
            return matrix
    return None


def read_scannet_detection_scene(scene_dir: str | Path) -> tuple[DetectionScene, list[AnnotationSkip]]:
    """A scan's aligned vertices, their colours and the boxes of its detection objects (see the
    module docstring), with the annotations that were skipped."""
    scene_dir = Path(scene_dir)
    scene_id = scene_dir.resolve().name
    cloud = read_scannet_scene(scene_dir, label_set="nyu40")  # class id = NYU40 id - 1, -1 = none
    segs_path = scene_dir / f"{scene_id}_vh_clean_2.0.010000.segs.json"
    agg_path = scene_dir / f"{scene_id}.aggregation.json"
    meta_path = scene_dir / f"{scene_id}.txt"
    for path in (segs_path, agg_path, meta_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (ScanNet boxes need the scan's instance annotations)")
    try:
        seg_indices = np.asarray(json.loads(segs_path.read_text())["segIndices"], dtype=np.int64)
        groups = json.loads(agg_path.read_text())["segGroups"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{segs_path.name} / {agg_path.name} in {scene_dir}: not ScanNet annotations ({err})"
        ) from err
    if len(seg_indices) != len(cloud.points):
        raise ValueError(f"{segs_path}: {len(seg_indices)} segment ids for {len(cloud.points)} vertices")
    alignment = read_axis_alignment(meta_path)
    points = cloud.points.astype(np.float64)
    if alignment is not None:
        points = points @ alignment[:3, :3].T + alignment[:3, 3]
    nyu40 = np.where(cloud.labels >= 0, cloud.labels + 1, 0)  # 0 = no NYU40 class
    # The class vote is over the 20 ScanNet benchmark classes, every other NYU40 id pooled with the
    # unannotated vertices as one "other" (0), as it was before the NYU40 reading: an object 40 %
    # cabinet, 30 % otherprop, 30 % ceiling is "other" and no box, not a cabinet.
    votes = np.where(nyu40_to_scannet20(nyu40) >= 0, nyu40, 0)

    skips: list[AnnotationSkip] = []
    members, centers, sizes, labels, names, ids = [], [], [], [], [], []
    for group in groups:
        object_id, label = int(group.get("objectId", group.get("id", -1))), str(group.get("label", ""))
        vertices = np.flatnonzero(np.isin(seg_indices, np.asarray(group.get("segments", []), dtype=np.int64)))
        if len(vertices) == 0:
            skips.append(AnnotationSkip(scene_id, object_id, label, "no points"))
            continue
        majority = int(np.bincount(votes[vertices]).argmax())
        if majority == 0:
            if not nyu40[vertices].any():
                skips.append(AnnotationSkip(scene_id, object_id, label, "unknown class"))
            continue
        cls = int(nyu40_to_scannet_detection(np.array(majority)))
        if cls < 0:
            continue
        lo, hi = points[vertices].min(0), points[vertices].max(0)
        members.append(vertices)
        centers.append((lo + hi) / 2)
        sizes.append(hi - lo)
        labels.append(cls)
        names.append(label)
        ids.append(object_id)
    boxes = Boxes3D(np.array(centers).reshape(-1, 3), np.array(sizes).reshape(-1, 3), np.zeros(len(centers)),
                    np.array(labels, dtype=np.int64), SCANNET_DETECTION_CLASS_NAMES)  # fmt: skip
    _, issues = validate_boxes(boxes, len(SCANNET_DETECTION_CLASS_NAMES))
    bad = {issue.index for issue in issues}
    skips += [AnnotationSkip(scene_id, ids[i.index], names[i.index], i.reason) for i in issues]
    keep = [k for k in range(len(boxes)) if k not in bad]
    instance_ids = np.full(len(points), -1, dtype=np.int64)
    for new, k in enumerate(keep):
        instance_ids[members[k]] = new
    scene = DetectionScene(
        points.astype(np.float32),
        cloud.colors,
        boxes.select(np.array(keep, dtype=np.int64)),
        instance_ids,
        scene_id,
    )
    return scene, skips


class ScanNetDetectionSource:
    """ScanNet scans with their boxes: ``<root>/<scene>/`` as above, split lists
    ``<scene_lists>/scannetv2_<split>.txt`` (default: in the root). Skipped annotations of the
    scenes read so far are in :attr:`skips`."""

    def __init__(self, root: str | Path, scene_lists: str | Path | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset root not found")
        self.scene_lists = self.root if scene_lists is None else Path(scene_lists)
        self.class_names = SCANNET_DETECTION_CLASS_NAMES
        self.skips: dict[str, list[AnnotationSkip]] = {}

    def scene_ids(self, split: str) -> list[str]:
        return scannet_split(self.scene_lists, split)

    def read(self, scene_id: str) -> DetectionScene:
        scene, skips = read_scannet_detection_scene(self.root / scene_id)
        self.skips[scene_id] = skips
        return scene


def read_scannet_scene_camera(
    root: str | Path, scene_id: str, boxes: Boxes3D | None = None, frame_id: str | None = None
) -> SceneCamera:
    """A photo of a ScanNet-layout scan (ScanNet or the synthetic rooms) in the frame of its
    detection scene: frame ``frame_id`` of ``<root>/<scene_id>/color/``, or by default the posed
    frame whose camera sees the most of ``boxes``' centres (the middle frame without boxes).

    The frame's ``world_from_camera`` is in the raw scan frame; the scan's ``axisAlignment``
    (``<scene>.txt``; none for the synthetic rooms) takes it into the aligned frame of
    :func:`read_scannet_detection_scene`.
    """
    frames, posed = _posed_frames(root, scene_id)
    meta_path = Path(root) / scene_id / f"{scene_id}.txt"
    alignment = read_axis_alignment(meta_path) if meta_path.is_file() else None
    aligned_from_world = np.eye(4) if alignment is None else alignment

    def camera_from_aligned(k: int) -> np.ndarray:
        return np.linalg.inv(aligned_from_world @ frames.records[k].world_from_camera)

    if frame_id is not None:
        index = _posed_frame_index(frames, posed, frame_id, Path(root) / scene_id)
    elif boxes is not None and len(boxes):
        import torch

        centers = torch.tensor(np.asarray(boxes.centers), dtype=torch.float64)

        def seen(k: int) -> int:
            K = frames.records[k].K_color
            # Before decoding, the image size is taken as twice the principal point; only this choice
            # of a default frame relies on it.
            hw = (max(int(round(2 * K[1, 2] + 1)), 1), max(int(round(2 * K[0, 2] + 1)), 1))
            points = transform_points(camera_from_aligned(k), centers)
            return int(project_points(points, K, hw)[2].sum())

        counts = [seen(k) for k in posed]
        index = posed[int(np.argmax(counts))]  # the first of equals
    else:
        index = posed[len(posed) // 2]
    frame = frames[index]
    return SceneCamera(
        frame.color, np.asarray(frame.K_color, np.float64), camera_from_aligned(index),
        f"{scene_id}/{frame.frame_id}",
    )  # fmt: skip


def check_scannet_frame(root: str | Path, scene_id: str, frame_id: str) -> None:
    """Raise the error :func:`read_scannet_scene_camera` would raise for frame ``frame_id`` of the
    scan (no posed frames, or no posed frame of that name) without decoding any image: a command
    checks a user's choice of frame before its slow work."""
    frames, posed = _posed_frames(root, scene_id)
    _posed_frame_index(frames, posed, frame_id, Path(root) / scene_id)


def _posed_frames(root: str | Path, scene_id: str) -> tuple[ScanNetFrames, list[int]]:
    """``(ScanNetFrames of the scan, indices of its frames with a pose)``; none is an error."""
    frames = ScanNetFrames(root, scenes=[scene_id], frame_skip=1)
    posed = [k for k, r in enumerate(frames.records) if r.world_from_camera is not None]
    if not posed:
        raise FileNotFoundError(
            f"{Path(root) / scene_id}: no posed colour frame (color/, depth/, pose/, intrinsic/)"
        )
    return frames, posed


def _posed_frame_index(frames: ScanNetFrames, posed: list[int], frame_id: str, scene_dir: Path) -> int:
    chosen = [k for k in posed if frames.records[k].frame_id == frame_id]
    if not chosen:
        names = [frames.records[k].frame_id for k in posed]
        raise ValueError(f"{scene_dir}: no posed frame {frame_id!r} (frames {names[0]}..{names[-1]})")
    return chosen[0]

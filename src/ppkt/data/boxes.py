"""3D boxes as data: the :class:`Boxes3D` container and the detection benchmarks' class lists.

A box is an upright (gravity-aligned) cuboid: a centre, full extents along its own x/y/z, and a
heading = the rotation about world +z (counter-clockwise seen from above, radians) that takes the
box's own x axis onto the world. World z is up (docs/conventions.md). Axis-aligned boxes have
heading 0. Readers convert their dataset's box conventions (half sizes, headings measured the
other way, y-up camera frames) into this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SCANNET_DETECTION_CLASS_NAMES: tuple[str, ...] = (
    "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "desk", "curtain", "refrigerator", "showercurtrain", "toilet", "sink", "bathtub",
    "garbagebin",
)  # fmt: skip
"""VoteNet's 18 ScanNet detection classes, in its order (votenet ``scannet/model_util_scannet.py``,
``type2class``; the misspelt "showercurtrain" is VoteNet's own, kept so that tables line up)."""

SCANNET_DETECTION_NYU40_IDS: tuple[int, ...] = (
    3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39,
)  # fmt: skip
"""NYU40 id of each ScanNet detection class (votenet ``scannet/model_util_scannet.py``,
``nyu40ids``). NYU40 39 is "otherfurniture", which VoteNet calls "garbagebin"."""

SUNRGBD_DETECTION_CLASS_NAMES: tuple[str, ...] = (
    "bed", "table", "sofa", "chair", "toilet", "desk", "dresser", "night_stand", "bookshelf",
    "bathtub",
)  # fmt: skip
"""VoteNet's 10 SUN RGB-D detection classes, in its order (votenet
``sunrgbd/model_util_sunrgbd.py``, ``type2class``), the names as in SUN RGB-D's label files."""


def nyu40_to_scannet_detection(nyu40: np.ndarray) -> np.ndarray:
    """Map NYU40 ids to ScanNet detection class ids ``0..17``; every other id to -1."""
    lut = np.full(256, -1, dtype=np.int64)
    lut[list(SCANNET_DETECTION_NYU40_IDS)] = np.arange(len(SCANNET_DETECTION_NYU40_IDS))
    nyu40 = np.asarray(nyu40).astype(np.int64)
    out = np.full(nyu40.shape, -1, dtype=np.int64)
    ok = (nyu40 >= 0) & (nyu40 < 256)
    out[ok] = lut[nyu40[ok]]
    return out


@dataclass(frozen=True)
class Boxes3D:
    """The 3D boxes of one scene, in the scene's world frame (metres, z up).

    Attributes:
        centers: ``(N, 3)`` float32 box centres.
        sizes: ``(N, 3)`` float32 **full** extents along the box's own x, y, z (not half sizes).
        headings: ``(N,)`` float32 rotation about +z from the box frame to the world, radians,
            counter-clockwise seen from above; 0 = axis-aligned.
        labels: ``(N,)`` int64 class ids in ``[0, len(class_names))``.
        class_names: the class list the ids index.

    Construction checks shapes and dtypes only (bad values are the readers' and
    :func:`validate_boxes`' job, so that a dataset can count and name them).
    """

    centers: np.ndarray
    sizes: np.ndarray
    headings: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Copies: freezing them must not freeze the caller's arrays.
        centers = np.array(self.centers, dtype=np.float32).reshape(-1, 3)
        sizes = np.array(self.sizes, dtype=np.float32).reshape(-1, 3)
        headings = np.array(self.headings, dtype=np.float32).reshape(-1)
        labels = np.array(self.labels, dtype=np.int64).reshape(-1)
        n = len(centers)
        if not (len(sizes) == len(headings) == len(labels) == n):
            raise ValueError(
                f"Boxes3D: centers {len(centers)}, sizes {len(sizes)}, headings {len(headings)} and "
                f"labels {len(labels)} must have the same length"
            )
        for name, value in (
            ("centers", centers),
            ("sizes", sizes),
            ("headings", headings),
            ("labels", labels),
        ):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "class_names", tuple(self.class_names))

    def __len__(self) -> int:
        return int(self.centers.shape[0])

    @classmethod
    def empty(cls, class_names: tuple[str, ...] = ()) -> Boxes3D:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0, dtype=np.int64), class_names)

    def select(self, keep: np.ndarray) -> Boxes3D:
        """The boxes at ``keep`` (boolean mask or indices)."""
        return Boxes3D(
            self.centers[keep], self.sizes[keep], self.headings[keep], self.labels[keep], self.class_names
        )

    def corners(self) -> np.ndarray:
        """``(N, 8, 3)`` corners: bottom face first (z = centre - h/2), each face counter-clockwise
        from above starting at the box's (-x, -y) corner."""
        sign = np.array(
            [
                [-1, -1, -1],
                [1, -1, -1],
                [1, 1, -1],
                [-1, 1, -1],
                [-1, -1, 1],
                [1, -1, 1],
                [1, 1, 1],
                [-1, 1, 1],
            ],
            dtype=np.float64,
        )
        local = sign[None] * (self.sizes.astype(np.float64)[:, None, :] / 2)
        c, s = np.cos(self.headings.astype(np.float64)), np.sin(self.headings.astype(np.float64))
        x = c[:, None] * local[..., 0] - s[:, None] * local[..., 1]
        y = s[:, None] * local[..., 0] + c[:, None] * local[..., 1]
        world = np.stack([x, y, local[..., 2]], axis=-1) + self.centers.astype(np.float64)[:, None, :]
        return world.astype(np.float32)

    def contains(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """``(N, P)`` bool: point ``p`` lies inside box ``n`` grown by ``margin`` metres on every side."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        out = np.zeros((len(self), len(points)), dtype=bool)
        for n in range(len(self)):  # one box at a time: (P, 3) temporaries, not (N, P, 3)
            d = points - self.centers[n].astype(np.float64)
            c, s = np.cos(float(self.headings[n])), np.sin(float(self.headings[n]))
            half = self.sizes[n].astype(np.float64) / 2 + margin
            out[n] = (
                (np.abs(c * d[:, 0] + s * d[:, 1]) <= half[0])
                & (np.abs(-s * d[:, 0] + c * d[:, 1]) <= half[1])
                & (np.abs(d[:, 2]) <= half[2])
            )
        return out


@dataclass(frozen=True)
class BoxIssue:
    """One bad annotation found by :func:`validate_boxes`.

    Attributes:
        index: the box's index in the checked :class:`Boxes3D`.
        reason: a short name, one of :data:`BOX_ISSUE_REASONS`.
    """

    index: int
    reason: str


BOX_ISSUE_REASONS = ("non-finite", "non-positive size", "unknown class", "no points")


def validate_boxes(
    boxes: Boxes3D, num_classes: int, points: np.ndarray | None = None, min_points: int = 1
) -> tuple[Boxes3D, list[BoxIssue]]:
    """Drop bad boxes and say why: the valid boxes and one :class:`BoxIssue` per dropped box.

    A box is bad when a value is not finite, a size is zero or negative, its class id is outside
    ``[0, num_classes)``, or (when ``points`` are given) fewer than ``min_points`` scene points
    lie inside it. The first reason in that order is reported.
    """
    issues: list[BoxIssue] = []
    finite = np.isfinite(boxes.centers).all(1) & np.isfinite(boxes.sizes).all(1) & np.isfinite(boxes.headings)
    positive = np.where(finite, (np.nan_to_num(boxes.sizes) > 0).all(1), False)
    known = (boxes.labels >= 0) & (boxes.labels < num_classes)
    counts = np.full(len(boxes), min_points)
    if points is not None and len(boxes):
        ok = finite & positive
        counts[ok] = boxes.select(ok).contains(points).sum(axis=1)
    for i in range(len(boxes)):
        if not finite[i]:
            issues.append(BoxIssue(i, "non-finite"))
        elif not positive[i]:
            issues.append(BoxIssue(i, "non-positive size"))
        elif not known[i]:
            issues.append(BoxIssue(i, "unknown class"))
        elif counts[i] < min_points:
            issues.append(BoxIssue(i, "no points"))
    bad = np.zeros(len(boxes), dtype=bool)
    bad[[issue.index for issue in issues]] = True
    return boxes.select(~bad), issues


@dataclass
class DetectionScene:
    """A scene for 3D detection: its points and the boxes of its objects.

    Attributes:
        points: ``(N, 3)`` float32 xyz in metres (world frame, z up).
        colors: ``(N, 3)`` uint8 RGB.
        boxes: the scene's boxes, same frame.
        instance_ids: ``(N,)`` int64 index of the box each point belongs to (its object), -1 for
            points of no box (walls, floor, unannotated). Gives VoteNet its vote targets.
        scene_id: scene name.
    """

    points: np.ndarray
    colors: np.ndarray
    boxes: Boxes3D
    instance_ids: np.ndarray
    scene_id: str

    def __post_init__(self) -> None:
        n = len(self.points)
        if self.colors.shape != (n, 3) or self.instance_ids.shape != (n,):
            raise ValueError(
                f"scene {self.scene_id}: points {self.points.shape}, colors {self.colors.shape} and "
                f"instance_ids {self.instance_ids.shape} disagree"
            )
        if n and (int(self.instance_ids.max()) >= len(self.boxes) or int(self.instance_ids.min()) < -1):
            raise ValueError(f"scene {self.scene_id}: instance ids outside [-1, {len(self.boxes)})")


@dataclass(frozen=True)
class SceneCamera:
    """A photo of a detection scene and its calibration, to draw the scene's boxes into.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        K: ``(3, 3)`` float64 intrinsics of ``image`` (docs/conventions.md: pixel centres at
            integer ``uv``).
        camera_from_world: ``(4, 4)`` float64 from the frame of the scene's points and boxes (the
            :class:`DetectionScene`'s, e.g. ScanNet's axis-aligned one) to the OpenCV camera frame.
        name: where the photo comes from (``"<scene>/<frame>"``, a file name).
    """

    image: np.ndarray
    K: np.ndarray
    camera_from_world: np.ndarray
    name: str

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"{self.name}: image must be (H, W, 3), got {self.image.shape}")
        if np.shape(self.K) != (3, 3) or np.shape(self.camera_from_world) != (4, 4):
            raise ValueError(
                f"{self.name}: K {np.shape(self.K)} must be (3, 3), camera_from_world "
                f"{np.shape(self.camera_from_world)} must be (4, 4)"
            )

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


# --------------------------------------------------------------------------- check-data for boxes
@dataclass
class DetectionCheck:
    """What :func:`check_detection_scenes` found.

    Attributes:
        scenes: scenes read.
        boxes: boxes kept by the readers.
        skips: ``{reason: count}`` of annotations the readers skipped or that fail
            :func:`~ppkt.data.boxes.validate_boxes` ("non-finite", "non-positive size",
            "unknown class", "no points", "malformed").
        named: one line per skip, ``"<scene>: <what> (<reason>)"``.
        failed: ``{scene: one-line error}`` for scenes that could not be read.
    """

    scenes: int
    boxes: int
    skips: dict[str, int]
    named: list[str]
    failed: dict[str, str]


def check_detection_scenes(source, scene_ids: Sequence[str], *, strict: bool = False) -> DetectionCheck:
    """Check-data for boxes: read every scene once, count and name the annotations left out (the
    readers' own skips, in ``source.skips`` where a reader keeps them) and the boxes that
    :func:`~ppkt.data.boxes.validate_boxes` rejects, e.g. a box with no point inside; a scene that
    cannot be read is reported with its error instead of stopping the check (with ``strict`` the
    first one raises its error)."""
    skips: dict[str, int] = {}
    named: list[str] = []
    failed: dict[str, str] = {}
    scenes = boxes = 0
    for sid in scene_ids:
        try:
            scene = source.read(sid)
        except (FileNotFoundError, ValueError, KeyError) as err:
            if strict:
                raise
            failed[sid] = str(err)
            continue
        scenes += 1
        # Readers that skip annotations keep them by scene in ``skips`` (ScanNet, SUN RGB-D).
        found = [(s.what, s.reason) for s in getattr(source, "skips", {}).get(sid, [])]
        kept, issues = validate_boxes(scene.boxes, len(source.class_names), scene.points)
        found += [(f"box {i.index}", i.reason) for i in issues]
        boxes += len(kept)
        for what, reason in found:
            skips[reason] = skips.get(reason, 0) + 1
            named.append(f"{sid}: {what} ({reason})")
    return DetectionCheck(scenes, boxes, skips, named, failed)

"""Average precision of 3D detections, as VoteNet's evaluation computes it.

Source: votenet ``utils/eval_det.py`` (``eval_det_cls``, ``voc_ap``) driven by
``models/ap_helper.py`` (``APCalculator``), the evaluation the PPKT paper's detection numbers
come from. Per class and IoU threshold:

1. every detection of the class over the whole split is sorted by score (highest first; equal
   scores keep their input order here, which VoteNet's unstable ``argsort`` leaves undefined);
2. each detection takes the ground-truth box of its scene and class with the **highest IoU**;
   it is a true positive when that IoU is **greater than** the threshold and that box is not
   matched yet, otherwise a false positive (a detection whose best box is already taken does not
   fall back to its second best — VoteNet's rule);
3. precision/recall along the sorted list; AP is the area under the precision envelope with
   **all-points interpolation** (VOC 2010+; ``voc_ap(use_07_metric=False)``, VoteNet's default,
   not the 11-point VOC07 metric).

A class without ground truth in the split has no AP (NaN) and is left out of the mAP, as
VoteNet's ``eval_det`` loops over the classes present in the ground truth; a class with ground
truth but no detection has AP 0. IoU is the rotated 3D IoU (``box_iou_3d``; VoteNet's
``get_iou_obb``); ``rotated=False`` uses the axis-aligned one (equal for heading-0 boxes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ppkt.data.boxes import Boxes3D
from ppkt.geometry.point_ops import box_iou_3d, box_iou_3d_axis_aligned

IOU_THRESHOLDS = (0.25, 0.5)
"""VoteNet's (and the paper's) mAP@0.25 and mAP@0.5."""


@dataclass(frozen=True)
class ScoredBoxes:
    """Detections of one scene.

    Attributes:
        boxes: the predicted boxes (class ids in ``boxes.labels``).
        scores: ``(N,)`` float confidence of each box.
    """

    boxes: Boxes3D
    scores: np.ndarray

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(self.boxes):
            raise ValueError(f"ScoredBoxes: {len(scores)} scores for {len(self.boxes)} boxes")
        object.__setattr__(self, "scores", scores)


def boxes_to_rows(boxes: Boxes3D) -> np.ndarray:
    """``(N, 7)`` float64 rows ``(cx, cy, cz, dx, dy, dz, heading)`` (``ppkt.geometry.point_ops``)."""
    return np.concatenate(
        [boxes.centers, boxes.sizes, boxes.headings[:, None]], axis=1, dtype=np.float64
    ).reshape(-1, 7)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-points interpolated AP: area under the monotone envelope of the precision-recall curve."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


@dataclass
class DetectionMetrics:
    """AP per class at each IoU threshold.

    Attributes:
        class_names: names of the classes (index = class id).
        ap: ``{threshold: (C,) AP}``, NaN for classes without ground truth.
        recall: ``{threshold: (C,) recall with every detection kept}``, NaN likewise.
        num_ground_truth: ``(C,)`` ground-truth boxes per class.
        num_scenes: scenes evaluated.
    """

    class_names: tuple[str, ...]
    ap: dict[float, np.ndarray]
    recall: dict[float, np.ndarray]
    num_ground_truth: np.ndarray
    num_scenes: int

    def map(self, threshold: float) -> float:
        """Mean AP over the classes with ground truth (NaN when there are none)."""
        values = self.ap[threshold][self.num_ground_truth > 0]
        return float(values.mean()) if len(values) else math.nan

    def to_dict(self) -> dict:
        def clean(x):
            return None if math.isnan(x) else float(x)

        return {
            "num_scenes": self.num_scenes,
            **{f"mAP@{t}": clean(self.map(t)) for t in self.ap},
            "classes": {
                name: {
                    "ground_truth": int(self.num_ground_truth[c]),
                    **{f"AP@{t}": clean(self.ap[t][c]) for t in self.ap},
                    **{f"recall@{t}": clean(self.recall[t][c]) for t in self.recall},
                }
                for c, name in enumerate(self.class_names)
            },
        }

    def to_markdown(self) -> str:
        thresholds = list(self.ap)
        head = "| class | boxes | " + " | ".join(f"AP@{t}" for t in thresholds) + " |\n"
        head += "|---|---|" + "---|" * len(thresholds) + "\n"
        rows = []
        for c, name in enumerate(self.class_names):
            cells = ["-" if math.isnan(self.ap[t][c]) else f"{100 * self.ap[t][c]:.1f}" for t in thresholds]
            rows.append(f"| {name} | {int(self.num_ground_truth[c])} | " + " | ".join(cells) + " |")
        total = " | ".join(
            "-" if math.isnan(self.map(t)) else f"**{100 * self.map(t):.1f}**" for t in thresholds
        )
        return head + "\n".join(rows) + f"\n| **mAP** | {int(self.num_ground_truth.sum())} | {total} |\n"


@dataclass
class DetectionEvaluator:
    """Accumulates detections and ground truth over a split; :meth:`compute` gives the APs.

    Args:
        class_names: the classes (ids index them).
        iou_thresholds: the thresholds to report.
        rotated: rotated IoU (default) or axis-aligned.
    """

    class_names: tuple[str, ...]
    iou_thresholds: tuple[float, ...] = IOU_THRESHOLDS
    rotated: bool = True
    _scenes: list[tuple[ScoredBoxes, Boxes3D]] = field(default_factory=list)

    def update(self, predicted: ScoredBoxes, truth: Boxes3D) -> None:
        """Add one scene's detections and its ground-truth boxes."""
        c = len(self.class_names)
        for what, labels in (("predicted", predicted.boxes.labels), ("ground-truth", truth.labels)):
            if len(labels) and (labels.min() < 0 or labels.max() >= c):
                raise ValueError(f"{what} class ids span [{labels.min()}, {labels.max()}], expected [0, {c})")
        self._scenes.append((predicted, truth))

    def compute(self) -> DetectionMetrics:
        iou_fn = box_iou_3d if self.rotated else box_iou_3d_axis_aligned
        c = len(self.class_names)
        num_gt = np.zeros(c, dtype=np.int64)
        ap = {t: np.full(c, math.nan) for t in self.iou_thresholds}
        recall = {t: np.full(c, math.nan) for t in self.iou_thresholds}
        for cls in range(c):
            scores, best_iou, best_gt, scene_of = [], [], [], []
            npos = 0
            for s, (pred, truth) in enumerate(self._scenes):
                gt = boxes_to_rows(truth.select(truth.labels == cls))
                mask = pred.boxes.labels == cls
                det = boxes_to_rows(pred.boxes.select(mask))
                npos += len(gt)
                if not len(det):
                    continue
                scores.append(pred.scores[mask])
                scene_of.append(np.full(len(det), s))
                if len(gt):
                    iou = iou_fn(torch.from_numpy(det), torch.from_numpy(gt)).numpy()
                    best_iou.append(iou.max(1))
                    best_gt.append(iou.argmax(1))
                else:
                    best_iou.append(np.full(len(det), -np.inf))
                    best_gt.append(np.zeros(len(det), dtype=np.int64))
            num_gt[cls] = npos
            if npos == 0:
                continue
            if not scores:
                for t in self.iou_thresholds:
                    ap[t][cls], recall[t][cls] = 0.0, 0.0
                continue
            scores_a, iou_a = np.concatenate(scores), np.concatenate(best_iou)
            gt_a, scene_a = np.concatenate(best_gt), np.concatenate(scene_of)
            order = np.argsort(-scores_a, kind="stable")
            for t in self.iou_thresholds:
                taken: set[tuple[int, int]] = set()
                tp = np.zeros(len(order))
                for rank, d in enumerate(order):
                    key = (int(scene_a[d]), int(gt_a[d]))
                    if iou_a[d] > t and key not in taken:
                        taken.add(key)
                        tp[rank] = 1.0
                ctp, cfp = np.cumsum(tp), np.cumsum(1.0 - tp)
                rec = ctp / npos
                prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
                ap[t][cls] = voc_ap(rec, prec)
                recall[t][cls] = float(rec[-1])
        return DetectionMetrics(tuple(self.class_names), ap, recall, num_gt, len(self._scenes))

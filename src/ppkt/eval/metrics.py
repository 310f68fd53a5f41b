"""Semantic segmentation metrics from a confusion matrix accumulated over a whole split.

Protocol (the same one the ScanNet benchmark script and torchmetrics' ``JaccardIndex`` use, with
the absent-class policy written down because published numbers differ on it):

* The confusion matrix ``C[t, p]`` counts points with ground truth ``t`` predicted as ``p``. It is
  accumulated over **every point of the split** first; IoU is computed once at the end (never
  averaged per scene or per batch, which would weight small scenes like large ones).
* Points whose ground truth is the ignore label (``-1`` by default) are dropped before counting:
  whatever is predicted there counts for nothing. Predictions must be class ids in
  ``[0, num_classes)``; anything else is an error.
* ``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` with ``TP_c = C[c, c]``, ``FN_c = sum_p C[c, p] - TP_c``
  (row) and ``FP_c = sum_t C[t, c] - TP_c`` (column). ``Acc_c = TP_c / (TP_c + FN_c)`` (recall).
* **Absent classes**: a class with no ground-truth point in the whole split is *absent*. Its IoU
  and accuracy are NaN, it is listed in ``absent_classes`` and it is left out of ``miou`` and
  ``macc``. Predictions of an absent class ``a`` on a point of a present class ``t`` stay in the
  matrix: they are false negatives of ``t`` (lowering ``IoU_t`` and ``Acc_t``) and count as false
  positives of no present class. So predicting an absent class is never free: the point is lost
  for its true class.
* ``overall_accuracy = trace(C) / sum(C)`` over all non-ignored points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SegmentationMetrics:
    """Metrics of one split, derived from its confusion matrix.

    Attributes:
        iou: per-class IoU, length ``num_classes``; NaN for absent classes.
        accuracy: per-class accuracy (recall), NaN for absent classes.
        miou: mean IoU over present classes (NaN when no class is present).
        macc: mean class accuracy over present classes.
        overall_accuracy: fraction of non-ignored points predicted correctly.
        absent_classes: ids of classes with no ground-truth point in the split.
        num_points: number of non-ignored points counted.
        class_names: names of the classes (may be empty).
    """

    iou: tuple[float, ...]
    accuracy: tuple[float, ...]
    miou: float
    macc: float
    overall_accuracy: float
    absent_classes: tuple[int, ...]
    num_points: int
    class_names: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN written as None, since JSON has no NaN)."""

        def clean(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        names = self.class_names or tuple(str(i) for i in range(len(self.iou)))
        return {
            "miou": clean(self.miou),
            "macc": clean(self.macc),
            "overall_accuracy": clean(self.overall_accuracy),
            "num_points": self.num_points,
            "absent_classes": [names[i] for i in self.absent_classes],
            "iou": {n: clean(v) for n, v in zip(names, self.iou, strict=True)},
            "accuracy": {n: clean(v) for n, v in zip(names, self.accuracy, strict=True)},
        }

    def to_markdown(self) -> str:
        """A markdown table: one summary row, then per-class IoU and accuracy (percent)."""
        names = self.class_names or tuple(str(i) for i in range(len(self.iou)))

        def pct(x: float) -> str:
            return "absent" if math.isnan(x) else f"{100 * x:.2f}"

        lines = [
            "| mIoU | mAcc | overall acc | points |",
            "|---:|---:|---:|---:|",
            f"| {pct(self.miou)} | {pct(self.macc)} | {pct(self.overall_accuracy)} | {self.num_points} |",
            "",
            "| class | IoU | Acc |",
            "|---|---:|---:|",
        ]
        for name, iou, acc in zip(names, self.iou, self.accuracy, strict=True):
            lines.append(f"| {name} | {pct(iou)} | {pct(acc)} |")
        return "\n".join(lines) + "\n"


class ConfusionMatrix:
    """A ``(num_classes, num_classes)`` int64 confusion matrix accumulated over a split.

    ``matrix[t, p]`` counts points with ground truth ``t`` predicted as ``p``. The matrix lives on
    the device of the first update (device-agnostic: a single ``torch.bincount`` per update).

    Args:
        num_classes: number of classes ``C``.
        ignore_label: ground-truth value excluded from counting.
        class_names: optional names, carried into :class:`SegmentationMetrics`.
    """

    def __init__(self, num_classes: int, ignore_label: int = -1, class_names: Sequence[str] = ()):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if class_names and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        if 0 <= ignore_label < num_classes:
            raise ValueError(f"ignore_label {ignore_label} is a valid class id in [0, {num_classes})")
        self.num_classes = int(num_classes)
        self.ignore_label = int(ignore_label)
        self.class_names = tuple(class_names)
        self.matrix: torch.Tensor | None = None

    def reset(self) -> None:
        self.matrix = None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Count predictions ``pred`` (N,) against ground truth ``target`` (N,), both integer ids.

        Raises:
            ValueError: shapes differ, a prediction is outside ``[0, C)``, or a ground-truth value
                is neither a class id nor the ignore label.
        """
        pred = torch.as_tensor(pred).reshape(-1).long()
        target = torch.as_tensor(target).reshape(-1).long().to(pred.device)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        c = self.num_classes
        keep = target != self.ignore_label
        pred, target = pred[keep], target[keep]
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= c):
            bad = target[(target < 0) | (target >= c)].unique()[:10].tolist()
            raise ValueError(f"ground-truth labels {bad} are neither in [0, {c}) nor {self.ignore_label}")
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= c):
            bad = pred[(pred < 0) | (pred >= c)].unique()[:10].tolist()
            raise ValueError(f"predicted labels {bad} are outside [0, {c})")
        counts = torch.bincount(target * c + pred, minlength=c * c).reshape(c, c)
        if self.matrix is None:
            self.matrix = counts
        else:
            self.matrix += counts.to(self.matrix.device)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix (e.g. from another process) into this one."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes}-class matrix into {self.num_classes}-class")
        if other.matrix is None:
            return
        if self.matrix is None:
            self.matrix = other.matrix.clone()
        else:
            self.matrix += other.matrix.to(self.matrix.device)

    def compute(self) -> SegmentationMetrics:
        """Per-class IoU and accuracy, their means over present classes, and overall accuracy."""
        c = self.num_classes
        m = (self.matrix if self.matrix is not None else torch.zeros(c, c, dtype=torch.long)).double().cpu()
        tp = m.diagonal()
        gt = m.sum(dim=1)
        predicted = m.sum(dim=0)
        present = gt > 0
        nan = torch.full((c,), math.nan, dtype=torch.float64)
        iou = torch.where(present, tp / (gt + predicted - tp).clamp(min=1), nan)
        acc = torch.where(present, tp / gt.clamp(min=1), nan)
        total = float(m.sum())
        any_present = bool(present.any())
        return SegmentationMetrics(
            iou=tuple(iou.tolist()),
            accuracy=tuple(acc.tolist()),
            miou=float(iou[present].mean()) if any_present else math.nan,
            macc=float(acc[present].mean()) if any_present else math.nan,
            overall_accuracy=float(tp.sum()) / total if total > 0 else math.nan,
            absent_classes=tuple(int(i) for i in torch.nonzero(~present).flatten().tolist()),
            num_points=int(total),
            class_names=self.class_names,
        )

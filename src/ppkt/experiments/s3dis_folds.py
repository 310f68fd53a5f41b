"""S3DIS 6-fold cross-validation: fine-tune once per held-out area, report each fold and the mean.

The paper's S3DIS table uses Area 5 only (the ``finetune-s3dis`` preset); 6-fold is the other
protocol of the S3DIS literature (PointNet onwards): for every area, train on the five others and
evaluate on it. The mean printed here is the mean of the per-fold mIoUs; some papers instead
pool the six folds' confusion matrices (which weighs large areas more), so compare like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ppkt.data.s3dis import S3DIS_AREAS
from ppkt.data.types import SceneSource
from ppkt.eval.config import FinetuneConfig
from ppkt.eval.finetune import finetune
from ppkt.eval.metrics import SegmentationMetrics


@dataclass(frozen=True)
class FoldResult:
    """One fold: the held-out area, its run folder and the best checkpoint's metrics on it."""

    area: str
    run_dir: Path
    metrics: SegmentationMetrics


def fold_config(cfg: FinetuneConfig, area: str, areas: Sequence[str] = S3DIS_AREAS) -> FinetuneConfig:
    """``cfg`` with ``area`` held out for evaluation, the other ``areas`` trained on, its own run folder."""
    if area not in areas:
        raise ValueError(f"fold {area!r} is not one of {', '.join(areas)}")
    train = ",".join(a for a in areas if a != area)
    return replace(
        cfg,
        data=replace(cfg.data, train_split=train, val_split=area),
        run=replace(cfg.run, out=Path(cfg.run.out) / f"fold-{area}"),
    )


def six_fold(
    cfg: FinetuneConfig, *, folds: Sequence[str] = S3DIS_AREAS, source: SceneSource | None = None
) -> list[FoldResult]:
    """Run :func:`ppkt.eval.finetune.finetune` once per fold of ``folds`` (default: all six areas)."""
    if cfg.data.kind != "s3dis":
        raise ValueError(f"the 6-fold protocol is for data.kind s3dis, not {cfg.data.kind}")
    results = []
    for area in folds:
        result = finetune(fold_config(cfg, area), source=source)
        results.append(FoldResult(area, result.run_dir, result.best))
    return results


def format_folds(results: Sequence[FoldResult]) -> str:
    """One line per fold and the mean of the folds' mIoU (in %)."""
    lines = [f"{r.area}: mIoU {100 * r.metrics.miou:.1f}  ({r.run_dir})" for r in results]
    if results:
        mean = float(np.mean([r.metrics.miou for r in results]))
        lines.append(f"mean over {len(results)} folds: mIoU {100 * mean:.1f}")
    return "\n".join(lines)

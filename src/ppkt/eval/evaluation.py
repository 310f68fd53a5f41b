"""Evaluation of a segmentation model on every original point of a split.

Whole scenes run without augmentation; each voxel's argmax class goes back to every original
point through ``point_to_voxel`` and a :class:`~ppkt.eval.metrics.ConfusionMatrix` accumulates
over the split. Under torchrun each process evaluates every ``world_size``-th scene and the
matrices are summed over the processes, so every rank gets the metrics of the whole split.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ppkt.data.types import IGNORE_LABEL
from ppkt.engine.runtime import Runtime
from ppkt.eval.data import SegmentationBatch, SegmentationDataset
from ppkt.eval.metrics import ConfusionMatrix, SegmentationMetrics


@torch.no_grad()
def predict_points(model: nn.Module, batch: SegmentationBatch) -> torch.Tensor:
    """``(N,)`` predicted class of every original point of the batch (voxel argmax, mapped back)."""
    logits = model(batch.sparse.tensor)
    return logits.argmax(dim=1)[batch.sparse.point_to_voxel]


def confusion_matrix(
    model: nn.Module,
    dataset: SegmentationDataset,
    *,
    class_names=(),
    device: torch.device | str = "cpu",
    batch_size: int = 1,
    num_workers: int = 0,
    progress: bool = False,
    runtime: Runtime | None = None,
) -> ConfusionMatrix:
    """The confusion matrix of ``model`` over every original point of ``dataset`` (no augmentation);
    with a distributed ``runtime``, summed over every process's share of the scenes."""
    from tqdm import tqdm

    distributed = runtime is not None and runtime.distributed
    scenes = range(runtime.dist.rank, len(dataset), runtime.dist.world_size) if distributed else None
    data = torch.utils.data.Subset(dataset, list(scenes)) if scenes is not None else dataset
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(dataset.num_classes, IGNORE_LABEL, class_names=class_names)
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=False, collate_fn=dataset.collate, num_workers=num_workers
    )
    for batch in tqdm(
        loader, desc="evaluate", unit="scene" if batch_size == 1 else "batch", disable=not progress
    ):
        batch = batch.to(device)
        cm.update(predict_points(model, batch), batch.point_labels)
    model.train(was_training)
    if distributed:
        c = dataset.num_classes
        total = cm.matrix if cm.matrix is not None else torch.zeros(c, c, dtype=torch.long)
        total = total.to(runtime.device).clone()
        dist.all_reduce(total)
        cm.matrix = total
    return cm


def evaluate_model(
    model: nn.Module,
    dataset: SegmentationDataset,
    *,
    class_names=(),
    device: torch.device | str = "cpu",
    batch_size: int = 1,
    num_workers: int = 0,
    progress: bool = False,
    runtime: Runtime | None = None,
) -> SegmentationMetrics:
    """Metrics of ``model`` on every original point of ``dataset`` (see :func:`confusion_matrix`)."""
    return confusion_matrix(
        model,
        dataset,
        class_names=class_names,
        device=device,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
        runtime=runtime,
    ).compute()

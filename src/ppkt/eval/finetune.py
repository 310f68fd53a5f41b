"""Semantic segmentation fine-tuning on top of a (pretrained or random) 3D backbone.

:class:`SegmentationTask` is what segmentation brings to the one fine-tuning run body
(:func:`ppkt.eval.training_loop.run_task`, detection's too): its scenes and label split, datasets,
model, optimiser, the per-voxel cross-entropy over labelled voxels, and mIoU evaluation.

A segmentation run (:func:`finetune`) writes into ``run.out`` (a detection run the same files)::

    config.yaml                  the resolved FinetuneConfig
    log.jsonl                    one JSON object a line: training steps and validation results
    checkpoints/best.safetensors model (``backbone.*``, ``head.*``) with the best validation mIoU
    checkpoints/last.safetensors model at the last step
    checkpoints/step_*/, latest  resumable checkpoints (weights, optimiser, data position, best so far)
    metrics.json, metrics.md     validation metrics of the best checkpoint (and of the last)

Every model file carries its config in its metadata, so ``ppkt evaluate`` needs only the file.
The model and its files live in :mod:`ppkt.eval.model`, evaluation in :mod:`ppkt.eval.evaluation`;
device, schedule, log, checkpoints, guards, precision and the run folder's lock come from
:mod:`ppkt.engine`, shared with pretraining.

Modes:

* ``finetune``: backbone and head trained with SGD, each with its own learning rate.
* ``linear``: the ``backbone`` submodule is frozen by name: its parameters get no gradient, it
  stays in eval mode (batch-norm statistics are not updated) and runs under ``no_grad``; only the
  head (one linear layer) is trained.
* ``finetune`` with ``optim.head_warmup_steps = N``: linear mode for the first N steps, then
  everything trains (LP-FT). SGD skips parameters without gradients, so the backbone's momentum and
  weight decay start only when it is released.

Resume, data order and DDP: see :mod:`ppkt.eval.training_loop`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ppkt.data.registry import SceneRequest, open_scenes
from ppkt.data.types import IGNORE_LABEL
from ppkt.engine import (
    Runtime,
    resolve_device,
)
from ppkt.eval.config import EvalDataConfig, FinetuneConfig, validate
from ppkt.eval.data import (
    InMemorySceneSource,
    SceneSource,
    SegmentationBatch,
    SegmentationDataset,
)
from ppkt.eval.evaluation import confusion_matrix, evaluate_model, predict_points
from ppkt.eval.metrics import ConfusionMatrix, SegmentationMetrics
from ppkt.eval.model import (
    SegmentationModel,
    build_model,
    load_checkpoint,
    load_pretrained_backbone,
    model_file,
)
from ppkt.eval.splits import LabelSplit, load_or_create_split, load_published_split
from ppkt.eval.training_loop import Evaluation, FinetuneTask, StepLoss, run_finetuning


# ------------------------------------------------------------------------------------------------ data
def build_source(data: EvalDataConfig) -> SceneSource:
    """The labelled scenes of ``data`` from the registry of formats (``ppkt.data.registry``)."""
    return open_scenes(
        data.kind,
        SceneRequest(
            data.root,
            scene_lists=data.scene_lists,
            label_set=data.label_set,
            label_map=data.label_map,
            nuscenes_version=data.nuscenes_version,
            synthetic=data.synthetic,
        ),
    )


def make_label_split(cfg: FinetuneConfig, source: SceneSource) -> LabelSplit:
    # The run folder, never the dataset: datasets are often read-only or shared.
    splits_dir = cfg.labels.splits_dir or Path(cfg.run.out) / "splits"
    pool = source.scene_ids(cfg.data.train_split)
    if cfg.labels.kind == "published":
        return load_published_split(
            pool,
            lambda sid: source.read(sid).labels,
            scene_list=cfg.labels.scene_list,
            point_indices=cfg.labels.point_indices,
            copy_to=Path(cfg.run.out) / "splits",
        )
    return load_or_create_split(
        splits_dir,
        cfg.labels.kind,
        cfg.labels.budget,
        cfg.labels.seed,
        pool,
        lambda sid: source.read(sid).labels,
    )


# -------------------------------------------------------------------------------------- segmentation
@dataclass
class FinetuneResult:
    """What a run produced.

    Attributes:
        run_dir: the run folder.
        best: validation metrics of the best checkpoint.
        last: validation metrics at the last step.
        best_step: step of the best checkpoint.
        skipped_batches: training micro-batches without any labelled voxel (skipped; a step
            whose micro-batches are all skipped is not taken).
        losses: training loss of every step run in this session that trained, by step (1-based).
        model: the trained model (not saved again; for notebooks and tests).
    """

    run_dir: Path
    best: SegmentationMetrics
    last: SegmentationMetrics
    best_step: int
    skipped_batches: int
    losses: dict[int, float] = field(default_factory=dict)
    model: SegmentationModel | None = None


def _optimizer(model: SegmentationModel, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    groups = [{"params": list(model.head.parameters()), "lr": cfg.optim.lr_head, "name": "head"}]
    if cfg.model.mode == "finetune":  # a backbone frozen for a head warm-up joins later, unchanged
        groups.append(
            {"params": list(model.backbone.parameters()), "lr": cfg.optim.lr_backbone, "name": "backbone"}
        )
    for g in groups:
        g["initial_lr"] = g["lr"]
    return torch.optim.SGD(
        groups, lr=cfg.optim.lr_head, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay
    )


class SegmentationTask(FinetuneTask):
    """Semantic segmentation: per-voxel cross-entropy over the labelled voxels, mIoU on the points."""

    log_prefix = "finetune/"
    resume_command = "ppkt finetune --resume"
    skip_reason = "no labelled voxel"
    cfg: FinetuneConfig

    @property
    def label(self) -> str:
        return self.cfg.model.mode

    def open_source(self) -> SceneSource:
        return build_source(self.cfg.data)

    def label_split(self, source: SceneSource) -> tuple[tuple[str, ...], LabelSplit]:
        cfg = self.cfg
        class_names = tuple(source.class_names)
        if len(class_names) != cfg.data.num_classes:
            raise ValueError(
                f"data.num_classes is {cfg.data.num_classes} but the dataset has {len(class_names)} classes"
            )
        return class_names, make_label_split(cfg, source)

    def datasets(
        self, source: SceneSource, split: LabelSplit
    ) -> tuple[SegmentationDataset, SegmentationDataset]:
        cfg = self.cfg
        common = dict(
            voxel_size=cfg.model.voxel_size,
            input_features=cfg.model.input_features,
            num_classes=cfg.data.num_classes,
            cache_scenes=cfg.data.cache_scenes,
        )
        train_set = SegmentationDataset(
            source,
            split.scenes,
            label_split=split,
            augmentation=cfg.augment.build(),
            seed=cfg.train_seed,
            **common,
        )
        return train_set, SegmentationDataset(source, source.scene_ids(cfg.data.val_split), **common)

    def build_model(self, class_names: tuple[str, ...]) -> SegmentationModel:
        return build_model(self.cfg)

    def optimizer(self, model: SegmentationModel) -> torch.optim.Optimizer:
        return _optimizer(model, self.cfg)

    @property
    def head_warmup(self) -> int:
        return self.cfg.optim.head_warmup_steps if self.cfg.model.mode == "finetune" else 0

    def usable(self, batch: SegmentationBatch) -> bool:
        return bool((batch.voxel_labels != IGNORE_LABEL).any())

    def loss(self, net: torch.nn.Module, model: torch.nn.Module, batch: SegmentationBatch) -> StepLoss:
        logits = net(batch.sparse.tensor)
        return StepLoss(F.cross_entropy(logits, batch.voxel_labels, ignore_index=IGNORE_LABEL))

    def evaluate(self, model, dataset, class_names, rt: Runtime) -> Evaluation:
        matrix = confusion_matrix(
            model, dataset, class_names=class_names, device=rt.device, num_workers=self.cfg.data.num_workers,
            runtime=rt,
        )  # fmt: skip
        return self._evaluation(matrix)

    def _evaluation(self, matrix: ConfusionMatrix) -> Evaluation:
        metrics = matrix.compute()
        record = {"miou": metrics.miou, "macc": metrics.macc, "overall_accuracy": metrics.overall_accuracy}
        return Evaluation(metrics, metrics.miou, record, {"best_matrix": matrix.matrix.cpu()})

    def restore_best(self, loop: dict[str, Any], class_names) -> Evaluation | None:
        if loop.get("best_matrix") is None:
            return None
        matrix = ConfusionMatrix(self.cfg.data.num_classes, IGNORE_LABEL, class_names=class_names)
        matrix.matrix = loop["best_matrix"]
        return self._evaluation(matrix)

    def postfix(self, evaluation: Evaluation) -> dict[str, str]:
        return {"val_miou": f"{100 * evaluation.score:.1f}"}

    def file_metadata(self, evaluation: Evaluation, best: bool) -> dict[str, Any]:
        return {"miou": evaluation.score}

    def summary(
        self, split: LabelSplit, best: SegmentationMetrics, last: SegmentationMetrics, best_step: int
    ):
        cfg = self.cfg
        return {
            "origin": cfg.origin,
            "mode": cfg.model.mode,
            "init": str(cfg.model.init) if cfg.model.init else None,
            "labels": {"kind": cfg.labels.kind, "budget": cfg.labels.budget, "seed": cfg.labels.seed},
            "split": cfg.data.val_split,
            "best_step": best_step,
            "best": best.to_dict(),
            "last": last.to_dict(),
        }


def finetune(
    cfg: FinetuneConfig,
    *,
    source: SceneSource | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> FinetuneResult:
    """Run a fine-tuning or linear-probing job as ``cfg`` says; see the module docstring for outputs.

    Args:
        cfg: the run's configuration.
        source: labelled scenes to use instead of ``cfg.data`` (e.g. an :class:`InMemorySceneSource`).
        resume: continue the run in ``cfg.run.out`` from its latest checkpoint.
        overwrite: start over in a folder that holds an earlier run's step checkpoints (they are
            removed); without it that is a FileExistsError (protocols that rerun a run pass it).

    Raises:
        NonFiniteError: the loss, or a weight, statistic or optimiser state about to be saved,
            became NaN/inf (the last good checkpoint is kept and named).
        RunLockedError: another process is writing into the run folder.
        RunInterrupted: Ctrl-C; the message says how to resume.
    """
    validate(cfg)
    run = run_finetuning(SegmentationTask(cfg), source, resume, overwrite)
    return FinetuneResult(
        run.run_dir,
        run.best,
        run.last,
        run.best_step,
        run.skipped_batches,
        losses=run.losses,
        model=run.model,
    )


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    data_root: str | Path | None = None,
    split: str | None = None,
    device: str = "auto",
    progress: bool = True,
    source: SceneSource | None = None,
) -> tuple[SegmentationMetrics, FinetuneConfig]:
    """Evaluate a checkpoint file, or a run folder (its ``checkpoints/best.safetensors``).

    ``data_root`` and ``split`` override the checkpoint's own ``data.root`` / ``data.val_split``.
    """
    path = model_file(checkpoint)
    if Path(checkpoint).is_dir() and not path.is_file():
        raise FileNotFoundError(f"{path}: run folder has no best checkpoint")
    model, cfg, class_names = load_checkpoint(path)
    if data_root is not None:
        from dataclasses import replace

        cfg = replace(cfg, data=replace(cfg.data, root=Path(data_root)))
    dev = resolve_device(device)
    source = source if source is not None else build_source(cfg.data)
    dataset = SegmentationDataset(
        source,
        source.scene_ids(split or cfg.data.val_split),
        voxel_size=cfg.model.voxel_size,
        input_features=cfg.model.input_features,
        num_classes=cfg.data.num_classes,
        cache_scenes=False,
    )
    model.to(dev)
    metrics = evaluate_model(
        model, dataset, class_names=class_names or source.class_names, device=dev, progress=progress
    )
    return metrics, cfg


__all__ = [
    "FinetuneResult",
    "InMemorySceneSource",
    "SegmentationModel",
    "SegmentationTask",
    "build_model",
    "evaluate_checkpoint",
    "evaluate_model",
    "finetune",
    "load_checkpoint",
    "load_pretrained_backbone",
    "predict_points",
]

"""Detection fine-tuning and evaluation: VoteNet on a (pretrained or random) backbone.

A run (:func:`finetune_detection`) writes into ``run.out``, as segmentation runs do::

    config.yaml                  the resolved DetectionConfig
    log.jsonl                    one JSON object a line: training steps (VoteNet's loss parts), validation
    checkpoints/best.safetensors model (``backbone.*``, ``head.*`` with its size templates), best mAP@0.25
    checkpoints/last.safetensors model at the last step
    metrics.json, metrics.md     per-class AP and mAP@0.25/0.5 of the best checkpoint (and of the last)

A run is the one fine-tuning run body (``ppkt.eval.training_loop.run_task``, segmentation's too), with
:class:`DetectionTask` bringing what differs (scenes, size templates, model, optimiser, VoteNet's
loss, evaluation). The body drives ``ppkt.engine``: runtime (device, seeding, threads,
determinism), the one learning-rate schedule, the metrics log, atomic step checkpoints with the
finite guards, precision and gradient accumulation, the run folder's lock, Ctrl-C as
``RunInterrupted``, and resume (``resume=True``, ``ppkt finetune --task detection --resume RUN``):
``checkpoints/step_*`` and ``latest`` hold weights, optimiser, scaler, RNG, the training data order
and the best result so far. The backbone loads strictly and card-checked
(``load_pretrained_backbone``).
Limited labels: a fraction of the training scenes (``labels.kind scenes``), drawn and saved by
``ppkt.eval.splits`` exactly as for segmentation (into ``run.out/splits`` unless
``labels.splits_dir``), so both tasks use the same scenes at the same budget and seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ppkt.config import config_from_dict
from ppkt.data.registry import SceneRequest, open_detection_scenes
from ppkt.engine import Runtime, resolve_device
from ppkt.eval.detection.config import DetectionConfig, DetectionDataConfig, validate
from ppkt.eval.detection.criterion import votenet_loss
from ppkt.eval.detection.data import DetectionBatch, DetectionDataset, DetectionSource
from ppkt.eval.detection.metrics import DetectionEvaluator, DetectionMetrics
from ppkt.eval.detection.model import DetectionModel, build_detection_model, mean_box_sizes, predict_boxes
from ppkt.eval.finetune import _optimizer
from ppkt.eval.model import CLASS_NAMES_METADATA_KEY, model_file
from ppkt.eval.splits import LabelSplit, load_or_create_split
from ppkt.eval.training_loop import Evaluation, FinetuneTask, run_finetuning
from ppkt.utils.weights import load_state_strict, load_weights

CONFIG_METADATA_KEY = "ppkt_detection_config"


def build_detection_source(data: DetectionDataConfig) -> DetectionSource:
    """The scenes with boxes of ``data`` from the registry of formats (``ppkt.data.registry``)."""
    return open_detection_scenes(
        data.kind, SceneRequest(data.root, scene_lists=data.scene_lists, synthetic=data.synthetic)
    )


def make_detection_split(cfg: DetectionConfig, source: DetectionSource) -> LabelSplit:
    if cfg.labels.kind != "scenes":
        raise ValueError(
            f"labels.kind {cfg.labels.kind!r}: detection limits labels by fraction of scenes only"
        )
    # The run folder, never the dataset: datasets are often read-only or shared.
    splits_dir = cfg.labels.splits_dir or Path(cfg.run.out) / "splits"
    pool = source.scene_ids(cfg.data.train_split)
    return load_or_create_split(
        splits_dir,
        "scenes",
        cfg.labels.budget,
        cfg.labels.seed,
        pool,
        lambda sid: source.read(sid).instance_ids,
    )


def build_optimizer(model: DetectionModel, cfg: DetectionConfig) -> torch.optim.Optimizer:
    """SGD: the segmentation loop's ``_optimizer``; Adam: the same head/backbone groups and rates."""
    sgd = _optimizer(model, cfg)
    if cfg.optim.optimizer == "sgd":
        return sgd
    return torch.optim.Adam(
        [
            {k: v for k, v in g.items() if k in ("params", "lr", "name", "initial_lr")}
            for g in sgd.param_groups
        ],
        lr=cfg.optim.lr_head,
        weight_decay=cfg.optim.weight_decay,
    )


# ------------------------------------------------------------------------------------------ checkpoints
def load_detection_checkpoint(path: str | Path) -> tuple[DetectionModel, DetectionConfig, tuple[str, ...]]:
    """A checkpoint written by :func:`finetune_detection`: (model in eval mode, config, class names)."""
    path = Path(path)
    state, metadata = load_weights(path)
    if CONFIG_METADATA_KEY not in metadata:
        raise ValueError(f"{path}: not a ppkt detection checkpoint (no {CONFIG_METADATA_KEY!r} metadata)")
    cfg = config_from_dict(DetectionConfig, yaml.safe_load(metadata[CONFIG_METADATA_KEY]), where=str(path))
    class_names = tuple(json.loads(metadata[CLASS_NAMES_METADATA_KEY]))
    if "head.mean_sizes" not in state:
        raise ValueError(f"{path}: no head.mean_sizes (size templates) in the checkpoint")
    model = build_detection_model(cfg, len(class_names), state["head.mean_sizes"].numpy())
    load_state_strict(model, state, what=str(path))
    return model.eval(), cfg, class_names


def is_detection_checkpoint(path: str | Path) -> bool:
    """Whether a checkpoint file (or run folder) holds a detection model."""
    from safetensors import safe_open

    path = model_file(path)
    if not path.is_file():
        return False
    try:  # the metadata alone, not the tensors
        with safe_open(str(path), framework="pt") as handle:
            return CONFIG_METADATA_KEY in (handle.metadata() or {})
    except Exception:  # not a safetensors file: the segmentation path reports it in its words
        return False


# ------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_detection(
    model: DetectionModel,
    dataset: DetectionDataset,
    cfg: DetectionConfig,
    class_names: tuple[str, ...],
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
    keep_predictions: bool = False,
) -> tuple[DetectionMetrics, list]:
    """AP of ``model`` over ``dataset`` (one scene at a time, no augmentation); with
    ``keep_predictions`` also each scene's ``(scene_id, ScoredBoxes, true Boxes3D, points)``."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    evaluator = DetectionEvaluator(class_names, rotated=True)
    kept = []
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=1, collate_fn=dataset.collate, num_workers=cfg.data.num_workers
    )
    for batch in tqdm(loader, desc="evaluate", unit="scene", disable=not progress):
        batch = batch.to(device)
        out = model(batch)
        predicted = predict_boxes(out, model.head.mean_sizes, cfg.head, class_names)[0]
        evaluator.update(predicted, batch.boxes[0])
        if keep_predictions:
            kept.append((batch.scene_ids[0], predicted, batch.boxes[0], batch.points.cpu().numpy()))
    model.train(was_training)
    return evaluator.compute(), kept


# --------------------------------------------------------------------------------------------- training
@dataclass
class DetectionResult:
    """What a detection run produced.

    Attributes:
        run_dir: the run folder.
        best: validation metrics of the best checkpoint.
        last: validation metrics at the last step.
        best_step: step of the best checkpoint.
        first_loss: training loss of step 1 (NaN if this session resumed after it).
        last_loss: training loss of the last step.
        losses: training loss of every step run in this session, by step (1-based).
        model: the trained model (not saved again; for notebooks and tests).
    """

    run_dir: Path
    best: DetectionMetrics
    last: DetectionMetrics
    best_step: int
    first_loss: float
    last_loss: float
    losses: dict[int, float] = field(default_factory=dict)
    model: DetectionModel | None = None


def _metrics_to_loop(metrics: DetectionMetrics) -> dict:
    """The best result as tensors and numbers for ``TrainingState.loop`` (a resumed run compares
    against it)."""
    thresholds = list(metrics.ap)
    return {
        "thresholds": thresholds,
        "ap": torch.from_numpy(np.stack([metrics.ap[t] for t in thresholds])),
        "recall": torch.from_numpy(np.stack([metrics.recall[t] for t in thresholds])),
        "num_ground_truth": torch.from_numpy(np.asarray(metrics.num_ground_truth)),
        "num_scenes": metrics.num_scenes,
    }


def _metrics_from_loop(saved: dict, class_names: tuple[str, ...]) -> DetectionMetrics:
    thresholds = saved["thresholds"]
    return DetectionMetrics(
        class_names,
        {t: saved["ap"][i].numpy() for i, t in enumerate(thresholds)},
        {t: saved["recall"][i].numpy() for i, t in enumerate(thresholds)},
        saved["num_ground_truth"].numpy(),
        saved["num_scenes"],
    )


class DetectionTask(FinetuneTask):
    """VoteNet detection: its loss (and parts, logged), mAP@0.25 picks the best checkpoint."""

    label = "detection"
    log_prefix = "detection/"
    resume_command = "ppkt finetune --task detection --resume"
    config_key = CONFIG_METADATA_KEY
    cfg: DetectionConfig

    def open_source(self) -> DetectionSource:
        return build_detection_source(self.cfg.data)

    def label_split(self, source: DetectionSource) -> tuple[tuple[str, ...], LabelSplit]:
        return tuple(source.class_names), make_detection_split(self.cfg, source)

    def datasets(self, source: DetectionSource, split: LabelSplit) -> tuple[DetectionDataset, ...]:
        cfg = self.cfg
        common = dict(
            voxel_size=cfg.model.voxel_size,
            input_features=cfg.model.input_features,
            cache_scenes=cfg.data.cache_scenes,
        )
        train_set = DetectionDataset(
            source, split.scenes, augmentation=cfg.augment.build(), seed=cfg.train_seed, **common
        )
        # VoteNet's size templates: the training scenes' mean box size of each class.
        boxes = [train_set.scene(i).boxes for i in range(len(train_set))]
        self.mean_sizes = mean_box_sizes(boxes, len(source.class_names))
        return train_set, DetectionDataset(source, source.scene_ids(cfg.data.val_split), **common)

    def split_record(self) -> dict[str, Any]:
        return {"mean_sizes": self.mean_sizes.round(4).tolist()}

    def build_model(self, class_names: tuple[str, ...]) -> DetectionModel:
        return build_detection_model(self.cfg, len(class_names), self.mean_sizes)

    def optimizer(self, model: DetectionModel) -> torch.optim.Optimizer:
        return build_optimizer(model, self.cfg)

    def loss(self, net: torch.nn.Module, model: DetectionModel, batch: DetectionBatch):
        return votenet_loss(net(batch), batch, model.head.mean_sizes, self.cfg.head)

    def evaluate(self, model, dataset, class_names, rt: Runtime) -> Evaluation:
        metrics, _ = evaluate_detection(model, dataset, self.cfg, class_names, device=rt.device)
        return self._evaluation(metrics, _metrics_to_loop(metrics))

    def _evaluation(self, metrics: DetectionMetrics, saved: dict) -> Evaluation:
        record = {"mAP@0.25": metrics.map(0.25), "mAP@0.5": metrics.map(0.5)}
        return Evaluation(metrics, metrics.map(0.25), record, {"best_metrics": saved})

    def restore_best(self, loop: dict[str, Any], class_names) -> Evaluation | None:
        if "best_metrics" not in loop:
            return None
        return self._evaluation(_metrics_from_loop(loop["best_metrics"], class_names), loop["best_metrics"])

    def file_metadata(self, evaluation: Evaluation, best: bool) -> dict[str, Any]:
        return {"map25": evaluation.score} if best else {}

    def summary(self, split: LabelSplit, best: DetectionMetrics, last: DetectionMetrics, best_step: int):
        cfg = self.cfg
        return {
            "origin": cfg.origin,
            "task": "detection",
            "init": str(cfg.model.init) if cfg.model.init else None,
            "labels": {
                "kind": "scenes",
                "budget": cfg.labels.budget,
                "seed": cfg.labels.seed,
                "train_scenes": len(split.scenes),
            },
            "split": cfg.data.val_split,
            "best_step": best_step,
            "best": best.to_dict(),
            "last": last.to_dict(),
        }


def finetune_detection(
    cfg: DetectionConfig,
    *,
    source: DetectionSource | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> DetectionResult:
    """Run a detection fine-tuning job as ``cfg`` says; see the module docstring for the outputs.

    Args:
        cfg: the run's configuration.
        source: scenes with boxes to use instead of ``cfg.data`` (e.g. an ``InMemoryDetectionSource``).
        resume: continue the run in ``cfg.run.out`` from its latest checkpoint.
        overwrite: start over in a folder that holds an earlier run's step checkpoints (they are
            removed); without it that is a FileExistsError (protocols that rerun a run pass it).

    Raises:
        NonFiniteError: the loss, or a weight or optimiser state about to be saved, became NaN/inf
            (the last good checkpoint is kept and named).
        RunLockedError: another process is writing into the run folder.
        RunInterrupted: Ctrl-C; the message says how to resume.
    """
    validate(cfg)
    run = run_finetuning(DetectionTask(cfg), source, resume, overwrite)
    first_loss = run.losses.get(1, math.nan)
    return DetectionResult(
        run.run_dir, run.best, run.last, run.best_step, first_loss, run.losses[cfg.optim.steps],
        losses=run.losses, model=run.model,
    )  # fmt: skip


def evaluate_detection_checkpoint(
    checkpoint: str | Path,
    *,
    data_root: str | Path | None = None,
    split: str | None = None,
    device: str = "auto",
    progress: bool = True,
    source: DetectionSource | None = None,
    keep_predictions: bool = False,
) -> tuple[DetectionMetrics, DetectionConfig, list]:
    """Evaluate a detection checkpoint file, or a run folder (its ``checkpoints/best.safetensors``)."""
    from dataclasses import replace

    path = model_file(checkpoint)
    if Path(checkpoint).is_dir() and not path.is_file():
        raise FileNotFoundError(f"{path}: run folder has no best checkpoint")
    model, cfg, class_names = load_detection_checkpoint(path)
    if data_root is not None:
        cfg = replace(cfg, data=replace(cfg.data, root=Path(data_root)))
    dev = resolve_device(device)
    source = source if source is not None else build_detection_source(cfg.data)
    dataset = DetectionDataset(
        source, source.scene_ids(split or cfg.data.val_split), voxel_size=cfg.model.voxel_size,
        input_features=cfg.model.input_features, cache_scenes=False,
    )  # fmt: skip
    model.to(dev)
    metrics, kept = evaluate_detection(
        model, dataset, cfg, class_names, device=dev, progress=progress, keep_predictions=keep_predictions
    )
    return metrics, cfg, kept

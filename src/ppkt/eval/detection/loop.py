"""Detection fine-tuning and evaluation: VoteNet on a (pretrained or random) backbone.

A run (:func:`finetune_detection`) writes into ``run.out``, as segmentation runs do::

    config.yaml                  the resolved DetectionConfig
    log.jsonl                    one JSON object a line: training steps (VoteNet's loss parts), validation
    checkpoints/best.safetensors model (``backbone.*``, ``head.*`` with its size templates), best mAP@0.25
    checkpoints/last.safetensors model at the last step
    metrics.json, metrics.md     per-class AP and mAP@0.25/0.5 of the best checkpoint (and of the last)

Run machinery is ``ppkt.engine``'s, driven exactly as the segmentation loop drives it and through
the same pieces of ``ppkt.eval.finetune`` (nothing copied): runtime (device, seeding, threads,
determinism), the one learning-rate schedule, the metrics log, atomic step checkpoints with the
finite guards, precision and gradient accumulation, the run folder's lock, Ctrl-C as
``RunInterrupted``, and resume (``resume=True``, ``ppkt finetune --task detection --resume RUN``):
``checkpoints/step_*`` and ``latest`` hold weights, optimiser, scaler, RNG, the training data order
and the best result so far. The backbone loads strictly and card-checked (``load_pretrained_backbone``).
Limited labels: a fraction of the training scenes (``labels.kind scenes``), drawn and saved by
``ppkt.eval.splits`` exactly as for segmentation (into ``run.out/splits`` unless
``labels.splits_dir``), so both tasks use the same scenes at the same budget and seed.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from ppkt.config import config_from_dict
from ppkt.data.registry import SceneRequest, open_detection_scenes
from ppkt.engine import (
    MetricsLog,
    NonFiniteError,
    Precision,
    RunFolder,
    RunInterrupted,
    Runtime,
    latest_checkpoint,
    lr_factor,
    resolve_device,
    setup_runtime,
)
from ppkt.engine.sync_batchnorm import convert_sync_batchnorm
from ppkt.eval.detection.config import DetectionConfig, DetectionDataConfig, validate
from ppkt.eval.detection.criterion import votenet_loss
from ppkt.eval.detection.data import DetectionDataset, DetectionSource
from ppkt.eval.detection.metrics import DetectionEvaluator, DetectionMetrics
from ppkt.eval.detection.model import DetectionModel, build_detection_model, mean_box_sizes, predict_boxes
from ppkt.eval.finetune import (
    LOG,
    DataPosition,
    _optimizer,
    begin_run,
    check_training_state,
    interrupted,
    restore_training,
    save_training,
    train_batches,
)
from ppkt.eval.model import CLASS_NAMES_METADATA_KEY, load_pretrained_backbone, save_model_file
from ppkt.eval.splits import LabelSplit, load_or_create_split
from ppkt.utils.io import atomic_write_json, atomic_write_text
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

    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "best.safetensors"
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


def _summary(
    cfg: DetectionConfig, split: LabelSplit, best: DetectionMetrics, last: DetectionMetrics, best_step: int
) -> dict:
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
    rt = setup_runtime(
        cfg.run.device,
        seed=cfg.train_seed,
        cpu_threads=cfg.run.cpu_threads,
        deterministic=cfg.run.deterministic,
    )
    with RunFolder(cfg.run.out, enabled=rt.is_main) as folder:
        return _finetune_detection(cfg, rt, folder, source, resume, overwrite)


def _finetune_detection(
    cfg: DetectionConfig,
    rt: Runtime,
    folder: RunFolder,
    source: DetectionSource | None,
    resume: bool,
    overwrite: bool,
) -> DetectionResult:
    from tqdm import tqdm

    run_dir, device, main = folder.path, rt.device, rt.is_main
    ckpt = begin_run(run_dir, cfg, rt, resume, overwrite)
    with rt.main_first():  # synthetic data and split files are written once
        source = source if source is not None else build_detection_source(cfg.data)
        class_names = tuple(source.class_names)
        split = make_detection_split(cfg, source)
    common = dict(
        voxel_size=cfg.model.voxel_size,
        input_features=cfg.model.input_features,
        cache_scenes=cfg.data.cache_scenes,
    )
    train_set = DetectionDataset(
        source, split.scenes, augmentation=cfg.augment.build(), seed=cfg.train_seed, **common
    )
    val_set = DetectionDataset(source, source.scene_ids(cfg.data.val_split), **common)
    mean_sizes = mean_box_sizes([train_set.scene(i).boxes for i in range(len(train_set))], len(class_names))

    model = build_detection_model(cfg, len(class_names), mean_sizes)
    if cfg.model.init is not None and ckpt is None:  # a resumed run has its weights in the checkpoint
        load_pretrained_backbone(model, cfg.model.init, cfg)
    model.to(device).train()
    if cfg.model.sync_batchnorm and rt.distributed:
        convert_sync_batchnorm(model.backbone)
    o = cfg.optim
    optimizer = build_optimizer(model, cfg)
    precision = Precision(cfg.run.precision, device)
    position = DataPosition()
    step = best_step = 0
    best: DetectionMetrics | None = None
    if ckpt is not None:
        step, loop = restore_training(ckpt, model, optimizer, precision, rt, cfg)
        position = DataPosition.from_loop(loop)
        best_step = loop["best_step"]
        if "best_metrics" in loop:
            best = _metrics_from_loop(loop["best_metrics"], class_names)

    net: torch.nn.Module = model
    if rt.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    log = MetricsLog(
        run_dir / LOG,
        enabled=main,
        resume_step=step if ckpt is not None else None,
        tensorboard=run_dir / "tensorboard" if cfg.run.tensorboard else None,
        tensorboard_prefix="detection/",
    )
    if ckpt is None:
        log.write(
            {"event": "split", "name": split.name, "train_scenes": len(split.scenes),
             "val_scenes": len(val_set), "mean_sizes": mean_sizes.round(4).tolist()}
        )  # fmt: skip
    batches = train_batches(train_set, cfg, rt, position)

    ckpt_dir = run_dir / "checkpoints"
    last: DetectionMetrics | None = None
    losses: dict[int, float] = {}
    started = time.perf_counter()

    def checkpoint() -> None:
        loop = {
            **position.to_loop(),
            "best_step": best_step,
            **({} if best is None else {"best_metrics": _metrics_to_loop(best)}),
        }
        save_training(run_dir, model, optimizer, precision, rt, step, loop, cfg.run.keep_checkpoints)

    bar = tqdm(
        range(step + 1, o.steps + 1), desc=f"detection {split.name}", disable=not (cfg.run.progress and main)
    )
    try:
        for step in bar:
            factor = lr_factor(
                step - 1, o.steps, warmup=o.warmup_steps, schedule=o.schedule, power=o.poly_power
            )
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            step_losses = []
            for _ in range(o.accumulate):
                batch = next(batches).to(device)
                with precision.autocast():
                    parts = votenet_loss(net(batch), batch, model.head.mean_sizes, cfg.head)
                if not rt.all_true(bool(torch.isfinite(parts.total))):
                    raise NonFiniteError(
                        f"{run_dir}: non-finite training loss {float(parts.total.detach())} at step {step} "
                        f"(scenes {batch.scene_ids}); "
                        f"last good checkpoint: {latest_checkpoint(run_dir) or 'none'}"
                    )
                if not step_losses:
                    optimizer.zero_grad(set_to_none=True)
                precision.backward(parts.total, o.accumulate)
                step_losses.append(parts.to_log())
            precision.step(optimizer, model.parameters(), o.grad_clip)
            # The step's loss and its parts: means over its micro-batches (optim.accumulate).
            parts_mean = {k: sum(p[k] for p in step_losses) / len(step_losses) for k in step_losses[0]}
            value = parts_mean["loss"]
            losses[step] = value
            if step % cfg.run.log_every == 0 or step == 1:
                record = {
                    "event": "train",
                    "step": step,
                    **parts_mean,
                    "seconds": time.perf_counter() - started,
                }
                record.update({f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups})
                log.write(record)
                bar.set_postfix(loss=f"{value:.3f}")
            folder.mark_started()
            if step % cfg.run.eval_every == 0 or step == o.steps:
                last, _ = evaluate_detection(model, val_set, cfg, class_names, device=device)
                map25 = last.map(0.25)
                log.write({"event": "val", "step": step, "mAP@0.25": map25, "mAP@0.5": last.map(0.5)})
                if best is None or (
                    not math.isnan(map25) and (math.isnan(best.map(0.25)) or map25 > best.map(0.25))
                ):
                    best, best_step = last, step
                    check_training_state(model, optimizer, rt, run_dir, step, "best.safetensors")
                    if main:
                        save_model_file(
                            model, ckpt_dir / "best.safetensors", cfg, class_names,
                            config_key=CONFIG_METADATA_KEY, step=step, map25=map25,
                        )  # fmt: skip
            if step % cfg.run.checkpoint_every == 0 or step == o.steps:
                checkpoint()
    except KeyboardInterrupt as err:
        if isinstance(err, RunInterrupted):
            raise
        raise interrupted(run_dir, step, "ppkt finetune --task detection --resume") from None
    finally:
        bar.close()
        log.close()
    check_training_state(model, optimizer, rt, run_dir, step, "last.safetensors")
    assert best is not None and last is not None  # the last step always evaluates
    if main:
        save_model_file(
            model, ckpt_dir / "last.safetensors", cfg, class_names, config_key=CONFIG_METADATA_KEY, step=o.steps
        )
        atomic_write_json(run_dir / "metrics.json", _summary(cfg, split, best, last, best_step))
        atomic_write_text(
            run_dir / "metrics.md",
            f"# {run_dir.name}: detection, labels {split.name}, init {cfg.model.init or 'scratch'}\n\n"
            f"Best checkpoint (step {best_step}), split {cfg.data.val_split}:\n\n" + best.to_markdown(),
        )
    first_loss = losses.get(1, math.nan)
    return DetectionResult(
        run_dir, best, last, best_step, first_loss, losses[o.steps], losses=losses, model=model
    )


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

    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoints" / "best.safetensors"
        if not path.is_file():
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

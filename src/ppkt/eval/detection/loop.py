"""Detection fine-tuning and evaluation: VoteNet on a (pretrained or random) backbone.

A run (:func:`finetune_detection`) writes into ``run.out``, as segmentation runs do::

    config.yaml                  the resolved DetectionConfig
    log.jsonl                    one JSON object a line: training steps (VoteNet's loss parts), validation
    checkpoints/best.safetensors model (``backbone.*``, ``head.*`` with its size templates), best mAP@0.25
    checkpoints/last.safetensors model at the last step
    metrics.json, metrics.md     per-class AP and mAP@0.25/0.5 of the best checkpoint (and of the last)

Run machinery is the segmentation loop's (``ppkt.eval.finetune``), reused rather than copied:
``resolve_device``, ``learning_rate_factor`` (schedule), ``_optimizer`` (SGD, head and backbone
learning rates), ``_loader`` / ``_batches`` (seeded shuffling, epochs), ``_append_jsonl`` (log),
``load_pretrained_backbone`` (strict, card-checked) and ``data_root``. Limited labels: a fraction
of the training scenes (``labels.kind scenes``), drawn and saved by ``ppkt.eval.splits`` exactly
as for segmentation, so both tasks use the same scenes at the same budget and seed.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from ppkt.config import config_from_dict, config_to_dict, save_config
from ppkt.eval.detection.config import DetectionConfig, DetectionDataConfig
from ppkt.eval.detection.criterion import votenet_loss
from ppkt.eval.detection.data import DetectionDataset, DetectionSource, SyntheticDetectionSource
from ppkt.eval.detection.metrics import DetectionEvaluator, DetectionMetrics
from ppkt.eval.detection.model import DetectionModel, build_detection_model, mean_box_sizes, predict_boxes
from ppkt.eval.finetune import (
    _append_jsonl,
    _batches,
    _loader,
    _optimizer,
    data_root,
    learning_rate_factor,
    load_pretrained_backbone,
    resolve_device,
)
from ppkt.eval.splits import LabelSplit, load_or_create_split
from ppkt.utils.io import atomic_write_json, atomic_write_text
from ppkt.utils.seed import seed_everything
from ppkt.utils.weights import load_state_strict, load_weights, save_weights

CONFIG_METADATA_KEY = "ppkt_detection_config"
CLASS_NAMES_METADATA_KEY = "class_names"


def build_detection_source(data: DetectionDataConfig) -> DetectionSource:
    if data.kind == "synthetic":
        from ppkt.data.synthetic import ensure_dataset

        root = ensure_dataset(
            scenes=data.synthetic_scenes,
            frames_per_scene=data.synthetic_frames_per_scene,
            seed=data.synthetic_seed,
            image_hw=tuple(data.synthetic_image_hw),
            cache_dir=data.root,
        )
        return SyntheticDetectionSource(root, scene_lists=data.scene_lists)
    if data.kind == "scannet":
        from ppkt.data.scannet_boxes import ScanNetDetectionSource

        if data.root is None:
            raise ValueError("data.root is required for data.kind scannet (the ScanNet scans folder)")
        return ScanNetDetectionSource(data.root, scene_lists=data.scene_lists)
    if data.kind == "sunrgbd":
        from ppkt.data.sunrgbd import SunRGBDDetectionSource

        if data.root is None:
            raise ValueError("data.root is required for data.kind sunrgbd (the sunrgbd_trainval folder)")
        if data.scene_lists is not None:
            raise ValueError(
                "data.scene_lists is for data.kind scannet or synthetic; sunrgbd lists <split>_data_idx.txt"
            )
        return SunRGBDDetectionSource(data.root)
    raise ValueError(f"unknown data.kind {data.kind!r} for detection")


def make_detection_split(cfg: DetectionConfig, source: DetectionSource) -> LabelSplit:
    if cfg.labels.kind != "scenes":
        raise ValueError(
            f"labels.kind {cfg.labels.kind!r}: detection limits labels by fraction of scenes only"
        )
    splits_dir = cfg.labels.splits_dir or data_root(cfg.data, source) / "splits"
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
def save_detection_checkpoint(
    model: DetectionModel, path: Path, cfg: DetectionConfig, class_names, **extra
) -> None:
    metadata = {
        CONFIG_METADATA_KEY: yaml.safe_dump(config_to_dict(cfg), sort_keys=False),
        CLASS_NAMES_METADATA_KEY: json.dumps(list(class_names)),
        **{k: str(v) for k, v in extra.items()},
    }
    save_weights(model.state_dict(), path, metadata=metadata)


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
    loader = _loader(dataset, 1, shuffle=False, seed=0, workers=cfg.data.num_workers)
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
    """What a detection run produced: the run folder, validation metrics of the best checkpoint
    and of the last step, the best checkpoint's step, and the last logged training losses."""

    run_dir: Path
    best: DetectionMetrics
    last: DetectionMetrics
    best_step: int
    first_loss: float
    last_loss: float


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


def finetune_detection(cfg: DetectionConfig, *, source: DetectionSource | None = None) -> DetectionResult:
    """Run a detection fine-tuning job as ``cfg`` says; see the module docstring for the outputs."""
    from tqdm import tqdm

    if cfg.optim.steps < 1 or cfg.optim.batch_size < 1:
        raise ValueError(
            f"optim.steps and optim.batch_size must be >= 1, got {cfg.optim.steps}, {cfg.optim.batch_size}"
        )
    run_dir = Path(cfg.run.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").unlink(missing_ok=True)
    (run_dir / "metrics.md").unlink(missing_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    log_path = run_dir / "log.jsonl"
    log_path.write_text("")
    seed_everything(cfg.train_seed)
    device = resolve_device(cfg.run.device)

    source = source if source is not None else build_detection_source(cfg.data)
    class_names = tuple(source.class_names)
    split = make_detection_split(cfg, source)
    common = dict(
        voxel_size=cfg.data.voxel_size,
        input_features=cfg.data.input_features,
        cache_scenes=cfg.data.cache_scenes,
    )
    train_set = DetectionDataset(
        source, split.scenes, augmentation=cfg.augment.build(), seed=cfg.train_seed, **common
    )
    val_set = DetectionDataset(source, source.scene_ids(cfg.data.val_split), **common)
    mean_sizes = mean_box_sizes([train_set.scene(i).boxes for i in range(len(train_set))], len(class_names))
    _append_jsonl(
        log_path,
        {"event": "split", "name": split.name, "train_scenes": len(split.scenes), "val_scenes": len(val_set),
         "mean_sizes": mean_sizes.round(4).tolist()},
    )  # fmt: skip

    model = build_detection_model(cfg, len(class_names), mean_sizes)
    if cfg.model.init is not None:
        load_pretrained_backbone(model, cfg.model.init, cfg)
    model.to(device).train()
    optimizer = build_optimizer(model, cfg)
    loader = _loader(
        train_set, cfg.optim.batch_size, shuffle=True, seed=cfg.train_seed, workers=cfg.data.num_workers
    )
    batches = _batches(train_set, loader)

    ckpt_dir = run_dir / "checkpoints"
    best = last = None
    best_step = 0
    first_loss = last_loss = math.nan
    started = time.perf_counter()
    bar = tqdm(range(1, cfg.optim.steps + 1), desc=f"detection {split.name}", disable=not cfg.run.progress)
    for step in bar:
        factor = learning_rate_factor(cfg, step - 1)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        batch = next(batches).to(device)
        losses = votenet_loss(model(batch), batch, model.head.mean_sizes, cfg.head)
        if not torch.isfinite(losses.total):
            raise FloatingPointError(
                f"{run_dir}: non-finite training loss {float(losses.total.detach())} at step {step} "
                f"(scenes {batch.scene_ids})"
            )
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        optimizer.step()
        last_loss = float(losses.total.detach())
        first_loss = last_loss if step == 1 else first_loss
        if step % cfg.run.log_every == 0 or step == 1:
            record = {
                "event": "train",
                "step": step,
                **losses.to_log(),
                "seconds": time.perf_counter() - started,
            }
            record.update({f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups})
            _append_jsonl(log_path, record)
            bar.set_postfix(loss=f"{last_loss:.3f}")
        if step % cfg.run.eval_every == 0 or step == cfg.optim.steps:
            last, _ = evaluate_detection(model, val_set, cfg, class_names, device=device)
            map25 = last.map(0.25)
            _append_jsonl(
                log_path, {"event": "val", "step": step, "mAP@0.25": map25, "mAP@0.5": last.map(0.5)}
            )
            if best is None or (
                not math.isnan(map25) and (math.isnan(best.map(0.25)) or map25 > best.map(0.25))
            ):
                best, best_step = last, step
                save_detection_checkpoint(
                    model, ckpt_dir / "best.safetensors", cfg, class_names, step=step, map25=map25
                )
    save_detection_checkpoint(model, ckpt_dir / "last.safetensors", cfg, class_names, step=cfg.optim.steps)
    assert best is not None and last is not None  # the last step always evaluates
    atomic_write_json(run_dir / "metrics.json", _summary(cfg, split, best, last, best_step))
    atomic_write_text(
        run_dir / "metrics.md",
        f"# {run_dir.name}: detection, labels {split.name}, init {cfg.model.init or 'scratch'}\n\n"
        f"Best checkpoint (step {best_step}), split {cfg.data.val_split}:\n\n" + best.to_markdown(),
    )
    return DetectionResult(run_dir, best, last, best_step, first_loss, last_loss)


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
        source, source.scene_ids(split or cfg.data.val_split), voxel_size=cfg.data.voxel_size,
        input_features=cfg.data.input_features, cache_scenes=False,
    )  # fmt: skip
    model.to(dev)
    metrics, kept = evaluate_detection(
        model, dataset, cfg, class_names, device=dev, progress=progress, keep_predictions=keep_predictions
    )
    return metrics, cfg, kept

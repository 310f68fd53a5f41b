"""Semantic segmentation on top of a (pretrained or random) 3D backbone: fine-tuning, linear probing.

A run (:func:`finetune`) writes into ``run.out``::

    config.yaml                  the resolved FinetuneConfig
    log.jsonl                    one JSON object a line: training steps and validation results
    checkpoints/best.safetensors model (``backbone.*``, ``head.*``) with the best validation mIoU
    checkpoints/last.safetensors model at the last step
    metrics.json, metrics.md     validation metrics of the best checkpoint (and of the last)

Every checkpoint carries its config in its metadata, so ``ppkt evaluate`` needs only the file.

Modes:

* ``finetune``: backbone and head trained with SGD, each with its own learning rate.
* ``linear``: the ``backbone`` submodule is frozen by name: its parameters get no gradient, it
  stays in eval mode (batch-norm statistics are not updated) and runs under ``no_grad``; only the
  head (one linear layer) is trained.
* ``finetune`` with ``optim.head_warmup_steps = N``: linear mode for the first N steps, then
  everything trains (LP-FT). SGD skips parameters without gradients, so the backbone's momentum and
  weight decay start only when it is released.

Evaluation (:func:`evaluate_model`) runs whole scenes without augmentation, predicts a class per
voxel, takes it back to every original point through ``point_to_voxel`` and accumulates a
:class:`~ppkt.eval.metrics.ConfusionMatrix` over the split.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from ppkt.config import config_from_dict, config_to_dict, save_config
from ppkt.data.types import IGNORE_LABEL
from ppkt.eval.config import EvalDataConfig, FinetuneConfig
from ppkt.eval.data import (
    InMemorySceneSource,
    ScanNetSceneSource,
    SceneSource,
    SegmentationBatch,
    SegmentationDataset,
)
from ppkt.eval.metrics import ConfusionMatrix, SegmentationMetrics
from ppkt.eval.splits import LabelSplit, load_or_create_split
from ppkt.utils.io import atomic_write_json, atomic_write_text
from ppkt.utils.seed import seed_everything
from ppkt.utils.weights import load_state_strict, load_weights, save_weights

CONFIG_METADATA_KEY = "ppkt_finetune_config"
CLASS_NAMES_METADATA_KEY = "class_names"


# ----------------------------------------------------------------------------------------------- model
class SegmentationModel(nn.Module):
    """``backbone`` (sparse U-Net) + ``head`` (per-voxel linear classifier).

    Args:
        backbone: module mapping a SparseTensor to per-voxel features (``out_channels``).
        num_classes: number of classes.
        freeze_backbone: linear probing: the backbone is frozen (see module docstring).
        freeze_batchnorm: the backbone's batch norms normalise with their stored statistics and
            never update them, also while the backbone trains (their scale and shift still learn).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        freeze_backbone: bool = False,
        freeze_batchnorm: bool = False,
    ):
        super().__init__()
        from ppkt.backbones import SegmentationHead

        self.backbone = backbone
        self.head = SegmentationHead(backbone.out_channels, num_classes)
        self.freeze_batchnorm = freeze_batchnorm
        self.freeze_backbone = False
        self.set_backbone_frozen(freeze_backbone)

    def set_backbone_frozen(self, frozen: bool) -> None:
        """Freeze (no grad, eval-mode batch norm) or release the backbone."""
        self.freeze_backbone = frozen
        self.backbone.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> SegmentationModel:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # keep batch-norm statistics frozen
        elif self.freeze_batchnorm:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, tensor) -> torch.Tensor:
        """``(M, num_classes)`` logits on the sites of the input SparseTensor."""
        if self.freeze_backbone:
            with torch.no_grad():
                feats = self.backbone(tensor).feats
        else:
            feats = self.backbone(tensor).feats
        return self.head(feats)


def build_model(cfg: FinetuneConfig) -> SegmentationModel:
    from ppkt.backbones import INPUT_FEATURE_CHANNELS, build_backbone

    backbone = build_backbone(
        cfg.model.backbone,
        INPUT_FEATURE_CHANNELS[cfg.data.input_features],
        width=cfg.model.width,
        backend=cfg.model.backend,
    )
    return SegmentationModel(
        backbone,
        cfg.data.num_classes,
        freeze_backbone=cfg.model.mode == "linear",
        freeze_batchnorm=cfg.model.freeze_batchnorm,
    )


def load_pretrained_backbone(model: SegmentationModel, path: str | Path, cfg: FinetuneConfig) -> None:
    """Load an exported backbone (``ppkt export``: safetensors + card) strictly into ``model.backbone``.

    Raises:
        ValueError: the card's backbone, width, voxel size or input features differ from ``cfg``.
        StateDictMismatch: a backbone key is missing, unexpected or mis-shaped (all are listed).
    """
    from ppkt.train.export import load_card, tensors_sha256

    path = Path(path)
    card = load_card(path)
    expected = {
        "backbone": cfg.model.backbone,
        "width": float(cfg.model.width),
        "voxel_size": float(cfg.data.voxel_size),
        "input_features": cfg.data.input_features,
    }
    found = {
        "backbone": card.backbone,
        "width": float(card.width),
        "voxel_size": float(card.voxel_size),
        "input_features": card.input_features,
    }
    wrong = [
        f"{key}: checkpoint {found[key]!r} vs config {expected[key]!r}"
        for key in expected
        if (
            not math.isclose(found[key], expected[key], rel_tol=1e-6)
            if isinstance(expected[key], float)
            else found[key] != expected[key]
        )
    ]
    if wrong:
        raise ValueError(
            f"{path}: the pretrained backbone does not match this run ({'; '.join(wrong)}); "
            "set the run's options to the card's values"
        )
    state, _ = load_weights(path)
    if tensors_sha256(state) != card.weights_sha256:
        raise ValueError(f"{path}: the weights do not match the sha256 recorded in their card")
    load_state_strict(model.backbone, state, what=f"{path} (pretrained backbone)")


def save_checkpoint(model: SegmentationModel, path: Path, cfg: FinetuneConfig, class_names, **extra) -> None:
    metadata = {
        CONFIG_METADATA_KEY: yaml.safe_dump(config_to_dict(cfg), sort_keys=False),
        CLASS_NAMES_METADATA_KEY: json.dumps(list(class_names)),
        **{k: str(v) for k, v in extra.items()},
    }
    save_weights(model.state_dict(), path, metadata=metadata)


def load_checkpoint(path: str | Path) -> tuple[SegmentationModel, FinetuneConfig, tuple[str, ...]]:
    """A segmentation checkpoint written by :func:`finetune`: (model in eval mode, config, class names)."""
    path = Path(path)
    state, metadata = load_weights(path)
    if CONFIG_METADATA_KEY not in metadata:
        raise ValueError(f"{path}: not a ppkt segmentation checkpoint (no {CONFIG_METADATA_KEY!r} metadata)")
    cfg = config_from_dict(FinetuneConfig, yaml.safe_load(metadata[CONFIG_METADATA_KEY]), where=str(path))
    model = build_model(cfg)
    load_state_strict(model, state, what=str(path))
    class_names = tuple(json.loads(metadata.get(CLASS_NAMES_METADATA_KEY, "[]")))
    return model.eval(), cfg, class_names


# ------------------------------------------------------------------------------------------------ data
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_source(data: EvalDataConfig) -> SceneSource:
    if data.scene_lists is not None and data.kind not in ("scannet", "synthetic"):
        raise ValueError(f"data.scene_lists is for data.kind scannet or synthetic, not {data.kind}")
    if data.kind == "scannet":
        if data.root is None:
            raise ValueError("data.root is required for data.kind scannet (the ScanNet export folder)")
        return ScanNetSceneSource(data.root, scene_lists=data.scene_lists)
    if data.kind == "synthetic":
        from ppkt.data.synthetic import ensure_dataset

        root = ensure_dataset(
            scenes=data.synthetic_scenes,
            frames_per_scene=data.synthetic_frames_per_scene,
            seed=data.synthetic_seed,
            image_hw=tuple(data.synthetic_image_hw),
            cache_dir=data.root,
        )
        return ScanNetSceneSource(root, scene_lists=data.scene_lists)
    if data.kind in ("semantickitti", "nuscenes"):
        if data.root is None:
            raise ValueError(f"data.root is required for data.kind {data.kind}")
        if data.kind == "semantickitti":
            from ppkt.data.semantickitti import SemanticKittiSceneSource

            return SemanticKittiSceneSource(data.root)
        from ppkt.data.nuscenes import NuScenesSceneSource

        return NuScenesSceneSource(data.root, version=data.nuscenes_version)
    raise ValueError(f"unknown data.kind {data.kind!r}")


def data_root(data: EvalDataConfig, source: SceneSource) -> Path:
    return Path(getattr(source, "root", data.root or "."))


def make_label_split(cfg: FinetuneConfig, source: SceneSource) -> LabelSplit:
    splits_dir = cfg.labels.splits_dir or data_root(cfg.data, source) / "splits"
    pool = source.scene_ids(cfg.data.train_split)
    return load_or_create_split(
        splits_dir,
        cfg.labels.kind,
        cfg.labels.budget,
        cfg.labels.seed,
        pool,
        lambda sid: source.read(sid).labels,
    )


def _loader(dataset: SegmentationDataset, batch_size: int, *, shuffle: bool, seed: int, workers: int):
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator if shuffle else None,
        collate_fn=dataset.collate,
        num_workers=workers,
        drop_last=False,
    )


def _batches(dataset: SegmentationDataset, loader) -> Iterator[SegmentationBatch]:
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        yield from loader
        epoch += 1


# ------------------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def predict_points(model: nn.Module, batch: SegmentationBatch) -> torch.Tensor:
    """``(N,)`` predicted class of every original point of the batch (voxel argmax, mapped back)."""
    logits = model(batch.sparse.tensor)
    return logits.argmax(dim=1)[batch.sparse.point_to_voxel]


def evaluate_model(
    model: nn.Module,
    dataset: SegmentationDataset,
    *,
    class_names=(),
    device: torch.device | str = "cpu",
    batch_size: int = 1,
    num_workers: int = 0,
    progress: bool = False,
) -> SegmentationMetrics:
    """Metrics of ``model`` on every original point of ``dataset`` (no augmentation)."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(dataset.num_classes, IGNORE_LABEL, class_names=class_names)
    loader = _loader(dataset, batch_size, shuffle=False, seed=0, workers=num_workers)
    for batch in tqdm(
        loader, desc="evaluate", unit="scene" if batch_size == 1 else "batch", disable=not progress
    ):
        batch = batch.to(device)
        cm.update(predict_points(model, batch), batch.point_labels)
    model.train(was_training)
    return cm.compute()


# -------------------------------------------------------------------------------------------- training
@dataclass
class FinetuneResult:
    """What a run produced.

    Attributes:
        run_dir: the run folder.
        best: validation metrics of the best checkpoint.
        last: validation metrics at the last step.
        best_step: step of the best checkpoint.
        skipped_batches: training batches without any labelled voxel (no step taken).
    """

    run_dir: Path
    best: SegmentationMetrics
    last: SegmentationMetrics
    best_step: int
    skipped_batches: int


def learning_rate_factor(cfg: FinetuneConfig, step: int) -> float:
    progress = min(step / max(cfg.optim.steps, 1), 1.0)
    if cfg.optim.schedule == "poly":
        return (1.0 - progress) ** cfg.optim.poly_power
    if cfg.optim.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


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


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _summary(
    cfg: FinetuneConfig, best: SegmentationMetrics, last: SegmentationMetrics, best_step: int
) -> dict:
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


def finetune(cfg: FinetuneConfig, *, source: SceneSource | None = None) -> FinetuneResult:
    """Run a fine-tuning or linear-probing job as ``cfg`` says; see the module docstring for outputs.

    Args:
        cfg: the run's configuration.
        source: labelled scenes to use instead of ``cfg.data`` (e.g. an :class:`InMemorySceneSource`).
    """
    from tqdm import tqdm

    if cfg.optim.steps < 1 or cfg.optim.batch_size < 1:
        raise ValueError(
            f"optim.steps and optim.batch_size must be >= 1, got {cfg.optim.steps}, {cfg.optim.batch_size}"
        )
    run_dir = Path(cfg.run.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Results of an earlier run in this folder would otherwise sit next to this run's config until
    # it finishes, and an interrupted run would look finished with someone else's numbers.
    (run_dir / "metrics.json").unlink(missing_ok=True)
    (run_dir / "metrics.md").unlink(missing_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    log_path = run_dir / "log.jsonl"
    log_path.write_text("")
    seed_everything(cfg.train_seed)
    device = resolve_device(cfg.run.device)

    source = source if source is not None else build_source(cfg.data)
    class_names = tuple(source.class_names)
    if len(class_names) != cfg.data.num_classes:
        raise ValueError(
            f"data.num_classes is {cfg.data.num_classes} but the dataset has {len(class_names)} classes"
        )
    split = make_label_split(cfg, source)
    common = dict(
        voxel_size=cfg.data.voxel_size,
        input_features=cfg.data.input_features,
        num_classes=cfg.data.num_classes,
    )
    train_set = SegmentationDataset(
        source, split.scenes, label_split=split, augmentation=cfg.augment.build(), seed=cfg.train_seed,
        cache_scenes=cfg.data.cache_scenes, **common,
    )  # fmt: skip
    val_set = SegmentationDataset(
        source, source.scene_ids(cfg.data.val_split), cache_scenes=cfg.data.cache_scenes, **common
    )
    _append_jsonl(
        log_path,
        {"event": "split", "name": split.name, "train_scenes": len(split.scenes), "val_scenes": len(val_set)},
    )

    model = build_model(cfg)
    if cfg.model.init is not None:
        load_pretrained_backbone(model, cfg.model.init, cfg)
    model.to(device).train()
    warmup = cfg.optim.head_warmup_steps if cfg.model.mode == "finetune" else 0
    if warmup > 0:
        model.set_backbone_frozen(True)
    optimizer = _optimizer(model, cfg)
    loader = _loader(
        train_set, cfg.optim.batch_size, shuffle=True, seed=cfg.train_seed, workers=cfg.data.num_workers
    )
    batches = _batches(train_set, loader)

    ckpt_dir = run_dir / "checkpoints"
    best: SegmentationMetrics | None = None
    last: SegmentationMetrics | None = None
    best_step = 0
    skipped = 0
    started = time.perf_counter()
    bar = tqdm(
        range(1, cfg.optim.steps + 1), desc=f"{cfg.model.mode} {split.name}", disable=not cfg.run.progress
    )
    shown_loss = "?"
    for step in bar:
        if warmup > 0 and step == warmup + 1:
            model.set_backbone_frozen(False)
            _append_jsonl(log_path, {"event": "backbone_released", "step": step})
        factor = learning_rate_factor(cfg, step - 1)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        batch = next(batches).to(device)
        if not bool((batch.voxel_labels != IGNORE_LABEL).any()):
            skipped += 1
            _append_jsonl(
                log_path,
                {"event": "skip", "step": step, "reason": "no labelled voxel", "scenes": batch.scene_ids},
            )
        else:
            logits = model(batch.sparse.tensor)
            loss = F.cross_entropy(logits, batch.voxel_labels, ignore_index=IGNORE_LABEL)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{run_dir}: non-finite training loss {float(loss)} at step {step} "
                    f"(scenes {batch.scene_ids})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % cfg.run.log_every == 0 or step == 1:
                record = {
                    "event": "train",
                    "step": step,
                    "loss": float(loss.detach()),
                    "seconds": time.perf_counter() - started,
                }
                record.update({f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups})
                _append_jsonl(log_path, record)
                shown_loss = f"{float(loss.detach()):.3f}"
                bar.set_postfix(loss=shown_loss)
        if step % cfg.run.eval_every == 0 or step == cfg.optim.steps:
            last = evaluate_model(
                model,
                val_set,
                class_names=class_names,
                device=device,
                progress=False,
                num_workers=cfg.data.num_workers,
            )
            _append_jsonl(
                log_path,
                {
                    "event": "val",
                    "step": step,
                    "miou": last.miou,
                    "macc": last.macc,
                    "overall_accuracy": last.overall_accuracy,
                },
            )
            if best is None or (
                not math.isnan(last.miou) and (math.isnan(best.miou) or last.miou > best.miou)
            ):
                best, best_step = last, step
                save_checkpoint(
                    model, ckpt_dir / "best.safetensors", cfg, class_names, step=step, miou=last.miou
                )
            bar.set_postfix(loss=shown_loss, val_miou=f"{100 * last.miou:.1f}")
    save_checkpoint(
        model, ckpt_dir / "last.safetensors", cfg, class_names, step=cfg.optim.steps, miou=last.miou
    )
    assert best is not None and last is not None  # the last step always evaluates
    atomic_write_json(run_dir / "metrics.json", _summary(cfg, best, last, best_step))
    atomic_write_text(
        run_dir / "metrics.md",
        f"# {run_dir.name}: {cfg.model.mode}, labels {split.name}, "
        f"init {cfg.model.init or 'scratch'}\n\n"
        f"Best checkpoint (step {best_step}), split {cfg.data.val_split}:\n\n" + best.to_markdown(),
    )
    return FinetuneResult(run_dir, best, last, best_step, skipped)


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
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoints" / "best.safetensors"
        if not path.is_file():
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
        voxel_size=cfg.data.voxel_size,
        input_features=cfg.data.input_features,
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
    "build_model",
    "evaluate_checkpoint",
    "evaluate_model",
    "finetune",
    "load_checkpoint",
    "load_pretrained_backbone",
    "predict_points",
]

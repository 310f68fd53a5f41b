"""The typed configuration of a fine-tuning / linear-probing run.

One frozen dataclass per part; :class:`FinetuneConfig` nests them. Presets live in
:mod:`ppkt.eval.presets`; any leaf can be overridden on the command line as
``--section.field VALUE``; the resolved config is saved as ``config.yaml`` in the run folder and
inside every checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ppkt.augment.color import ColorAugmentation
from ppkt.augment.points import SceneAugmentation
from ppkt.backbones.spec import BackboneSpec, check_backbone_spec
from ppkt.config import RangeCheck, device_problem, option
from ppkt.data.registry import SyntheticRooms, check_synthetic

# The render size of the synthetic rooms in fine-tuning and detection, which read only the rooms'
# clouds (these do not depend on it): the size fine-tuning always had, so its cache folder is kept.
SYNTHETIC_EVAL_HW = (120, 160)


@dataclass(frozen=True)
class EvalDataConfig:
    """Which labelled scenes (voxelised at model.voxel_size, with model.input_features)."""

    kind: Literal["scannet", "s3dis", "synthetic", "semantickitti", "nuscenes"] = option(
        "scannet",
        "labelled format (ppkt.data.registry): scannet: ScanNet v2 layout at data.root; s3dis: "
        "Stanford3dDataset_v1.2_Aligned_Version (splits: Area_5, comma-separated areas, all); synthetic: "
        "generated rooms; semantickitti / nuscenes: one lidar sweep per scene (with model.input_features "
        "constant)",
    )
    root: Path | None = option(
        None, "dataset root (ScanNet layout); synthetic: cache folder (None = default)"
    )
    train_split: str = option("train", "training scenes: <scene lists>/scannetv2_<train_split>.txt")
    val_split: str = option("val", "evaluation scenes: <scene lists>/scannetv2_<val_split>.txt")
    scene_lists: Path | None = option(
        None,
        "scannet/synthetic: folder of the scannetv2_<split>.txt scene lists (None = the dataset root); "
        "for splits of your own without writing into the dataset",
    )
    label_set: Literal["scannet20", "nyu40", "scannet200"] = option(
        "scannet20",
        "scannet: the 20 benchmark classes or all 40 NYU40 classes (from .labels.ply), or ScanNet200 "
        "(from the aggregation and segment files and data.label_map); set data.num_classes to match",
    )
    label_map: Path | None = option(
        None, "label_set scannet200: ScanNet's scannetv2-labels.combined.tsv (None = <data.root>/ that file)"
    )
    num_classes: int = option(20, "number of classes (ScanNet 20, SemanticKITTI 19, nuScenes-lidarseg 16)")
    nuscenes_version: str | None = option(
        None, "nuscenes: table folder (v1.0-trainval, v1.0-mini; None = detect)"
    )
    cache_scenes: bool = option(True, "keep read scenes in memory (per loader worker)")
    num_workers: int = option(0, "DataLoader worker processes (0 = load in the main process)")
    synthetic: SyntheticRooms = option(
        factory=lambda: SyntheticRooms(image_hw=SYNTHETIC_EVAL_HW),
        doc="the generated rooms (kind synthetic); the same values as the pretraining run reuse its rooms",
    )


@dataclass(frozen=True)
class EvalAugmentConfig:
    """Training-time 3D augmentation (never applied at evaluation). z is up."""

    enabled: bool = option(True, "apply the augmentations below to training scenes")
    max_points: int = option(0, "crop training scenes to this many points around a random point (0 = off)")
    rotate_up: float = option(math.pi, "max |angle| (rad) of a random rotation about the up (z) axis")
    flip: float = option(0.5, "probability of mirroring x, and independently y")
    scale_min: float = option(0.9, "random isotropic scale, lower bound")
    scale_max: float = option(1.1, "random isotropic scale, upper bound")
    jitter_std: float = option(0.005, "std (m) of per-point Gaussian jitter, clipped at 3 std")
    color_auto_contrast: float = option(
        0.2, "probability of stretching a scene's colours to the full range (blended by a random factor)"
    )
    color_translation: float = option(0.1, "max |shift| of a per-scene RGB offset, fraction of the range")
    color_jitter_std: float = option(0.05, "std of per-point Gaussian RGB noise, fraction of the range")
    color_hue_max: float = option(0.5, "max |shift| of the hue, fraction of the hue circle")
    color_saturation_max: float = option(0.2, "max relative change of the saturation")

    def build(self) -> SceneAugmentation | None:
        if not self.enabled:
            return None
        return SceneAugmentation(
            max_points=self.max_points,
            rotate_up=self.rotate_up,
            flip=self.flip,
            scale_min=self.scale_min,
            scale_max=self.scale_max,
            jitter_std=self.jitter_std,
            color=ColorAugmentation.from_config(self),
        )


@dataclass(frozen=True)
class LabelsConfig:
    """The limited-label budget (ppkt.eval.splits)."""

    kind: Literal["scenes", "points", "published"] = option(
        "scenes",
        "scenes: a fraction of training scenes; points: labelled points per scene (both drawn by ppkt); "
        "published: the files of labels.scene_list / labels.point_indices, used unchanged",
    )
    budget: float = option(1.0, "scene fraction in (0, 1] (kind scenes) or points per scene (kind points)")
    seed: int = option(0, "seed of the split draw (also of training unless run.seed is set)")
    scene_list: Path | None = option(
        None,
        "kind published: a scene list, one scene a line (the data-efficient benchmark's lists of 1, 5, 10, "
        "20 percent of the scenes)",
    )
    point_indices: Path | None = option(
        None,
        "kind published: scene -> labelled point indices (.json, .npz, or the benchmark's torch.save'd "
        "points20/50/100/200 files); copied into the run folder",
    )
    splits_dir: Path | None = option(
        None, "folder of split JSON files, reused when present (None = <run.out>/splits; never the dataset)"
    )


@dataclass(frozen=True)
class ModelConfig(BackboneSpec):
    """The backbone spec (the same options as pretraining's, ``ppkt.backbones.BackboneSpec``; with
    ``init`` the weight-defining ones must equal the file's card, and ``ppkt finetune --init`` takes
    the card's where the command line does not set them), the initialisation and how it trains."""

    init: Path | None = option(
        None,
        "pretrained backbone (ppkt export safetensors); None = from scratch. ppkt finetune --init FILE takes "
        "model.backbone, width, voxel_size and input_features from FILE's card unless given",
    )
    mode: Literal["finetune", "linear"] = option(
        "finetune", "finetune: train everything; linear: frozen backbone (eval mode, no grad), train the head"
    )
    freeze_batchnorm: bool = option(
        False,
        "fine-tuning: the backbone's batch norms keep the pretrained statistics (eval mode) instead of "
        "normalising with each batch and updating them; their scale and shift still train",
    )
    sync_batchnorm: bool = option(
        False, "under torchrun: batch-norm statistics over every process's batch (ignored on one process)"
    )


@dataclass(frozen=True)
class EvalOptimConfig:
    """SGD with momentum; separate learning rates for head and backbone."""

    steps: int = option(20000, "optimisation steps (batches)")
    batch_size: int = option(8, "scenes per batch")
    lr_head: float = option(0.1, "learning rate of the segmentation head")
    lr_backbone: float = option(0.1, "learning rate of the backbone (ignored in linear mode)")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(1e-4, "SGD weight decay (head and backbone)")
    schedule: Literal["poly", "cosine", "constant"] = option("poly", "learning-rate schedule over the steps")
    poly_power: float = option(0.9, "exponent of the poly schedule: lr * (1 - step/steps)^power")
    head_warmup_steps: int = option(
        0,
        "finetune mode: the first steps train the head alone on the frozen backbone, as in linear mode, "
        "then everything (LP-FT: a random head's first gradients distort pretrained features)",
    )
    warmup_steps: int = option(0, "linear learning-rate warm-up steps from 0 to the learning rates")
    accumulate: int = option(
        1, "micro-batches of batch_size whose gradients add up to one step (effective batch x accumulate)"
    )
    grad_clip: float | None = option(None, "clip the gradient norm to this value (None = off)")


@dataclass(frozen=True)
class EvalRunConfig:
    """Where the run writes and how often it evaluates."""

    out: Path = option(Path("runs/finetune"), "run folder (config, logs, checkpoints, metrics)")
    seed: int | None = option(None, "training seed (init, order, augmentation); None = labels.seed")
    eval_every: int = option(1000, "evaluate on the validation split every this many steps (and at the end)")
    log_every: int = option(20, "write a training log line every this many steps")
    device: str = option("auto", "torch device: auto (cuda if available), cpu, cuda, cuda:1, ...")
    cpu_threads: int | None = option(None, "torch CPU threads of the main process (None = torch's default)")
    deterministic: bool = option(
        False, "deterministic kernels; with the same seed a resumed run repeats exactly"
    )
    precision: Literal["fp32", "bf16", "fp16"] = option(
        "fp32", "fp32; bf16 or fp16 autocast (mixed precision; fp16 with a gradient scaler)"
    )
    checkpoint_every: int = option(
        1000, "write a resumable checkpoint (checkpoints/step_*) every k steps (and at the end)"
    )
    keep_checkpoints: int = option(2, "how many step checkpoints to keep (the newest)")
    tensorboard: bool = option(True, "also log to TensorBoard when it is installed")
    progress: bool = option(True, "show progress bars")


@dataclass(frozen=True)
class FinetuneConfig:
    """A complete fine-tuning or linear-probing run."""

    origin: str = option("custom", "the preset this config started from (set by --preset)", internal=True)
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    augment: EvalAugmentConfig = field(default_factory=EvalAugmentConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: EvalOptimConfig = field(default_factory=EvalOptimConfig)
    run: EvalRunConfig = field(default_factory=EvalRunConfig)

    @property
    def train_seed(self) -> int:
        return self.labels.seed if self.run.seed is None else self.run.seed


def validate(cfg: FinetuneConfig) -> None:
    """Reject values that cannot be meant; the ValueError names each field and its allowed range."""
    check = RangeCheck(cfg)
    data, aug = cfg.data, cfg.augment
    check.number("data.num_classes", low=1)
    check.number("data.num_workers", low=0)
    check_synthetic(check, data.synthetic, required_hw=True)
    check.number("augment.max_points", low=0)
    check.number("augment.rotate_up", low=0)
    check.number("augment.flip", low=0, high=1)
    check.number("augment.scale_min", low=0, low_open=True)
    check.require("augment.scale_max", aug.scale_min <= aug.scale_max, ">= augment.scale_min")
    check.number("augment.color_auto_contrast", low=0, high=1)
    for name in (
        "jitter_std",
        "color_translation",
        "color_jitter_std",
        "color_hue_max",
        "color_saturation_max",
    ):
        check.number(f"augment.{name}", low=0)
    check_shared_sections(check, cfg)
    check.raise_problems("invalid fine-tuning config")


def check_shared_sections(check, cfg) -> None:
    """The checks of the sections both fine-tuning tasks share (labels, model, optim, run); the
    detection config's ``validate`` runs them too."""
    labels, model = cfg.labels, cfg.model
    if labels.kind == "scenes":
        check.number("labels.budget", low=0, high=1, low_open=True)
    else:
        check.require(
            "labels.budget", labels.budget >= 1 and float(labels.budget).is_integer(), "a whole number >= 1"
        )
    check.number("labels.seed", low=0)
    check_backbone_spec(check, model)
    check.require(
        "model.init",
        model.init is None or Path(model.init).is_file(),
        "an existing file (ppkt export output)",
    )
    check.number("optim.steps", low=1)
    check.number("optim.batch_size", low=1)
    # A rate of 0 is meant: lr_backbone 0 in the linear presets and a learning-rate search's "backbone
    # frozen" point; lr_head 0 keeps a loaded model fixed (the strict-loading tests train it for a step).
    check.number("optim.lr_head", low=0)
    check.number("optim.lr_backbone", low=0)
    check.number("optim.momentum", low=0, high=1, high_open=True)
    check.number("optim.weight_decay", low=0)
    check.number("optim.poly_power", low=0, low_open=True)
    check.number("optim.head_warmup_steps", low=0)
    check.number("optim.warmup_steps", low=0)
    check.number("optim.accumulate", low=1)
    check.number("optim.grad_clip", low=0, low_open=True, optional=True)
    check.number("run.seed", low=0, optional=True)
    check.number("run.eval_every", low=1)
    check.number("run.log_every", low=1)
    check.number("run.checkpoint_every", low=1)
    check.number("run.keep_checkpoints", low=1)
    check.number("run.cpu_threads", low=1, optional=True)
    problem = device_problem(cfg.run.device)
    check.require("run.device", problem is None, problem or "")

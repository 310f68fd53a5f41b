"""The typed configuration of a pretraining run.

One frozen dataclass per part of the run; :class:`PretrainConfig` nests them. Presets
(:mod:`ppkt.train.presets`) are functions returning a full config; any leaf can be overridden
on the command line as ``--section.field VALUE`` and the resolved config is saved as
``config.yaml`` in the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ppkt.augment.config import AugmentConfig
from ppkt.backbones.spec import BackboneSpec, check_backbone_spec
from ppkt.config import RangeCheck, device_problem, option
from ppkt.data.images import DEPTH_RANGE
from ppkt.data.registry import SyntheticRooms, check_synthetic
from ppkt.teachers import TEACHERS


@dataclass(frozen=True)
class DataConfig:
    """Where the RGB-D frames come from and how they are read."""

    kind: Literal[
        "scannet", "scannet-sens", "7scenes", "tum", "rgbd-folder", "synthetic",
        "nuscenes", "kitti", "kitti-raw", "semantickitti",
    ] = option(
        "scannet",
        "dataset format (ppkt.data.registry, docs/datasets.md): RGB-D: scannet (exported layout), "
        "scannet-sens (raw .sens), 7scenes, tum, rgbd-folder (your own frames), synthetic (generated rooms); "
        "lidar + cameras: nuscenes, kitti (object benchmark), kitti-raw (raw recordings), semantickitti",
    )  # fmt: skip
    root: Path | None = option(
        None, "dataset root (ScanNet export, nuScenes, KITTI, SemanticKITTI); synthetic: cache folder"
    )
    split: str | None = option(
        "train",
        "scannet/synthetic: scannetv2_<split>.txt; nuscenes: train, val, slidr_parametrize, mini_train, ...; "
        "kitti: ImageSets/<split>.txt; semantickitti: train/val/test sequences; kitti-raw: train = all "
        "drives, else comma-separated drive folders; None = everything",
    )
    frame_skip: int = option(25, "use every k-th frame of each scan or lidar sequence (paper: 25)")
    up_axis: Literal["auto", "z", "-z", "y", "-y", "x", "-x"] = option(
        "auto",
        "7scenes, tum, rgbd-folder (SLAM-style poses): the world axis that points up, rotated to +z; "
        "auto = estimated from the camera poses (ppkt.data.gravity); other formats are z-up already",
    )
    color_from_depth: Path | None = option(
        None,
        "7scenes: text file with the 4x4 transform from the depth to the colour camera (7-Scenes' are not "
        "registered, about 18 px apart); None = one camera. rgbd-folder: in rgbd.yaml instead",
    )
    image_hw: tuple[int, int] = option(
        (240, 320), "colour image size fed to the teacher (H,W), before cropping"
    )
    min_depth: float = option(DEPTH_RANGE[0], "depth pixels nearer than this (m) give no point")
    max_depth: float = option(DEPTH_RANGE[1], "depth pixels farther than this (m) give no point")
    max_depth_pixels: int | None = option(
        None,
        "RGB-D: depth images with more pixels are read with a stride s, every s-th row and column, the "
        "smallest s giving at most this many pixels (None = every pixel, exact). Per-frame cost scales "
        "with the pixels; a stride changes the points (docs/backbones.md: stride 2 drops 15-25 % of the "
        "2.5 cm voxels of a 640x480 frame)",
    )
    points_frame: Literal["world", "camera"] = option(
        "world",
        "RGB-D points enter the 3D network in the world frame of the frame's pose (z up, as the labelled "
        "scenes of fine-tuning) or in the camera frame (y down); frames without a pose use the camera frame",
    )
    synthetic: SyntheticRooms = option(
        factory=SyntheticRooms,
        doc="the generated rooms (kind synthetic); rendered at data.image_hw by default",
    )
    num_workers: int = option(2, "DataLoader worker processes (0 = load in the main process)")
    pairs: Literal["frame", "scene"] = option(
        "frame",
        "frame: each frame's depth points paired with its own image (PPKT); scene: the scene's reconstructed "
        "cloud (<scene>_vh_clean_2.ply) paired with scene_views posed frames through a depth test "
        "(OpenScene-style scene-level pairs; ScanNet-layout RGB-D data, docs/objectives.md)",
    )
    scene_views: int = option(
        4, "pairs=scene: frames of the scene whose pixels are paired with its cloud per sample"
    )


@dataclass(frozen=True)
class TeacherConfig:
    """The frozen 2D network and its upsampling projection layer (UPL)."""

    name: str = option("resnet50", "teacher in ppkt.teachers.TEACHERS")
    weights: Path | None = option(None, "teacher weight file (required for teachers without bundled weights)")
    stage: str | None = option(None, "teacher stage to read (None = last)")
    cache: Path | None = option(
        None,
        "folder written by `ppkt cache-teacher`; when set, teacher features are read from it instead of "
        "running the teacher (RGB-D data only; 2D augmentation then does not reach the teacher, "
        "docs/pretraining.md)",
    )


@dataclass(frozen=True)
class StudentConfig(BackboneSpec):
    """The sparse 3D network being pretrained: the backbone spec (``--model.backbone``, ``.width``,
    ``.voxel_size``, ``.input_features``, ``.sparse_backend``, the same names as in fine-tuning) and
    how its batch norms run under torchrun."""

    sync_batchnorm: bool = option(
        False, "under torchrun: batch-norm statistics over every process's batch (ignored on one process)"
    )


@dataclass(frozen=True)
class LossConfig:
    """The pretraining objective (docs/objectives.md): PPKT's pixel-to-point InfoNCE
    (ppkt.losses.PointInfoNCE), cosine distillation (CosineDistillation) or SLidR's superpixel
    InfoNCE (SuperpixelInfoNCE)."""

    name: Literal["infonce", "cosine", "superpixel-infonce"] = option(
        "infonce",
        "infonce: PPKT's pixel-to-point InfoNCE; cosine: 1 - cos to the frozen teacher feature (ScaLR, "
        "OpenScene; embedding_dim is then the teacher's width); superpixel-infonce: InfoNCE between "
        "superpixel-pooled embeddings (SLidR)",
    )
    head: Literal["linear", "mlp"] = option("linear", "3D projection head: linear (PPKT) or a 2-layer MLP")
    embedding_dim: int = option(128, "width of the 2D (UPL) and 3D (projection head) embeddings")
    num_pairs: int = option(4096, "pairs sampled per step (per frame with sampling=frame)")
    tau: float = option(0.04, "softmax temperature")
    sampling: Literal["batch", "frame"] = option("batch", "sample pairs over the batch or per frame")
    gather_distributed: bool = option(False, "add the other ranks' pixels as negatives (infonce only)")
    superpixels: int = option(150, "superpixel-infonce: SLIC segments per image (SLidR: 150)")
    superpixel_pairs: int = option(
        16, "superpixel-infonce: pairs sampled per superpixel and step, pooled into its embedding"
    )
    superpixel_cache: Path | None = option(
        None,
        "superpixel-infonce: folder of cached superpixels (written on first use); None = "
        "<teacher.cache>/superpixels with a teacher cache, else computed on the fly",
    )


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule of the trainable parts (3D backbone, 3D head, UPL)."""

    optimizer: Literal["sgd", "adamw"] = option("sgd", "optimiser")
    lr: float = option(0.5, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum")
    dampening: float = option(0.0, "SGD dampening")
    weight_decay: float = option(1e-4, "weight decay")
    schedule: Literal["cosine", "poly", "constant"] = option("cosine", "learning-rate schedule after warm-up")
    poly_power: float = option(0.9, "exponent of the poly schedule: lr * (1 - progress)^power")
    warmup_steps: int = option(0, "linear warm-up steps from 0 to lr")
    batch_size: int = option(24, "frames per step (per process under torchrun)")
    steps: int = option(60000, "optimisation steps (ignored when epochs is set)")
    epochs: int | None = option(None, "train for this many passes over the data instead of `steps`")
    grad_clip: float | None = option(None, "clip the gradient norm to this value (None = off)")
    accumulate: int = option(
        1, "micro-batches of batch_size whose gradients add up to one step (effective batch x accumulate)"
    )


@dataclass(frozen=True)
class RunConfig:
    """Run folder, seeding, logging and checkpointing."""

    out: Path = option(Path("runs/pretrain"), "run folder (config.yaml, metrics.jsonl, checkpoints/)")
    seed: int = option(0, "seed of model init, data order, augmentation and pair sampling")
    deterministic: bool = option(
        False, "deterministic kernels; with the same seed a resumed run repeats exactly"
    )
    device: str = option("auto", "auto (cuda when available), cpu, cuda, cuda:1, ...")
    cpu_threads: int | None = option(None, "torch CPU threads of the main process (None = torch's default)")
    precision: Literal["fp32", "bf16", "fp16"] = option(
        "fp32", "fp32; bf16 or fp16 autocast (mixed precision; fp16 with a gradient scaler)"
    )
    checkpoint_every: int = option(1000, "write a checkpoint every k steps (and at the end)")
    keep_checkpoints: int = option(2, "how many step checkpoints to keep (the newest)")
    log_every: int = option(10, "write a metrics line every k steps")
    stop_after: int | None = option(None, "stop after this many steps in this session (time-boxed jobs)")
    tensorboard: bool = option(True, "also log to TensorBoard when it is installed")
    progress: bool = option(True, "show a progress bar")


@dataclass(frozen=True)
class PretrainConfig:
    """Everything a pretraining run depends on."""

    origin: str = option(
        "custom", "name of the preset this config started from (set by --preset)", internal=True
    )
    data: DataConfig = option(factory=DataConfig, doc="data")
    augment: AugmentConfig = option(factory=AugmentConfig, doc="augmentation")
    teacher: TeacherConfig = option(factory=TeacherConfig, doc="2D teacher")
    model: StudentConfig = option(factory=StudentConfig, doc="3D student")
    loss: LossConfig = option(factory=LossConfig, doc="loss")
    optim: OptimConfig = option(factory=OptimConfig, doc="optimisation")
    run: RunConfig = option(factory=RunConfig, doc="run")


def validate(cfg: PretrainConfig) -> None:
    """Reject values that cannot be meant; the ValueError names each field and its allowed range."""
    check = RangeCheck(cfg)
    data, aug, run = cfg.data, cfg.augment, cfg.run
    check.number("data.frame_skip", low=1)
    check.require("data.image_hw", min(data.image_hw) >= 8, "at least 8,8")
    check.number("data.min_depth", low=0)
    check.number("data.max_depth_pixels", low=1, optional=True)
    check.require("data.max_depth", data.min_depth < data.max_depth, "> data.min_depth")
    check_synthetic(check, data.synthetic, required_hw=False)
    check.number("data.num_workers", low=0)
    check.number("augment.rotate_up", low=0)
    check.number("augment.scale_min", low=0, low_open=True)
    check.require("augment.scale_max", aug.scale_min <= aug.scale_max, ">= augment.scale_min")
    for name in ("flip_3d", "hflip", "color_auto_contrast"):
        check.number(f"augment.{name}", low=0, high=1)
    check.number("augment.elastic_granularity", low=0, low_open=True)
    check.number("augment.elastic_magnitude", low=0)
    check.number("augment.crop_scale_min", low=0, high=1, low_open=True)
    check.require("augment.crop_hw", aug.crop_hw is None or min(aug.crop_hw) >= 8, "at least 8,8 or None")
    for name in ("color_translation", "color_jitter_std", "color_hue_max", "color_saturation_max"):
        check.number(f"augment.{name}", low=0)
    check.require(
        "teacher.name",
        cfg.teacher.name in TEACHERS or cfg.teacher.name.startswith("timm:"),
        f"one of {sorted(TEACHERS)} or timm:<model>",
    )
    check_backbone_spec(check, cfg.model)
    check.number("loss.embedding_dim", low=1)
    check.number("loss.num_pairs", low=2)
    check.number("loss.tau", low=0, low_open=True)
    check.number("loss.superpixels", low=2)
    check.number("loss.superpixel_pairs", low=2)
    check.require(
        "loss.gather_distributed",
        not (cfg.loss.gather_distributed and cfg.loss.name != "infonce"),
        "false unless loss.name=infonce",
    )
    check.number("data.scene_views", low=1)
    check.number("optim.lr", low=0, low_open=True)
    check.number("optim.momentum", low=0, high=1, high_open=True)
    check.number("optim.dampening", low=0, high=1)
    check.number("optim.weight_decay", low=0)
    check.number("optim.warmup_steps", low=0)
    check.number("optim.batch_size", low=1)
    check.number("optim.steps", low=1)
    check.number("optim.epochs", low=1, optional=True)
    check.number("optim.grad_clip", low=0, low_open=True, optional=True)
    check.number("optim.accumulate", low=1)
    check.number("optim.poly_power", low=0, low_open=True)
    check.number("run.seed", low=0)
    check.number("run.cpu_threads", low=1, optional=True)
    check.number("run.checkpoint_every", low=1)
    check.number("run.keep_checkpoints", low=1)
    check.number("run.log_every", low=1)
    check.number("run.stop_after", low=1, optional=True)
    problem = device_problem(run.device)
    check.require("run.device", problem is None, problem or "")
    check.raise_problems("invalid pretraining config")

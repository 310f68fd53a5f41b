"""The pretraining run: data, model, optimiser, the step loop, logging, checkpoints, resume.

``pretrain(cfg)`` runs on one process or under ``torchrun`` (DDP: gloo on CPU, nccl on GPU;
every rank reads its own shard of the data, rank 0 writes logs and checkpoints).

Reproducibility: the data order, each frame's augmentation and each step's pair sampling are
functions of ``(seed, step)``, and checkpoints carry the optimiser, scheduler and RNG states, so
in deterministic mode a resumed run repeats the loss sequence of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from ppkt.config import config_from_dict, config_to_dict, save_config
from ppkt.train.checkpoint import TrainingState, latest_checkpoint, load_checkpoint, save_checkpoint
from ppkt.train.config import PretrainConfig, validate
from ppkt.train.model import PPKTModel, build_model
from ppkt.train.objectives import Objective, superpixel_source
from ppkt.train.pipeline import Collator, PretrainDataset, StepBatchSampler

METRICS = "metrics.jsonl"
CONFIG = "config.yaml"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped before updating the weights."""


@dataclass
class PretrainResult:
    """What a finished (or stopped) run reports.

    Attributes:
        run_dir: the run folder.
        step: optimisation steps completed.
        losses: loss of every step run in this session, by step number (1-based).
        checkpoint: the newest checkpoint folder, or None.
        skipped_frames: frames skipped (unusable) in this session.
        index_skipped: reason -> count of the frames the dataset reader left out when indexing
            (e.g. nuScenes samples missing a camera, ScanNet frames with invalid poses).
        seconds: wall time of this session's steps.
        teacher_uncached_frames: with ``teacher.cache``, images of this session's batches that were
            not in the cache, so the teacher ran on them (0 without a cache).
        model: the trained model of this process (not saved; for notebooks and tests).
    """

    run_dir: Path
    step: int
    losses: dict[int, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    skipped_frames: int = 0
    index_skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    model: PPKTModel | None = None
    teacher_uncached_frames: int = 0


# --------------------------------------------------------------------------------------------
# Distributed helpers


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, info: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and info.world_size > 1:
        name = f"cuda:{info.local_rank}"
    device = torch.device(name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _all_true(flag: bool, device: torch.device, info: DistInfo) -> bool:
    if info.world_size == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0)


# --------------------------------------------------------------------------------------------
# Data


def build_frames(cfg: PretrainConfig, info: DistInfo | None = None) -> Sequence:
    """The frames of ``cfg.data``: a Sequence of RGBDFrame (scannet, synthetic) or of
    LidarCameraSample (nuscenes, kitti, kitti-raw, semantickitti).

    Synthetic data is generated once (cached by its parameters); under torchrun rank 0 generates
    it while the other ranks wait. The lidar readers carry ``beam_spacing_deg``, which
    :class:`PretrainDataset` uses for the occlusion test of the pairs.
    """
    from ppkt.data.scannet import ScanNetFrames

    data = cfg.data
    info = info or DistInfo()
    if data.kind == "synthetic":
        from ppkt.data.synthetic import ensure_dataset

        def ensure() -> Path:
            return ensure_dataset(
                scenes=data.synthetic_scenes,
                frames_per_scene=data.synthetic_frames_per_scene,
                seed=data.synthetic_seed,
                image_hw=tuple(data.image_hw),
                cache_dir=data.root,
                progress=info.is_main and cfg.run.progress,
            )

        if info.world_size > 1:
            if info.is_main:
                ensure()
            dist.barrier()
        root = ensure()
        return ScanNetFrames(root, split=data.split, frame_skip=data.frame_skip)
    if data.root is None:
        raise ValueError(f"data.root is required for data.kind={data.kind} (see docs/pretraining.md)")
    if data.kind == "scannet":
        return ScanNetFrames(data.root, split=data.split, frame_skip=data.frame_skip)
    return _lidar_reader(data.kind, data.root, data.split, data.frame_skip)


def _lidar_reader(kind: str, root: Path, split: str | None, frame_skip: int) -> Sequence:
    """The lidar + camera reader of ``kind`` (every camera loaded), keeping every
    ``frame_skip``-th sample."""
    if kind == "nuscenes":
        from ppkt.data.nuscenes import NuScenesSamples

        reader = NuScenesSamples(root, version=None, split=split)
    elif kind == "kitti":
        from ppkt.data.kitti import KittiObjectSamples

        reader = KittiObjectSamples(root, subset="training", image_set=split)
    elif kind == "kitti-raw":
        from ppkt.data.kitti import KittiRawSamples

        # KITTI raw has no official split: "train" (the config's default) means every drive.
        drives = None if split in (None, "train") else [d.strip() for d in split.split(",") if d.strip()]
        reader = KittiRawSamples(root, drives=drives)
    elif kind == "semantickitti":
        from ppkt.data.semantickitti import SemanticKittiSamples

        reader = SemanticKittiSamples(root, split=split, with_images=True, with_labels=False)
    else:
        raise ValueError(f"unknown data.kind {kind!r}")
    # Every reader indexes its samples in `records`; thinning the index keeps its other attributes.
    reader.records = reader.records[::frame_skip]
    if not reader.records:
        raise ValueError(f"{root}: no {kind} samples (split {split!r})")
    return reader


# --------------------------------------------------------------------------------------------
# Optimisation


def build_optimizer(cfg: PretrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, dampening=o.dampening, weight_decay=o.weight_decay
        )
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier before step ``step`` (0-based) of ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "poly":
        return (1.0 - progress) ** 0.9
    return 1.0


def total_steps(cfg: PretrainConfig, num_frames: int, world_size: int) -> int:
    if cfg.optim.epochs is None:
        return cfg.optim.steps
    per_epoch = (num_frames // world_size) // cfg.optim.batch_size
    return max(1, cfg.optim.epochs * per_epoch)


def pair_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The generator of one step's pair sampling (a function of seed, step and rank only)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1009 + rank)


# --------------------------------------------------------------------------------------------
# Logging


class MetricsLog:
    """``metrics.jsonl`` (and TensorBoard when installed) for rank 0; a no-op elsewhere."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool, resume_step: int | None) -> None:
        self.enabled = enabled
        self.path = run_dir / METRICS
        self.writer = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            # Lines after the checkpoint belong to steps that will run again.
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            from ppkt.utils.io import atomic_write_text

            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        self.handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                self.writer = None

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"pretrain/{key}", value, record["step"])

    def close(self) -> None:
        if self.enabled:
            self.handle.close()
            if self.writer is not None:
                self.writer.close()


# --------------------------------------------------------------------------------------------
# The run


LIDAR_KINDS = ("nuscenes", "kitti", "kitti-raw", "semantickitti")


def open_teacher_cache(cfg: PretrainConfig, teacher_identity: str):
    """The run's :class:`ppkt.teachers.TeacherFeatureCache` (``cfg.teacher.cache``), or None.

    Raises:
        FileNotFoundError: the folder holds no cache manifest (not written by ``ppkt cache-teacher``).
        StaleCacheError: the cache was made with another teacher identity (name, stage, weights)
            or image size than the run's; the message names both.
        ValueError: lidar + camera data (the cache is keyed by RGB-D scene and frame).
    """
    if cfg.teacher.cache is None:
        return None
    from ppkt.teachers import TeacherFeatureCache

    root = Path(cfg.teacher.cache)
    if cfg.data.kind in LIDAR_KINDS:
        raise ValueError(f"teacher.cache={root}: the teacher cache holds RGB-D frames, not {cfg.data.kind}")
    if not (root / "manifest.json").is_file():
        options = [f"--teacher {cfg.teacher.name}"]
        options += [] if cfg.teacher.stage is None else [f"--stage {cfg.teacher.stage}"]
        options += [] if cfg.teacher.weights is None else [f"--weights {cfg.teacher.weights}"]
        options += [f"--image-size {cfg.data.image_hw[0]} {cfg.data.image_hw[1]}", f"--out {root}"]
        raise FileNotFoundError(
            f"{root}: not a teacher feature cache (no manifest.json); write one with "
            f"`ppkt cache-teacher DATA {' '.join(options)}`"
        )
    return TeacherFeatureCache(root, teacher_identity, tuple(cfg.data.image_hw))


def load_run_config(run_dir: Path) -> PretrainConfig:
    """The config saved in a run folder."""
    from ppkt.config import load_config

    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a pretraining run folder (no {CONFIG})")
    return load_config(PretrainConfig, path)


def pretrain(
    cfg: PretrainConfig,
    *,
    resume: bool = False,
    frames: Sequence | None = None,
    abort_after_step: int | None = None,
) -> PretrainResult:
    """Run (or resume) pretraining as ``cfg`` says.

    Args:
        cfg: the resolved config; ``cfg.run.out`` is the run folder.
        resume: continue from the run folder's ``latest`` checkpoint (error if there is none).
            Without it, a run folder that already holds checkpoints is an error (nothing is
            overwritten).
        frames: use these frames instead of reading ``cfg.data`` (tests, notebooks).
        abort_after_step: stop right after this step without writing a checkpoint, as a crash
            would (tests of resume).

    Raises:
        NonFiniteLossError: the loss became NaN/inf; the weights of the last good checkpoint are kept.
    """
    validate(cfg)
    run_dir = Path(cfg.run.out)
    device_name = cfg.run.device
    kind = (
        "cuda"
        if (device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available()))
        else "cpu"
    )
    info = init_distributed(kind)
    device = resolve_device(device_name, info)

    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        raise FileNotFoundError(f"{run_dir}: nothing to resume (no checkpoints/latest)")
    if not resume and (run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").glob("step_*")):
        raise FileExistsError(
            f"{run_dir}: already holds checkpoints; pass --resume {run_dir} or another --run.out"
        )
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / CONFIG)

    from ppkt.utils.seed import seed_everything

    seed_everything(cfg.run.seed)
    if cfg.run.cpu_threads is not None:
        torch.set_num_threads(cfg.run.cpu_threads)
    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False

    model = build_model(cfg).to(device)
    teacher_cache = open_teacher_cache(cfg, _teacher_identity(model))
    frames = build_frames(cfg, info) if frames is None else frames
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(cfg, trainable)
    steps_total = total_steps(cfg, len(frames), info.world_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps_total, cfg.optim.warmup_steps, cfg.optim.schedule)
    )
    step = 0
    if ckpt is not None:
        weights, state = load_checkpoint(ckpt)
        if state.world_size != info.world_size:
            raise ValueError(
                f"{ckpt}: saved by {state.world_size} processes, resumed with {info.world_size}; "
                "the data shards would differ"
            )
        model.load_trainable_state_dict(weights, what=str(ckpt / "model.safetensors"))
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        torch.set_rng_state(state.rng_cpu)
        if device.type == "cuda" and state.rng_cuda:
            torch.cuda.set_rng_state_all(state.rng_cuda)
        step = state.step

    net: torch.nn.Module = model
    if info.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    objective = Objective(cfg.loss, gather_distributed=cfg.loss.gather_distributed and info.world_size > 1)
    dataset = PretrainDataset(
        frames,
        cfg.data,
        cfg.augment,
        cfg.student.input_features,
        seed=cfg.run.seed,
        teacher_cache=teacher_cache,
        superpixels=superpixel_source(cfg),
        scenes=scene_index(cfg, frames),
    )
    sampler = StepBatchSampler(
        len(frames),
        cfg.optim.batch_size,
        seed=cfg.run.seed,
        total_steps=steps_total,
        start_step=step,
        rank=info.rank,
        world_size=info.world_size,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=cfg.data.num_workers,
        collate_fn=Collator(cfg.student.voxel_size),
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    log = MetricsLog(run_dir, info.is_main, cfg.run.tensorboard, step if ckpt is not None else None)
    result = PretrainResult(
        run_dir=run_dir, step=step, checkpoint=ckpt, model=model, index_skipped=index_skips(frames)
    )
    if result.index_skipped and info.is_main:
        print(f"ppkt pretrain: left out when indexing the data: {result.index_skipped}", file=sys.stderr)
    end_step = steps_total if cfg.run.stop_after is None else min(steps_total, step + cfg.run.stop_after)

    def checkpoint() -> None:
        if info.is_main:
            state = TrainingState(
                step=step,
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                rng_cpu=torch.get_rng_state(),
                rng_cuda=torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                data_position=step,
                world_size=info.world_size,
            )
            result.checkpoint = save_checkpoint(
                run_dir,
                model.trainable_state_dict(),
                state,
                metadata={"preset": cfg.origin, "teacher": _teacher_identity(model)},
                keep=cfg.run.keep_checkpoints,
            )
        if info.world_size > 1:
            dist.barrier()

    progress = None
    if info.is_main and cfg.run.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=end_step, initial=step, desc="pretrain", unit="step", dynamic_ncols=True)

    net.train()
    start = time.perf_counter()
    t_data = time.perf_counter()
    window: list[float] = []
    try:
        for batch in loader:
            if step >= end_step:
                break
            data_s = time.perf_counter() - t_data
            t_step = time.perf_counter()
            batch = batch.to(device)
            # The loss's pairs are chosen first, so only they are embedded (same loss as embedding all).
            pairs = objective.select(batch, pair_generator(cfg.run.seed, step, info.rank))
            emb = net(batch, pairs.index)
            loss = objective(emb, pairs, batch)
            if not _all_true(bool(torch.isfinite(loss).item()), device, info):
                last = latest_checkpoint(run_dir)
                raise NonFiniteLossError(
                    f"step {step + 1}: the loss is {loss.item()} (NaN/inf) on at least one process; stopped "
                    f"before updating the weights. Last good checkpoint: {last or 'none'}. Lower optim.lr, "
                    "check the data (check-data) or set optim.grad_clip."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            value = float(loss.item())
            result.losses[step] = value
            result.skipped_frames += len(batch.skipped)
            result.teacher_uncached_frames += batch.num_teacher_uncached
            step_s = time.perf_counter() - t_step
            window.append(step_s + data_s)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{value:.4f}", lr=f"{scheduler.get_last_lr()[0]:.3g}")
            if step % cfg.run.log_every == 0 or step == end_step:
                log.write(
                    {
                        "step": step,
                        "loss": value,
                        "lr": scheduler.get_last_lr()[0],
                        "steps_per_s": len(window) / max(sum(window), 1e-9),
                        "data_s": data_s,
                        "step_s": step_s,
                        "pairs": batch.num_pairs,
                        "voxels": int(batch.coords.shape[0]),
                        "frames": batch.batch_size,
                        "skipped_frames": result.skipped_frames,
                        **(
                            {"teacher_uncached_frames": result.teacher_uncached_frames}
                            if teacher_cache is not None
                            else {}
                        ),
                        "time": time.time(),
                    }
                )
                window.clear()
            if abort_after_step is not None and step >= abort_after_step:
                return result  # a simulated crash: no checkpoint
            if step % cfg.run.checkpoint_every == 0 or step == end_step:
                checkpoint()
            t_data = time.perf_counter()
    finally:
        if progress is not None:
            progress.close()
        log.close()
        if teacher_cache is not None and result.teacher_uncached_frames and info.is_main:
            print(
                f"ppkt pretrain: {result.teacher_uncached_frames} images were not in the teacher cache "
                f"{teacher_cache.root}; the teacher ran on them (rerun `ppkt cache-teacher` to add them)",
                file=sys.stderr,
            )
        result.step = step
        result.seconds = time.perf_counter() - start
    return result


def scene_index(cfg: PretrainConfig, frames: Sequence):
    """With ``data.pairs=scene``, the :class:`ppkt.train.scene_samples.SceneIndex` of ``frames``
    (a ScanNet-layout reader, or frames given with a ``scene_index`` attribute); else None."""
    if cfg.data.pairs != "scene":
        return None
    if cfg.data.kind in LIDAR_KINDS:
        raise ValueError(
            f"data.pairs=scene pairs RGB-D scene clouds with posed frames, not {cfg.data.kind} data"
        )
    from ppkt.train.scene_samples import SceneIndex

    given = getattr(frames, "scene_index", None)
    return given if given is not None else SceneIndex.from_reader(frames)


def index_skips(frames: Sequence) -> dict[str, int]:
    """Reason -> count of the frames a dataset reader skipped while indexing (its ``skipped``
    counter or ``report.skipped``); empty for plain sequences."""
    report = getattr(frames, "report", None)
    skipped = getattr(frames, "skipped", None) or getattr(report, "skipped", None) or {}
    return {str(reason): int(count) for reason, count in dict(skipped).items() if count}


def _teacher_identity(model: PPKTModel) -> str:
    try:
        return str(model.teacher.identity)
    except AttributeError:
        return type(model.teacher).__name__


def config_with_resume(run_dir: Path, overrides: dict[str, str]) -> PretrainConfig:
    """The saved config of ``run_dir`` with command-line overrides (e.g. ``run.stop_after``)."""
    from ppkt.config import apply_overrides

    cfg = load_run_config(run_dir)
    cfg = apply_overrides(cfg, overrides)
    return config_from_dict(PretrainConfig, config_to_dict(cfg))

"""The pretraining run: data, model, optimiser, the step loop, logging, checkpoints, resume.

``pretrain(cfg)`` runs on one process or under ``torchrun`` (DDP: gloo on CPU, nccl on GPU;
every rank reads its own shard of the data, rank 0 writes logs and checkpoints).

Reproducibility: the data order, each frame's augmentation and each step's pair sampling are
functions of ``(seed, step)``, and checkpoints carry the optimiser, scheduler and RNG states, so
in deterministic mode a resumed run repeats the loss sequence of an uninterrupted one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist

from ppkt.config import apply_overrides, config_from_dict, config_to_dict, load_config, save_config
from ppkt.data.registry import FrameRequest, get_spec, open_frames
from ppkt.engine import (
    DistInfo,
    MetricsLog,
    NonFiniteError,
    Precision,
    RunFolder,
    RunInterrupted,
    Runtime,
    TrainingState,
    gradient_sync,
    latest_checkpoint,
    load_checkpoint,
    lr_factor,
    save_checkpoint,
    setup_runtime,
    training_state_problem,
)
from ppkt.engine.rundir import check_kept_on_resume, resume_overrides
from ppkt.engine.sync_batchnorm import convert_sync_batchnorm
from ppkt.teachers import TeacherFeatureCache
from ppkt.train.batch import Collator
from ppkt.train.config import PretrainConfig, validate
from ppkt.train.dataset import PretrainDataset
from ppkt.train.model import PPKTModel, build_model
from ppkt.train.objectives import Objective, superpixel_source
from ppkt.train.sampler import StepBatchSampler
from ppkt.train.scene_samples import SceneIndex

METRICS = "metrics.jsonl"
CONFIG = "config.yaml"


# The engine's one NaN/inf stop, under the name pretraining used before the engine existed.
NonFiniteLossError = NonFiniteError


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
# Data


def build_frames(cfg: PretrainConfig, info: DistInfo | None = None) -> Sequence:
    """The frames of ``cfg.data`` from the registry of formats (``ppkt.data.registry``): a Sequence
    of RGBDFrame or of LidarCameraSample.

    Under torchrun rank 0 opens the data first (synthetic rooms are generated then) while the
    other ranks wait. The lidar readers carry ``beam_spacing_deg``, which :class:`PretrainDataset`
    uses for the occlusion test of the pairs.
    """
    data, info = cfg.data, info or DistInfo()
    request = FrameRequest(
        data.root,
        split=data.split,
        frame_skip=data.frame_skip,
        up_axis=data.up_axis,
        color_from_depth=data.color_from_depth,
        # Rendered at the teacher's image size unless data.synthetic.image_hw says otherwise.
        synthetic=replace(data.synthetic, image_hw=data.synthetic.render_hw(tuple(data.image_hw))),
        progress=info.is_main and cfg.run.progress,
    )
    if info.world_size > 1 and not info.is_main:
        dist.barrier()  # rank 0 opens (and generates) first
        return open_frames(data.kind, request)
    frames = open_frames(data.kind, request)
    if info.world_size > 1:
        dist.barrier()
    return frames


# --------------------------------------------------------------------------------------------
# Optimisation


def build_optimizer(cfg: PretrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, dampening=o.dampening, weight_decay=o.weight_decay
        )
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def total_steps(cfg: PretrainConfig, num_frames: int, world_size: int) -> int:
    if cfg.optim.epochs is None:
        return cfg.optim.steps
    per_epoch = (num_frames // world_size) // cfg.optim.batch_size
    return max(1, cfg.optim.epochs * per_epoch)


def pair_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The generator of one step's pair sampling (a function of seed, step and rank only)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1009 + rank)


# --------------------------------------------------------------------------------------------
# The run


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
    root = Path(cfg.teacher.cache)
    if get_spec(cfg.data.kind).modality != "rgbd":
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
            overwritten). ``config.yaml`` is rewritten only once the checkpoint is accepted.
        frames: use these frames instead of reading ``cfg.data`` (tests, notebooks).
        abort_after_step: stop right after this step without writing a checkpoint, as a crash
            would (tests of resume).

    Raises:
        NonFiniteError: the loss, or a weight, statistic or optimiser state about to be saved,
            became NaN/inf; the last good checkpoint is kept and named.
        RunLockedError: another process is writing into the run folder.
        RunInterrupted: Ctrl-C; the message says how to resume.
    """
    validate(cfg)
    run_dir = Path(cfg.run.out)
    rt = setup_runtime(
        cfg.run.device, seed=cfg.run.seed, cpu_threads=cfg.run.cpu_threads, deterministic=cfg.run.deterministic
    )
    with RunFolder(run_dir, enabled=rt.is_main) as folder:
        return _pretrain(cfg, rt, folder, resume=resume, frames=frames, abort_after_step=abort_after_step)


def _pretrain(
    cfg: PretrainConfig,
    rt: Runtime,
    folder: RunFolder,
    *,
    resume: bool,
    frames: Sequence | None,
    abort_after_step: int | None,
) -> PretrainResult:
    run_dir, device, info = folder.path, rt.device, rt.dist
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        raise FileNotFoundError(f"{run_dir}: nothing to resume (no checkpoints/latest)")
    if not resume and (run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").glob("step_*")):
        raise FileExistsError(
            f"{run_dir}: already holds checkpoints; pass --resume {run_dir} or another --run.out"
        )
    if info.is_main and ckpt is None:
        save_config(cfg, run_dir / CONFIG)

    model = build_model(cfg).to(device)
    if cfg.model.sync_batchnorm and rt.distributed:
        convert_sync_batchnorm(model.backbone)
    teacher_cache = open_teacher_cache(cfg, _teacher_identity(model))
    frames = build_frames(cfg, info) if frames is None else frames
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(cfg, trainable)
    steps_total = total_steps(cfg, len(frames), info.world_size)
    o = cfg.optim
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(s, steps_total, warmup=o.warmup_steps, schedule=o.schedule, power=o.poly_power),
    )
    precision = Precision(cfg.run.precision, device)
    step = 0
    if ckpt is not None:
        weights, state = load_checkpoint(ckpt)
        if state.world_size != info.world_size:
            raise ValueError(
                f"{ckpt}: saved by {state.world_size} processes, resumed with {info.world_size}; "
                "the data shards would differ"
            )
        if state.step > steps_total:
            raise ValueError(
                f"{ckpt}: the run is at step {state.step}, beyond optim.steps {steps_total}; "
                "raise optim.steps to continue it"
            )
        model.load_trainable_state_dict(weights, what=str(ckpt / "model.safetensors"))
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        precision.load_state_dict(state.scaler)
        torch.set_rng_state(state.rng_cpu)
        if device.type == "cuda" and state.rng_cuda:
            torch.cuda.set_rng_state_all(state.rng_cuda)
        step = state.step
        if info.is_main:  # the resume is accepted: record the config it continues with
            save_config(cfg, run_dir / CONFIG)

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
        cfg.model.input_features,
        seed=cfg.run.seed,
        teacher_cache=teacher_cache,
        superpixels=superpixel_source(cfg),
        scenes=scene_index(cfg, frames),
    )
    accumulate = o.accumulate
    sampler = StepBatchSampler(  # one batch per micro-batch: the data order is a function of the micro step
        len(frames),
        o.batch_size,
        seed=cfg.run.seed,
        total_steps=steps_total * accumulate,
        start_step=step * accumulate,
        rank=info.rank,
        world_size=info.world_size,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=cfg.data.num_workers,
        collate_fn=Collator(cfg.model.voxel_size),
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    log = MetricsLog(
        run_dir / METRICS,
        enabled=info.is_main,
        resume_step=step if ckpt is not None else None,
        tensorboard=run_dir / "tensorboard" if cfg.run.tensorboard else None,
        tensorboard_prefix="pretrain/",
    )
    result = PretrainResult(
        run_dir=run_dir, step=step, checkpoint=ckpt, model=model, index_skipped=index_skips(frames)
    )
    if result.index_skipped and info.is_main:
        print(f"ppkt pretrain: left out when indexing the data: {result.index_skipped}", file=sys.stderr)
    end_step = steps_total if cfg.run.stop_after is None else min(steps_total, step + cfg.run.stop_after)

    def checkpoint() -> None:
        problem = training_state_problem(model, optimizer)
        if not rt.all_true(problem is None):
            raise NonFiniteError(
                f"step {step}: {problem or 'a tensor on another process'} is NaN/inf; not saved. "
                f"Last good checkpoint: {latest_checkpoint(run_dir) or 'none'}. Lower optim.lr, "
                "check the data (check-data) or set optim.grad_clip."
            )
        if info.is_main:
            state = TrainingState(
                step=step,
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                rng_cpu=torch.get_rng_state(),
                rng_cuda=torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                data_position=step,
                world_size=info.world_size,
                scaler=precision.state_dict(),
            )
            result.checkpoint = save_checkpoint(
                run_dir,
                model.trainable_state_dict(),
                state,
                metadata={"preset": cfg.origin, "teacher": _teacher_identity(model)},
                keep=cfg.run.keep_checkpoints,
            )
        rt.barrier()

    progress = None
    if info.is_main and cfg.run.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=end_step, initial=step, desc="pretrain", unit="step", dynamic_ncols=True)

    net.train()
    start = time.perf_counter()
    t_data = time.perf_counter()
    window: list[float] = []
    batches = iter(loader)
    try:
        while step < end_step:
            data_s = step_s = value = 0.0
            pair_count = voxels = frames_in_step = 0
            for micro in range(accumulate):
                batch = next(batches)
                data_s += time.perf_counter() - t_data
                t_step = time.perf_counter()
                batch = batch.to(device)
                # DDP all-reduces the gradients of the last micro-batch only (forward and backward
                # of the others run under no_sync).
                with gradient_sync(net, micro == accumulate - 1):
                    with precision.autocast():
                        # The loss's pairs are chosen first, so only they are embedded (same loss
                        # as embedding all).
                        generator = pair_generator(cfg.run.seed, step * accumulate + micro, info.rank)
                        pairs = objective.select(batch, generator)
                        emb = net(batch, pairs.index)
                    # The loss in fp32, outside autocast: in bf16 the similarity logits (divided by
                    # a temperature of 0.04-0.07) keep about 2 decimal digits, and a 20-step bf16
                    # run on CUDA logged 6.9375, ln(1024) rounded to bf16, at every step.
                    emb = replace(emb, points=emb.points.float(), pixels=emb.pixels.float())
                    loss = objective(emb, pairs, batch)
                    if not rt.all_true(bool(torch.isfinite(loss).item())):
                        last = latest_checkpoint(run_dir)
                        raise NonFiniteError(
                            f"step {step + 1}: the loss is {loss.item()} (NaN/inf) on at least one process; "
                            f"stopped before updating the weights. Last good checkpoint: {last or 'none'}. "
                            "Lower optim.lr, check the data (check-data) or set optim.grad_clip."
                        )
                    if micro == 0:
                        optimizer.zero_grad(set_to_none=True)
                    precision.backward(loss, accumulate)
                value += float(loss.item()) / accumulate
                pair_count, voxels, frames_in_step = (
                    pair_count + batch.num_pairs,
                    voxels + batch.sparse.tensor.num_sites,
                    frames_in_step + batch.batch_size,
                )
                result.skipped_frames += len(batch.skipped)
                result.teacher_uncached_frames += batch.num_teacher_uncached
                step_s += time.perf_counter() - t_step
                t_data = time.perf_counter()
            t_step = time.perf_counter()
            precision.step(optimizer, trainable, o.grad_clip)
            scheduler.step()
            step += 1
            folder.mark_started()
            result.losses[step] = value
            step_s += time.perf_counter() - t_step
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
                        "pairs": pair_count,
                        "voxels": voxels,
                        "frames": frames_in_step,
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
    except KeyboardInterrupt as err:
        if isinstance(err, RunInterrupted):
            raise
        last = latest_checkpoint(run_dir)
        raise RunInterrupted(step, f"ppkt pretrain --resume {run_dir}" if last else None) from None
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
    if get_spec(cfg.data.kind).modality != "rgbd":
        raise ValueError(
            f"data.pairs=scene pairs RGB-D scene clouds with posed frames, not {cfg.data.kind} data"
        )
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
    """The saved config of ``run_dir`` with command-line overrides (e.g. ``run.stop_after``).

    ``run.out`` becomes ``run_dir``, wherever the run was first written, so a moved or copied run
    folder resumes in place.
    """
    saved = load_run_config(run_dir)
    cfg = apply_overrides(saved, resume_overrides(run_dir, overrides))
    check_kept_on_resume(run_dir, saved, cfg)
    return config_from_dict(PretrainConfig, config_to_dict(cfg))

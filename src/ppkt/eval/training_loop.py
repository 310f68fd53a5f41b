"""The one fine-tuning run body, shared by every downstream task.

:func:`run_task` runs a fine-tuning run: run start and resume, the datasets' endless training
batches, the step (schedule, gradient accumulation, skipped micro-batches, precision, the NaN/inf
stop, DDP), evaluation cadence and the best result, checkpoints, model files and the summary. A
:class:`FinetuneTask` brings what differs: its scenes and label split, datasets, model, optimiser,
the loss of a micro-batch, evaluation and its score, the best result to and from a checkpoint's
loop state, and the summary. The tasks are semantic segmentation
(``ppkt.eval.finetune.SegmentationTask``) and detection (``ppkt.eval.detection.loop.DetectionTask``);
the run folder's files are listed in :mod:`ppkt.eval.finetune`.

Resume (``ppkt finetune --resume RUN``) continues from ``checkpoints/latest``: weights, optimiser,
gradient scaler, RNG, the training data order (the shuffling generator's state at the start of
the epoch and the batches already taken) and the best result so far; in deterministic mode it
repeats the uninterrupted run exactly. Under torchrun every process takes its own ``batch_size``
scenes of each step's shuffled ``batch_size x world_size``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ppkt.config import apply_overrides, load_config, save_config
from ppkt.engine import (
    MetricsLog,
    NonFiniteError,
    Precision,
    RunFolder,
    RunInterrupted,
    Runtime,
    TrainingState,
    gradient_sync,
    latest_checkpoint,
    lr_factor,
    setup_runtime,
    training_state_problem,
)
from ppkt.engine import (
    load_checkpoint as load_training_checkpoint,
)
from ppkt.engine import (
    save_checkpoint as save_training_checkpoint,
)
from ppkt.engine.rundir import check_kept_on_resume, resume_overrides
from ppkt.engine.sync_batchnorm import convert_sync_batchnorm
from ppkt.eval.config import FinetuneConfig
from ppkt.eval.data import (
    SceneDataset,
)
from ppkt.eval.model import (
    CONFIG_METADATA_KEY,
    load_pretrained_backbone,
    save_model_file,
)
from ppkt.eval.splits import LabelSplit
from ppkt.utils.io import atomic_write_json, atomic_write_text
from ppkt.utils.weights import load_state_strict

LOG = "log.jsonl"
CONFIG = "config.yaml"


class _RankBatches(torch.utils.data.Sampler):
    """This process's share of each shuffled global batch, skipping batches already trained on.

    ``batches`` yields global batches of ``batch_size x world_size`` indices (a ``BatchSampler``
    over the shuffling ``RandomSampler``); rank ``r`` takes the ``r``-th ``batch_size`` slice.
    The first ``skip`` batches of the next pass are drawn (so the generator advances exactly as
    in the uninterrupted run) but not loaded.
    """

    def __init__(self, batches: torch.utils.data.BatchSampler, batch_size: int, rank: int) -> None:
        self.batches, self.batch_size, self.rank = batches, batch_size, rank
        self.skip = 0

    def __len__(self) -> int:
        return len(self.batches) - self.skip

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        for i, batch in enumerate(self.batches):
            if i >= skip:
                yield batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]


@dataclass
class DataPosition:
    """Where the endless training batches are: the epoch, the shuffling generator's state at its
    start, and the batches of it already taken."""

    epoch: int = 0
    epoch_rng: torch.Tensor | None = None
    taken: int = 0

    def to_loop(self) -> dict:
        """The entries of ``TrainingState.loop`` that hold this position."""
        return {"epoch": self.epoch, "epoch_rng": self.epoch_rng, "taken": self.taken}

    @classmethod
    def from_loop(cls, loop: dict) -> DataPosition:
        return cls(loop["epoch"], loop["epoch_rng"], loop["taken"])


def train_batches(dataset, cfg, rt: Runtime, position: DataPosition) -> Iterator:
    """Training batches epoch after epoch, continuing at ``position`` (updated as they are taken).

    One process gets exactly the order of ``DataLoader(shuffle=True, generator=seeded)``.
    ``dataset`` has ``set_epoch`` and ``collate`` (segmentation's or detection's); ``cfg`` is a
    fine-tuning config of either task (``train_seed``, ``optim.batch_size``, ``data.num_workers``).
    """
    world = rt.dist.world_size
    generator = torch.Generator().manual_seed(cfg.train_seed)
    batch_size = cfg.optim.batch_size
    global_batches = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(dataset, generator=generator),
        batch_size * world,
        drop_last=world > 1,  # every process must get a batch at every step
    )
    if world > 1 and len(global_batches) < 1:
        raise ValueError(
            f"{len(dataset)} training scenes are fewer than optim.batch_size {batch_size} x {world} processes"
        )
    sampler = _RankBatches(global_batches, batch_size, rt.dist.rank)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        generator=generator,
        collate_fn=dataset.collate,
        num_workers=cfg.data.num_workers,
    )
    if position.epoch_rng is not None:
        generator.set_state(position.epoch_rng)
        sampler.skip = position.taken
    while True:
        dataset.set_epoch(position.epoch)
        position.epoch_rng = generator.get_state()
        for batch in loader:
            position.taken += 1
            yield batch
        position.epoch += 1
        position.taken = 0
        sampler.skip = 0


# ------------------------------------------------------------------------- run start, resume, checkpoints
# Used by run_task below, for every task.
@dataclass
class ResumePoint:
    """The checkpoint a run continues from: its folder, weights and training state."""

    path: Path
    weights: dict[str, torch.Tensor]
    state: TrainingState


def begin_run(run_dir: Path, cfg, rt: Runtime, resume: bool, overwrite: bool = False) -> ResumePoint | None:
    """The checkpoint to resume from (``resume``), checked against ``cfg`` and the process count;
    or, for a fresh run, the folder cleared of an earlier run's results and ``cfg`` saved.

    A fresh run into a folder that holds an earlier run's step checkpoints is refused (a forgotten
    ``--resume`` would otherwise delete a long run) unless ``overwrite`` says that is meant.
    """
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        raise FileNotFoundError(f"{run_dir}: nothing to resume (no checkpoints/latest)")
    if not resume and not overwrite and any((run_dir / "checkpoints").glob("step_*")):
        raise FileExistsError(
            f"{run_dir}: already holds a run's step checkpoints; pass --resume {run_dir} to continue "
            "it, or another --run.out (or remove the folder) to start over"
        )
    if ckpt is not None:
        weights, state = load_training_checkpoint(ckpt)
        if state.world_size != rt.dist.world_size:
            raise ValueError(
                f"{ckpt}: saved by {state.world_size} processes, resumed with {rt.dist.world_size}; "
                "the data order would differ"
            )
        if state.step >= cfg.optim.steps:
            raise ValueError(
                f"{ckpt}: the run is at step {state.step} and optim.steps is {cfg.optim.steps}: nothing to "
                "resume; raise optim.steps to train further"
            )
        return ResumePoint(ckpt, weights, state)
    if rt.is_main:
        # Results of an earlier run in this folder would otherwise sit next to this run's config
        # until it finishes, and an interrupted run would look finished with someone else's numbers.
        (run_dir / "metrics.json").unlink(missing_ok=True)
        (run_dir / "metrics.md").unlink(missing_ok=True)
        _remove_step_checkpoints(run_dir)
        save_config(cfg, run_dir / CONFIG)
    return None


def restore_training(
    point: ResumePoint, model: torch.nn.Module, optimizer, precision: Precision, rt: Runtime, cfg
) -> tuple[int, dict]:
    """Weights, optimiser, scaler and RNG of ``point`` into the run; its step and loop entries.
    The resume is then accepted: the config it continues with is saved."""
    state = point.state
    load_state_strict(model, point.weights, what=str(point.path))
    optimizer.load_state_dict(state.optimizer)
    precision.load_state_dict(state.scaler)
    torch.set_rng_state(state.rng_cpu)
    if rt.device.type == "cuda" and state.rng_cuda:
        torch.cuda.set_rng_state_all(state.rng_cuda)
    if rt.is_main:
        save_config(cfg, Path(cfg.run.out) / CONFIG)
    return state.step, state.loop


def check_training_state(
    model: torch.nn.Module, optimizer, rt: Runtime, run_dir: Path, step: int, what: str
) -> None:
    """Raise NonFiniteError (naming the last good checkpoint) if a weight, statistic or optimiser
    state of any process is NaN/inf, before ``what`` is written."""
    problem = training_state_problem(model, optimizer)
    if not rt.all_true(problem is None):
        raise NonFiniteError(
            f"{run_dir}: step {step}: {problem or 'a tensor on another process'} is NaN/inf; {what} "
            f"not written. Last good checkpoint: {latest_checkpoint(run_dir) or 'none'}. "
            "Lower the learning rates or set optim.grad_clip."
        )


def save_training(
    run_dir: Path, model: torch.nn.Module, optimizer, precision: Precision, rt: Runtime, step: int,
    loop: dict, keep: int,
) -> None:  # fmt: skip
    """A resumable checkpoint of every process's run at ``step`` (after the finite checks)."""
    check_training_state(model, optimizer, rt, run_dir, step, "checkpoint")
    if rt.is_main:
        state = TrainingState(
            step=step,
            optimizer=optimizer.state_dict(),
            scheduler={},
            rng_cpu=torch.get_rng_state(),
            rng_cuda=torch.cuda.get_rng_state_all() if rt.device.type == "cuda" else [],
            data_position=step,
            world_size=rt.dist.world_size,
            scaler=precision.state_dict(),
            loop=loop,
        )
        save_training_checkpoint(run_dir, model.state_dict(), state, keep=keep)
    rt.barrier()


def interrupted(run_dir: Path, step: int, command: str) -> RunInterrupted:
    """The RunInterrupted of Ctrl-C at ``step``, with ``command`` to resume if a checkpoint exists."""
    return RunInterrupted(step, f"{command} {run_dir}" if latest_checkpoint(run_dir) else None)


# ------------------------------------------------------------------------------------- the one run body
# Both fine-tuning tasks run through run_task below; a FinetuneTask brings what differs.
@dataclass
class StepLoss:
    """The training loss of one micro-batch: ``total`` (scalar tensor, what is backpropagated) and
    the numbers of it that the log records (``"loss"`` is the total; detection adds its parts)."""

    total: torch.Tensor

    def to_log(self) -> dict[str, float]:
        return {"loss": float(self.total.detach())}


@dataclass
class Evaluation:
    """One validation of a run, as its task measured it.

    Attributes:
        metrics: the task's metrics (``SegmentationMetrics``, ``DetectionMetrics``).
        score: what the best checkpoint maximises (mIoU, mAP@0.25); NaN never beats a number.
        record: the log's numbers of it (the ``val`` event's entries besides ``event`` and ``step``).
        saved: what ``TrainingState.loop`` keeps of it while it is the best, so that a resumed run
            compares against it and reports it (:meth:`FinetuneTask.restore_best` reads it back).
    """

    metrics: Any
    score: float
    record: dict[str, float]
    saved: dict[str, Any]


class FinetuneTask:
    """What one fine-tuning task brings to the shared run body (:func:`run_task`); everything else
    (runtime, run folder, resume, data order, schedule, steps with accumulation, precision, finite
    guards and DDP, evaluation cadence, checkpoints, best and last model files, metrics files) is
    the body's, the same for every task.

    One object per run, holding its config (``cfg``: ``FinetuneConfig`` or ``DetectionConfig``,
    which share the labels, model, optim and run sections).

    Attributes:
        label: the run's kind in the progress bar and metrics.md (``finetune``, ``detection``).
        log_prefix: TensorBoard tag prefix of the log.
        resume_command: the command that resumes an interrupted run (the run folder follows).
        config_key: the metadata key of the config in the model files (each loader refuses the
            other task's files).
        skip_reason: why a micro-batch that :meth:`usable` refuses is skipped (None: the task never
            skips one).
    """

    label: str
    log_prefix: str
    resume_command: str
    config_key: str = CONFIG_METADATA_KEY
    skip_reason: str | None = None

    def __init__(self, cfg) -> None:
        self.cfg = cfg

    def open_source(self):
        """The scenes of ``cfg.data`` (from the registry of formats)."""
        raise NotImplementedError

    def label_split(self, source) -> tuple[tuple[str, ...], LabelSplit]:
        """The class names of ``source`` and the run's limited-label split of its training scenes."""
        raise NotImplementedError

    def datasets(self, source, split: LabelSplit) -> tuple[SceneDataset, SceneDataset]:
        """Training (split's scenes, augmented) and validation datasets."""
        raise NotImplementedError

    def split_record(self) -> dict[str, Any]:
        """More entries of the log's ``split`` event (after :meth:`datasets`)."""
        return {}

    def build_model(self, class_names: tuple[str, ...]) -> torch.nn.Module:
        """The model, with ``backbone`` and ``head`` submodules (after :meth:`datasets`)."""
        raise NotImplementedError

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The optimiser; each group has ``name`` and ``initial_lr`` (the schedule scales it)."""
        raise NotImplementedError

    @property
    def head_warmup(self) -> int:
        """Steps the backbone stays frozen first (``set_backbone_frozen``); 0 = none."""
        return 0

    def usable(self, batch) -> bool:
        """Whether a micro-batch can be trained on (see ``skip_reason``)."""
        return True

    def loss(self, net: torch.nn.Module, model: torch.nn.Module, batch):
        """The loss of a micro-batch (a :class:`StepLoss` or an object with ``total`` and
        ``to_log()``); ``net`` is the model as trained (DDP-wrapped), ``model`` the bare one."""
        raise NotImplementedError

    def evaluate(self, model: torch.nn.Module, dataset, class_names, rt: Runtime) -> Evaluation:
        raise NotImplementedError

    def restore_best(self, loop: dict[str, Any], class_names) -> Evaluation | None:
        """The best result a checkpoint's loop state holds (:attr:`Evaluation.saved`), if any."""
        raise NotImplementedError

    def postfix(self, evaluation: Evaluation) -> dict[str, str]:
        """What the progress bar shows of a validation."""
        return {}

    def file_metadata(self, evaluation: Evaluation, best: bool) -> dict[str, Any]:
        """Metadata of the best (``best``) or last model file besides config, classes and step."""
        return {}

    def summary(self, split: LabelSplit, best, last, best_step: int) -> dict[str, Any]:
        """metrics.json of the finished run (``best`` and ``last``: the task's metrics)."""
        raise NotImplementedError


@dataclass
class RunOutcome:
    """What :func:`run_task` produced (each task's result type is made from it).

    Attributes:
        run_dir: the run folder.
        best, last: the task's validation metrics of the best checkpoint and of the last step.
        best_step: step of the best checkpoint.
        skipped_batches: micro-batches the task could not train on (see ``skip_reason``).
        losses: training loss of every step run in this session that trained, by step (1-based).
        model: the trained model.
    """

    run_dir: Path
    best: Any
    last: Any
    best_step: int
    skipped_batches: int
    losses: dict[int, float]
    model: torch.nn.Module


def run_finetuning(task: FinetuneTask, source, resume: bool, overwrite: bool) -> RunOutcome:
    """Run ``task`` as its (validated) config says: runtime, the run folder's lock, then :func:`run_task`."""
    cfg = task.cfg
    rt = setup_runtime(
        cfg.run.device,
        seed=cfg.train_seed,
        cpu_threads=cfg.run.cpu_threads,
        deterministic=cfg.run.deterministic,
    )
    with RunFolder(cfg.run.out, enabled=rt.is_main) as folder:
        return run_task(task, rt, folder, source, resume, overwrite)


def run_task(
    task: FinetuneTask, rt: Runtime, folder: RunFolder, source, resume: bool, overwrite: bool
) -> RunOutcome:
    """The fine-tuning run body of every task (see the module docstring for its files)."""
    from tqdm import tqdm

    cfg = task.cfg
    run_dir, device, main = folder.path, rt.device, rt.is_main
    ckpt = begin_run(run_dir, cfg, rt, resume, overwrite)

    with rt.main_first():  # synthetic data and split files are written once
        source = source if source is not None else task.open_source()
        class_names, split = task.label_split(source)
    train_set, val_set = task.datasets(source, split)

    model = task.build_model(class_names)
    if cfg.model.init is not None and ckpt is None:  # a resumed run has its weights in the checkpoint
        load_pretrained_backbone(model, cfg.model.init, cfg)
    model.to(device).train()
    if cfg.model.sync_batchnorm and rt.distributed:
        convert_sync_batchnorm(model.backbone)
    o = cfg.optim
    warmup = task.head_warmup
    optimizer = task.optimizer(model)
    precision = Precision(cfg.run.precision, device)
    position = DataPosition()
    step = skipped = best_step = 0
    best: Evaluation | None = None
    if ckpt is not None:
        step, loop = restore_training(ckpt, model, optimizer, precision, rt, cfg)
        position = DataPosition.from_loop(loop)
        # Detection checkpoints written before the one run body have no skip count (it never skipped).
        skipped, best_step = loop.get("skipped", 0), loop["best_step"]
        best = task.restore_best(loop, class_names)

    net: torch.nn.Module = model
    if rt.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=warmup > 0,  # the backbone gets no gradient during the head warm-up
        )
    if warmup > 0 and step < warmup:
        model.set_backbone_frozen(True)
    log = MetricsLog(
        run_dir / LOG,
        enabled=main,
        resume_step=step if ckpt is not None else None,
        tensorboard=run_dir / "tensorboard" if cfg.run.tensorboard else None,
        tensorboard_prefix=task.log_prefix,
    )
    if ckpt is None:
        sizes = {"train_scenes": len(split.scenes), "val_scenes": len(val_set)}
        log.write({"event": "split", "name": split.name, **sizes, **task.split_record()})
    batches = train_batches(train_set, cfg, rt, position)

    ckpt_dir = run_dir / "checkpoints"
    last: Evaluation | None = None
    losses: dict[int, float] = {}
    started = time.perf_counter()

    def guard(what: str) -> None:
        check_training_state(model, optimizer, rt, run_dir, step, what)

    def save_model(name: str, evaluation: Evaluation, at_step: int, is_best: bool) -> None:
        save_model_file(
            model, ckpt_dir / name, cfg, class_names, config_key=task.config_key, step=at_step,
            **task.file_metadata(evaluation, is_best),
        )  # fmt: skip

    def checkpoint() -> None:
        loop = {**position.to_loop(), "skipped": skipped, "best_step": best_step}
        if best is not None:
            clash = sorted(set(loop) & set(best.saved))
            if clash:  # a task's key would overwrite the data position or the best step
                raise ValueError(f"{task.label}: Evaluation.saved uses the run body's loop keys {clash}")
            loop.update(best.saved)
        save_training(run_dir, model, optimizer, precision, rt, step, loop, cfg.run.keep_checkpoints)

    bar = tqdm(
        range(step + 1, o.steps + 1),
        desc=f"{task.label} {split.name}",
        disable=not (cfg.run.progress and main),
    )
    try:
        shown_loss = "?"  # the postfix is a formatted string; reusing it printed loss=loss=...
        for step in bar:
            if warmup > 0 and step == warmup + 1:
                model.set_backbone_frozen(False)
                log.write({"event": "backbone_released", "step": step})
            factor = lr_factor(
                step - 1, o.steps, warmup=o.warmup_steps, schedule=o.schedule, power=o.poly_power
            )
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            step_losses: list[dict[str, float]] = []
            # The step's micro-batches are drawn first, so that the last one the task can use is
            # known before any backward: DDP all-reduces the gradients there only (no_sync before).
            micro_batches = [next(batches) for _ in range(o.accumulate)]
            usable = [task.skip_reason is None or rt.all_true(task.usable(b)) for b in micro_batches]
            last_used = max((i for i, ok in enumerate(usable) if ok), default=-1)
            for micro, batch in enumerate(micro_batches):
                if not usable[micro]:
                    skipped += 1
                    log.write(
                        {"event": "skip", "step": step, "reason": task.skip_reason, "scenes": batch.scene_ids}
                    )
                    continue
                batch = batch.to(device)
                with gradient_sync(net, micro == last_used):
                    with precision.autocast():
                        loss = task.loss(net, model, batch)
                    if not rt.all_true(bool(torch.isfinite(loss.total))):
                        raise NonFiniteError(
                            f"{run_dir}: non-finite training loss {float(loss.total.detach())} "
                            f"at step {step} (scenes {batch.scene_ids}); "
                            f"last good checkpoint: {latest_checkpoint(run_dir) or 'none'}"
                        )
                    if not step_losses:
                        optimizer.zero_grad(set_to_none=True)
                    precision.backward(loss.total, o.accumulate)
                step_losses.append(loss.to_log())
            if step_losses:
                if len(step_losses) < o.accumulate:
                    # Micro-batches the task could not use were skipped; each used one was divided
                    # by optim.accumulate, so the step's gradient is brought back to their mean.
                    scale = o.accumulate / len(step_losses)
                    for param in model.parameters():
                        if param.grad is not None:
                            param.grad.mul_(scale)
                precision.step(optimizer, model.parameters(), o.grad_clip)
                # The step's loss (and its parts): means over its micro-batches.
                means = {k: sum(p[k] for p in step_losses) / len(step_losses) for k in step_losses[0]}
                losses[step] = means["loss"]
                if step % cfg.run.log_every == 0 or step == 1:
                    record = {
                        "event": "train",
                        "step": step,
                        **means,
                        "seconds": time.perf_counter() - started,
                    }
                    record.update({f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups})
                    log.write(record)
                    shown_loss = f"{means['loss']:.3f}"
                    bar.set_postfix(loss=shown_loss)
            folder.mark_started()
            if step % cfg.run.eval_every == 0 or step == o.steps:
                last = task.evaluate(model, val_set, class_names, rt)
                log.write({"event": "val", "step": step, **last.record})
                if best is None or (
                    not math.isnan(last.score) and (math.isnan(best.score) or last.score > best.score)
                ):
                    best, best_step = last, step
                    guard("best.safetensors")
                    if main:
                        save_model("best.safetensors", last, step, True)
                bar.set_postfix(loss=shown_loss, **task.postfix(last))
            if step % cfg.run.checkpoint_every == 0 or step == o.steps:
                checkpoint()
    except KeyboardInterrupt as err:
        if isinstance(err, RunInterrupted):
            raise
        raise interrupted(run_dir, step, task.resume_command) from None
    finally:
        bar.close()
        log.close()
    guard("last.safetensors")
    assert best is not None and last is not None  # the last step always evaluates
    if main:
        save_model("last.safetensors", last, o.steps, False)
        atomic_write_json(
            run_dir / "metrics.json", task.summary(split, best.metrics, last.metrics, best_step)
        )
        atomic_write_text(
            run_dir / "metrics.md",
            f"# {run_dir.name}: {task.label}, labels {split.name}, init {cfg.model.init or 'scratch'}\n\n"
            f"Best checkpoint (step {best_step}), split {cfg.data.val_split}:\n\n"
            + best.metrics.to_markdown(),
        )
    return RunOutcome(run_dir, best.metrics, last.metrics, best_step, skipped, losses, model)


def _remove_step_checkpoints(run_dir: Path) -> None:
    """A fresh run in a folder of an earlier one starts over: its resumable checkpoints go."""
    import shutil

    root = run_dir / "checkpoints"
    for old in (*root.glob("step_*"), *root.glob(".step_*.tmp")):
        shutil.rmtree(old, ignore_errors=True)
    (root / "latest").unlink(missing_ok=True)


def config_with_resume(run_dir: Path, overrides: dict[str, str], config_class: type = FinetuneConfig):
    """The saved config (a ``config_class``: segmentation's or detection's) of fine-tuning run
    ``run_dir`` with command-line overrides; ``run.out`` becomes ``run_dir`` wherever the run was
    first written (a moved folder resumes in place)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a fine-tuning run folder (no {CONFIG})")
    saved = load_config(config_class, path)
    cfg = apply_overrides(saved, resume_overrides(run_dir, overrides))
    check_kept_on_resume(run_dir, saved, cfg)
    return cfg


__all__ = [
    "Evaluation",
    "FinetuneTask",
    "RunOutcome",
    "StepLoss",
    "config_with_resume",
    "run_finetuning",
    "run_task",
    "train_batches",
]

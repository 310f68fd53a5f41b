"""Checkpoints of a run (pretraining and fine-tuning): crash-safe, strict, resumable.

Layout of a run folder::

    <run>/config.yaml                   the full resolved config
    <run>/metrics.jsonl                 one JSON object per logged step
    <run>/checkpoints/step_00001000/    one folder per checkpoint
        model.safetensors               weights of the learnt parts (backbone.*, head.*, upl.*)
        state.pt                        optimiser, scheduler, step, RNG states, data position
    <run>/checkpoints/latest            name of the newest complete checkpoint folder (relative,
                                        so a moved or copied run folder still resumes)

A checkpoint folder is written under a temporary name and renamed when complete; ``latest`` is
rewritten (atomically) only after that, so a run killed at any moment (even ``kill -9``) leaves
``latest`` pointing at a complete checkpoint and loses at most the steps since it. The loops
check the weights, buffers and optimiser state for NaN/inf before they call :func:`save_checkpoint`
(:mod:`ppkt.engine.guards`), so ``latest`` never names a damaged checkpoint.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ppkt.utils.io import _umask, atomic_write_text
from ppkt.utils.weights import load_weights, save_weights

CHECKPOINTS = "checkpoints"
LATEST = "latest"
WEIGHTS = "model.safetensors"
STATE = "state.pt"


@dataclass
class TrainingState:
    """Everything besides the weights that a resumed run needs.

    Attributes:
        step: optimisation steps completed.
        optimizer: ``optimizer.state_dict()``.
        scheduler: ``scheduler.state_dict()``.
        rng_cpu: ``torch.get_rng_state()``.
        rng_cuda: ``torch.cuda.get_rng_state_all()`` or an empty list.
        data_position: next step's position in the data order (``StepBatchSampler`` start step;
            the data order is a pure function of the step, saved for readers and checks).
        world_size: processes the run used (the data shards depend on it).
        scaler: ``GradScaler.state_dict()`` of an fp16 run (empty otherwise).
        loop: what else one loop needs to continue exactly (tensors, numbers, strings), e.g. the
            fine-tuning data order's generator state and its best validation result.
    """

    step: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng_cpu: torch.Tensor
    rng_cuda: list[torch.Tensor]
    data_position: int
    world_size: int
    scaler: dict[str, Any] = field(default_factory=dict)
    loop: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step_{step:08d}"


def save_checkpoint(
    run_dir: Path,
    weights: dict[str, torch.Tensor],
    state: TrainingState,
    *,
    metadata: dict[str, str] | None = None,
    keep: int = 2,
) -> Path:
    """Write a complete checkpoint folder, then point ``latest`` at it, then prune old ones."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir(run_dir, state.step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        # mkdtemp makes the folder private (0700); give it the permissions a plain mkdir would.
        os.chmod(tmp, 0o777 & ~_umask())
        save_weights(weights, tmp / WEIGHTS, metadata={"step": str(state.step), **(metadata or {})})
        state_path = tmp / STATE
        torch.save(state.to_dict(), state_path)
        with open(state_path, "rb+") as handle:
            os.fsync(handle.fileno())
        if final.exists():  # a resumed run re-reaching a step it had saved before a crash
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / LATEST, final.name + "\n")
    _prune(root, keep, protect=final.name)
    return final


def _prune(root: Path, keep: int, protect: str) -> None:
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in steps[:-keep]:
        if old.name != protect:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step_*.tmp"):  # left by a crash during a write
        shutil.rmtree(stale, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The folder ``latest`` points at, or None when the run has no checkpoint yet."""
    pointer = Path(run_dir) / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    folder = pointer.parent / name
    if not (folder / WEIGHTS).is_file() or not (folder / STATE).is_file():
        raise FileNotFoundError(f"{pointer}: points at {name}, which is not a complete checkpoint")
    return folder


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], TrainingState]:
    """Read a checkpoint folder (weights-only unpickling for the state)."""
    weights, _ = load_weights(Path(folder) / WEIGHTS)
    path = Path(folder) / STATE
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: cannot read the training state ({err})") from err
    try:
        state = TrainingState(**raw)
    except TypeError as err:
        raise ValueError(f"{path}: not a ppkt training state ({err})") from err
    return weights, state

"""Pretraining checkpoints: the run engine's (:mod:`ppkt.engine.checkpoint`), under their old name."""

from ppkt.engine.checkpoint import (
    CHECKPOINTS,
    LATEST,
    STATE,
    WEIGHTS,
    TrainingState,
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

__all__ = [
    "CHECKPOINTS",
    "LATEST",
    "STATE",
    "WEIGHTS",
    "TrainingState",
    "checkpoint_dir",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

"""The tiny pretraining config shared by the training and figure tests (imported by name: not a conftest)."""

from __future__ import annotations

from ppkt.config import apply_overrides
from ppkt.train.config import PretrainConfig
from ppkt.train.presets import get_preset

TINY_PRETRAIN = {
    "data.image_hw": "24,32",
    "data.synthetic.image_hw": "24,32",
    "data.num_workers": "0",
    "teacher.stage": "stride8",
    "model.width": "0.25",
    "loss.num_pairs": "64",
    "optim.batch_size": "2",
    "optim.warmup_steps": "0",
    "run.progress": "false",
    "run.tensorboard": "false",
    "run.log_every": "1",
}


def tiny_config(out, **extra) -> PretrainConfig:
    """The ``demo`` preset shrunk to 24x32 frames and a quarter-width student, writing to ``out``."""
    return apply_overrides(get_preset("demo"), {**TINY_PRETRAIN, "run.out": str(out), **extra})

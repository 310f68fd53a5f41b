"""Small hand-made RGB-D frames for the pretraining tests (imported by name: not a conftest)."""

from __future__ import annotations

import numpy as np

from ppkt.config import apply_overrides
from ppkt.data.types import RGBDFrame
from ppkt.train.config import PretrainConfig
from ppkt.train.presets import get_preset

TINY_PRETRAIN = {
    "data.image_hw": "24,32",
    "data.num_workers": "0",
    "teacher.stage": "stride8",
    "student.width": "0.25",
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


def ramp_image(h: int, w: int) -> np.ndarray:
    """R grows with the column, G with the row: a linear function of ``uv`` that bilinear
    resampling reproduces exactly away from the borders."""
    u = np.arange(w, dtype=np.float64)[None, :].repeat(h, 0)
    v = np.arange(h, dtype=np.float64)[:, None].repeat(w, 1)
    rgb = np.stack([u / (w - 1) * 255, v / (h - 1) * 255, np.full_like(u, 128)], axis=2)
    return rgb.round().astype(np.uint8)


def make_frame(h: int = 24, w: int = 32, *, seed: int = 0, name: str = "000000", color=None) -> RGBDFrame:
    rng = np.random.default_rng(seed)
    K = np.array([[w * 0.8, 0, (w - 1) / 2], [0, w * 0.8, (h - 1) / 2], [0, 0, 1]], dtype=np.float64)
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    depth = (1.5 + 0.02 * jj + 0.01 * ii + 0.3 * rng.random()).astype(np.float32)
    image = ramp_image(h, w) if color is None else color
    return RGBDFrame(
        color=image,
        depth=depth,
        K_color=K,
        K_depth=K.copy(),
        world_from_camera=np.eye(4),
        scene_id="scene0000_00",
        frame_id=name,
    )

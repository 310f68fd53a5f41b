"""Small hand-made RGB-D frames for the pretraining tests (imported by name: not a conftest)."""

from __future__ import annotations

import numpy as np

from ppkt.data.types import RGBDFrame


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

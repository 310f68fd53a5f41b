"""A real RGB-D frame for tests and demos: Middlebury 2014 "Motorcycle", shipped with scikit-image.

``skimage.data.stereo_motorcycle()`` gives the left image and its ground-truth disparity, with
the calibration of the 4x down-sampled images in its docstring: focal length 994.978 px,
principal point (311.193, 254.877) px, ``doffs`` (principal-point x difference of the two
cameras) 31.086 px and baseline 193.001 mm. Depth is ``Z = baseline * f / (d + doffs)``;
unknown disparities (``inf``/``nan``) give depth 0. The motorcycle stands about 2.1-3 m from the
camera, the background wall about 5 m. scikit-image is a test dependency, not a core one.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ppkt.data.types import RGBDFrame

MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_PRINCIPAL_POINT = (311.193, 254.877)
MOTORCYCLE_DOFFS_PX = 31.086
MOTORCYCLE_BASELINE_M = 0.193001


@lru_cache(maxsize=4)
def _motorcycle(downscale: int) -> RGBDFrame:
    try:
        from skimage.data import stereo_motorcycle
    except ImportError as err:
        raise ImportError("middlebury_motorcycle_frame needs scikit-image (pip install ppkt[test])") from err
    left, _right, disparity = stereo_motorcycle()
    disparity = np.asarray(disparity, dtype=np.float64)
    valid = np.isfinite(disparity) & (disparity + MOTORCYCLE_DOFFS_PX > 0)
    depth = np.zeros(disparity.shape, dtype=np.float64)
    depth[valid] = MOTORCYCLE_BASELINE_M * MOTORCYCLE_FOCAL_PX / (disparity[valid] + MOTORCYCLE_DOFFS_PX)
    fx, (cx, cy) = MOTORCYCLE_FOCAL_PX, MOTORCYCLE_PRINCIPAL_POINT
    K = np.array([[fx, 0.0, cx], [0.0, fx, cy], [0.0, 0.0, 1.0]])
    color = np.asarray(left, dtype=np.uint8)
    if downscale > 1:
        s = downscale
        h, w = (depth.shape[0] // s) * s, (depth.shape[1] // s) * s
        blocks = (h // s, s, w // s, s)
        color = color[:h, :w].reshape(*blocks, 3).mean(axis=(1, 3)).round().astype(np.uint8)
        depth_blocks = depth[:h, :w].reshape(blocks)
        # Average only blocks that are wholly valid: mixing in zeros would invent depths.
        all_valid = (depth_blocks > 0).all(axis=(1, 3))
        depth = np.where(all_valid, depth_blocks.mean(axis=(1, 3)), 0.0)
        # Block averaging by s maps u' = (u + 0.5) / s - 0.5 (docs/conventions.md).
        K = K.copy()
        K[0, 0] /= s
        K[1, 1] /= s
        K[0, 2] = (K[0, 2] + 0.5) / s - 0.5
        K[1, 2] = (K[1, 2] + 0.5) / s - 0.5
    return RGBDFrame(
        color=color,
        depth=depth.astype(np.float32),
        K_color=K,
        K_depth=K.copy(),
        world_from_camera=np.eye(4),
        scene_id="middlebury2014-motorcycle",
        frame_id=f"left-x{downscale}",
    )


def middlebury_motorcycle_frame(downscale: int = 1) -> RGBDFrame:
    """The Middlebury "Motorcycle" left view as an RGB-D frame (500x741, or block-averaged by ``downscale``).

    Colour and depth share the image grid and K; ``world_from_camera`` is the identity. Returns a
    fresh copy each call (the decoded frame is cached).
    """
    if downscale < 1:
        raise ValueError(f"downscale must be >= 1, got {downscale}")
    frame = _motorcycle(int(downscale))
    return RGBDFrame(
        color=frame.color.copy(),
        depth=frame.depth.copy(),
        K_color=frame.K_color.copy(),
        K_depth=frame.K_depth.copy(),
        world_from_camera=frame.world_from_camera.copy(),
        scene_id=frame.scene_id,
        frame_id=frame.frame_id,
    )

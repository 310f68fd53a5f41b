"""Which points does a camera actually see? Occlusion against a depth map, and a z-buffer.

Convention: points in the OpenCV camera frame of the image, pixel centres at integer ``uv``
(docs/conventions.md); a point's pixel is ``ij = (floor(v + 0.5), floor(u + 0.5))``.

Two situations:

* **Dense depth available** (RGB-D, or a rendered depth map): :func:`visible_in_depth` compares
  each point's depth with the depth map at its pixel. OpenScene keeps a point when
  ``|z - d| <= 0.25 * d`` (25 % relative); CLIP2Scene uses ``|z - d| <= 5 cm``. Both are the rule
  ``|z - d| <= abs_tol + rel_tol * d`` here.
* **Only a sparse cloud** (lidar into a camera): :func:`zbuffer_visible` builds a per-pixel
  minimum depth from the points themselves and keeps the points within ``depth_tol`` of it,
  optionally taking the minimum over a ``(2r + 1)^2`` pixel neighbourhood because sparse points
  leave gaps through which the background would otherwise be "seen".

Memory is ``O(N + H * W)``: no ``(N, N)`` or ``(N, H * W)`` intermediate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ppkt.geometry.camera import _check_hw, _check_points, project_points, uv_to_ij

OPENSCENE_REL_TOL = 0.25
"""OpenScene's occlusion tolerance: visible when ``|z - d| <= 0.25 * d``."""
CLIP2SCENE_ABS_TOL = 0.05
"""CLIP2Scene's occlusion tolerance in metres: visible when ``|z - d| <= 0.05``."""


def visible_in_depth(
    points_cam: Tensor,
    K,
    depth_map: Tensor,
    *,
    rel_tol: float = 0.0,
    abs_tol: float = CLIP2SCENE_ABS_TOL,
) -> Tensor:
    """Occlusion test of arbitrary points against a depth map.

    A point is visible when it projects into the depth map (in front of the camera, inside the image), the
    depth ``d`` at its pixel (nearest pixel, no interpolation across depth edges) is valid
    (finite, ``> 0``), and ``|z - d| <= abs_tol + rel_tol * d``. The test is two-sided: a point
    well in front of the measured surface is inconsistent with the measurement as well.

    Presets: OpenScene ``rel_tol=OPENSCENE_REL_TOL, abs_tol=0``; CLIP2Scene (default)
    ``rel_tol=0, abs_tol=CLIP2SCENE_ABS_TOL``.

    Args:
        points_cam: ``(N, 3)`` points in the frame of the camera that took ``depth_map``.
        K: ``(3, 3)`` intrinsics of ``depth_map``.
        depth_map: ``(H, W)`` depth in metres; 0 / NaN / inf = no reading (never visible).

    Returns:
        ``(N,)`` bool.
    """
    _check_points(points_cam, "points_cam")
    if points_cam.ndim != 2:
        raise ValueError(f"points_cam must be (N, 3), got {tuple(points_cam.shape)}")
    if depth_map.ndim != 2:
        raise ValueError(f"depth_map must be (H, W), got {tuple(depth_map.shape)}")
    if rel_tol < 0 or abs_tol < 0:
        raise ValueError(f"tolerances must be >= 0, got rel_tol={rel_tol}, abs_tol={abs_tol}")
    H, W = depth_map.shape
    with torch.no_grad():
        uv, z, in_image = project_points(points_cam.detach(), K, (H, W))
        ij = uv_to_ij(uv)
        # Clamp only to index safely; points outside are masked out by in_image below.
        flat = ij[:, 0].clamp(0, H - 1) * W + ij[:, 1].clamp(0, W - 1)
        d = depth_map.reshape(-1).to(points_cam.dtype)[flat]
        valid_d = torch.isfinite(d) & (d > 0)
        close = (z - d).abs() <= abs_tol + rel_tol * d
        return in_image & valid_d & close


def zbuffer_visible(
    points_cam: Tensor,
    K,
    image_hw: Sequence[int],
    *,
    radius_px: int = 0,
    depth_tol: float = 0.1,
) -> Tensor:
    """Z-buffer visibility of a sparse cloud: keep the nearest point(s) per pixel.

    Each point in the image writes its depth into its pixel with ``min``; with ``radius_px = r``
    the buffer is then min-filtered over ``(2r + 1) x (2r + 1)`` pixels. A point is visible when
    ``z <= zmin(pixel) + depth_tol``. Ties and points on the same surface within ``depth_tol``
    are all kept; points behind the camera or outside the image are not visible.

    Args:
        points_cam: ``(N, 3)`` points in the camera frame.
        K: ``(3, 3)`` intrinsics of the image.
        image_hw: ``(H, W)`` of the image.
        radius_px: neighbourhood radius in pixels (0 = the point's own pixel only).
        depth_tol: metres a point may lie behind the nearest one and still count as visible.

    Returns:
        ``(N,)`` bool. Memory ``O(N + H * W)``.
    """
    _check_points(points_cam, "points_cam")
    if points_cam.ndim != 2:
        raise ValueError(f"points_cam must be (N, 3), got {tuple(points_cam.shape)}")
    H, W = _check_hw(image_hw)
    if radius_px < 0 or int(radius_px) != radius_px:
        raise ValueError(f"radius_px must be a non-negative integer, got {radius_px!r}")
    if depth_tol < 0:
        raise ValueError(f"depth_tol must be >= 0, got {depth_tol}")
    with torch.no_grad():
        uv, z, in_image = project_points(points_cam.detach(), K, (H, W))
        ij = uv_to_ij(uv)
        flat = ij[:, 0].clamp(0, H - 1) * W + ij[:, 1].clamp(0, W - 1)
        inf = torch.tensor(float("inf"), dtype=z.dtype, device=z.device)
        zbuf = torch.full((H * W,), float("inf"), dtype=z.dtype, device=z.device)
        zbuf.scatter_reduce_(0, flat, torch.where(in_image, z, inf), reduce="amin")
        if radius_px > 0:
            r = int(radius_px)
            zbuf = -F.max_pool2d(-zbuf.view(1, 1, H, W), kernel_size=2 * r + 1, stride=1, padding=r)
            zbuf = zbuf.reshape(-1)
        return in_image & (z <= zbuf[flat] + depth_tol)

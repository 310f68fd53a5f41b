"""A headless z-buffer point rasteriser with deterministic viewpoints.

Points are splatted as small squares; the nearest point wins each pixel. The camera follows
docs/conventions.md (OpenCV frame, ``camera_from_world`` 4x4, pixel centres at integer uv).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppkt.geometry.pose import look_at


@dataclass(frozen=True)
class View:
    """A pinhole view for rendering.

    Attributes:
        K: ``(3, 3)`` intrinsics.
        camera_from_world: ``(4, 4)`` extrinsics.
        image_hw: output size ``(H, W)``.
    """

    K: np.ndarray
    camera_from_world: np.ndarray
    image_hw: tuple[int, int]


def orbit_view(
    points: np.ndarray,
    image_hw: tuple[int, int] = (480, 640),
    *,
    azimuth_deg: float = -60.0,
    elevation_deg: float = 45.0,
    fov_deg: float = 55.0,
    up: tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> View:
    """A deterministic oblique view that frames the whole cloud (world ``up`` is +z by default)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        lo, hi = np.zeros(3), np.ones(3)
    else:
        lo, hi = np.percentile(points, 1, axis=0), np.percentile(points, 99, axis=0)
    centre = (lo + hi) / 2
    radius = max(np.linalg.norm(hi - lo) / 2, 1e-3)
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    direction = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    half_fov = np.radians(fov_deg) / 2
    eye = centre + direction * radius / np.sin(half_fov) * 1.02
    h, w = image_hw
    f = 0.5 * min(h, w) / np.tan(half_fov)
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    return View(K=K, camera_from_world=camera_from_world_looking_at(eye, centre, up), image_hw=(h, w))


def camera_from_world_looking_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """``camera_from_world`` of :func:`ppkt.geometry.pose.look_at` (exact inverse: transposed rotation)."""
    rotation = np.ascontiguousarray(look_at(eye, target, up)[:3, :3].T)
    camera_from_world = np.eye(4)
    camera_from_world[:3, :3] = rotation
    camera_from_world[:3, 3] = -rotation @ np.asarray(eye, float)
    return camera_from_world


def rasterize_points(
    points: np.ndarray,
    colors: np.ndarray,
    view: View,
    *,
    radius_px: int = 1,
    background: tuple[int, int, int] = (255, 255, 255),
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``points (N,3)`` with ``colors (N,3)`` uint8; returns ``(image (H,W,3) uint8, index (H,W))``.

    ``index`` holds the point drawn at each pixel, -1 where none, so callers can colour the same
    rendering by other per-point values.
    """
    h, w = view.image_hw
    image = np.empty((h, w, 3), dtype=np.uint8)
    image[:] = background
    index = np.full((h, w), -1, dtype=np.int64)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) == 0:
        return image, index
    cam = points @ view.camera_from_world[:3, :3].T + view.camera_from_world[:3, 3]
    front = cam[:, 2] > 1e-6
    ids = np.nonzero(front)[0]
    cam = cam[front]
    uv = cam[:, :2] / cam[:, 2:3] * np.diag(view.K)[:2] + view.K[:2, 2]
    base = np.floor(uv + 0.5).astype(np.int64)
    candidate_pix, candidate_ids, candidate_depth = [], [], []
    for di in range(-radius_px, radius_px + 1):
        for dj in range(-radius_px, radius_px + 1):
            j, i = base[:, 0] + dj, base[:, 1] + di
            inside = (i >= 0) & (i < h) & (j >= 0) & (j < w)
            candidate_pix.append(i[inside] * w + j[inside])
            candidate_ids.append(ids[inside])
            candidate_depth.append(cam[inside, 2])
    pix = np.concatenate(candidate_pix)
    if len(pix) == 0:
        return image, index
    depth = np.concatenate(candidate_depth)
    owner = np.concatenate(candidate_ids)
    order = np.lexsort((owner, depth))  # nearest first; ties broken by point index (deterministic)
    first_pix, first = np.unique(pix[order], return_index=True)
    winners = owner[order][first]
    flat_index = index.reshape(-1)
    flat_index[first_pix] = winners
    image.reshape(-1, 3)[first_pix] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)[winners]
    return image, index

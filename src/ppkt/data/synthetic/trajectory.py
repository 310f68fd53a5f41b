"""Handheld-like camera paths: a smooth spline through free floor space, looking around the room."""

from __future__ import annotations

import numpy as np

from ppkt.data.synthetic.layout import Scene
from ppkt.geometry.pose import look_at


def _catmull_rom(points: np.ndarray, samples_per_segment: int) -> np.ndarray:
    """Dense points on the uniform Catmull-Rom spline through ``points`` (K, D)."""
    if len(points) == 1:
        return points.copy()
    padded = np.concatenate([points[:1], points, points[-1:]])
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None]
    out = []
    for k in range(len(points) - 1):
        p0, p1, p2, p3 = padded[k : k + 4]
        out.append(
            0.5
            * (
                (2 * p1)
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    out.append(points[-1:])
    return np.concatenate(out)


def _resample_by_length(path: np.ndarray, count: int) -> np.ndarray:
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    s = np.r_[0.0, np.cumsum(seg)]
    if s[-1] <= 0:
        return np.repeat(path[:1], count, axis=0)
    target = np.linspace(0.0, s[-1], count)
    return np.stack([np.interp(target, s, path[:, d]) for d in range(path.shape[1])], axis=1)


def camera_trajectory(
    scene: Scene,
    rng: np.random.Generator,
    frames: int,
    *,
    height: tuple[float, float] = (1.2, 1.8),
    clearance: float = 0.35,
    wall_margin: float = 0.5,
) -> np.ndarray:
    """``(frames, 4, 4)`` camera-to-world poses of a smooth walk through the room's free space.

    The camera keeps ``clearance`` metres from every furniture footprint and ``wall_margin``
    from the walls along the whole path (the spline is checked densely, not only at the frames);
    it looks at points on a second spline through the room, at least a metre away horizontally.
    """
    size = scene.room.size
    lo, hi = np.array([wall_margin, wall_margin]), size[:2] - wall_margin
    if (hi <= lo).any():
        lo, hi = size[:2] * 0.45, size[:2] * 0.55

    def free(xy: np.ndarray, margin: float) -> np.ndarray:
        inside = np.all((xy >= lo - 1e-9) & (xy <= hi + 1e-9), axis=1)
        return inside & (scene.footprint_distance(xy) >= margin)

    path = None
    for attempt in range(60):
        margin = clearance if attempt < 40 else clearance * 0.6
        candidates = rng.uniform(lo, hi, size=(200, 2))
        candidates = candidates[free(candidates, margin)]
        if len(candidates) == 0:
            continue
        n_way = min(len(candidates), int(rng.integers(3, 7)) if attempt < 50 else 1)
        picked = candidates[rng.choice(len(candidates), size=n_way, replace=False)]
        ordered = [picked[0]]
        rest = list(picked[1:])
        while rest:  # a greedy nearest-neighbour tour: no back-and-forth zigzag
            d = [np.linalg.norm(p - ordered[-1]) for p in rest]
            ordered.append(rest.pop(int(np.argmin(d))))
        dense = _catmull_rom(np.asarray(ordered), 40)
        if free(dense, margin).all():
            path = dense
            break
    if path is None:  # a crowded room: turn on the spot at the freest point found
        grid = rng.uniform(lo, hi, size=(2000, 2))
        path = grid[np.argmax(scene.footprint_distance(grid))][None, :]
    xy = _resample_by_length(path, frames)

    phase = rng.uniform(0, 2 * np.pi)
    base = rng.uniform(height[0] + 0.1, height[1] - 0.1)
    s = np.linspace(0.0, 1.0, frames)
    z = np.clip(base + 0.08 * np.sin(phase + 2 * np.pi * rng.uniform(0.5, 1.5) * s), *height)
    positions = np.concatenate([xy, z[:, None]], axis=1)

    n_targets = int(rng.integers(4, 9))
    targets = np.stack(
        [
            rng.uniform(0.3, size[0] - 0.3, n_targets),
            rng.uniform(0.3, size[1] - 0.3, n_targets),
            rng.uniform(0.3, 1.4, n_targets),
        ],
        axis=1,
    )
    target_path = _resample_by_length(_catmull_rom(targets, 40), frames)
    rolls = 0.04 * np.sin(rng.uniform(0, 2 * np.pi) + 2 * np.pi * rng.uniform(0.5, 2.0) * s)
    poses = np.empty((frames, 4, 4))
    centre = np.r_[size[:2] / 2, 1.0]
    for k in range(frames):
        target = target_path[k].copy()
        horizontal = target[:2] - positions[k, :2]
        dist = np.linalg.norm(horizontal)
        if dist < 1.0:
            direction = horizontal if dist > 1e-3 else (centre[:2] - positions[k, :2] + 1e-3)
            target[:2] = positions[k, :2] + direction / np.linalg.norm(direction) * 1.0
        poses[k] = look_at(positions[k], target, roll=rolls[k])
    return poses

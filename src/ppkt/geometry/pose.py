"""Camera poses built in numpy (synthetic trajectories, picture viewpoints)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def look_at(
    eye: np.ndarray,
    target: np.ndarray,
    up: Sequence[float] = (0.0, 0.0, 1.0),
    roll: float = 0.0,
) -> np.ndarray:
    """``(4, 4)`` float64 ``world_from_camera`` of an OpenCV camera (x right, y down, z forward) at
    ``eye`` looking at ``target``, image up as close to world ``up`` as the view allows, then turned
    by ``roll`` (rad) about the viewing axis.

    Looking (almost) straight along ``up`` leaves "right" undefined: any perpendicular is taken.
    The inverse (``camera_from_world``) is exact with the transpose of the rotation.
    """
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    norm = np.linalg.norm(right)
    if norm < 1e-6:
        right = np.cross(forward, np.array([1.0, 0.0, 0.0]))
        norm = np.linalg.norm(right)
    right = right / norm
    down = np.cross(forward, right)
    if roll:
        c, s = np.cos(roll), np.sin(roll)
        right, down = c * right + s * down, -s * right + c * down
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose

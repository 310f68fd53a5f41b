"""Which way is up in a dataset's world frame, and the rotation that makes it +z.

Pretraining rotates points about world +z and fine-tuning scenes are z-up, so every reader hands
over a gravity-aligned world. Some datasets have one (ScanNet: its scans are aligned with z up);
SLAM-style datasets (7-Scenes, TUM RGB-D, phone or RealSense captures) do not: their world is
wherever the tracker started, usually the first camera's frame, whose up is about -y (OpenCV)
tilted by however the camera was held. Such readers take ``up_axis``:

* ``"z"``: the world is already z-up (nothing is done);
* ``"x"``, ``"-x"``, ``"y"``, ``"-y"``, ``"-z"``: that world axis is up;
* ``"auto"``: estimated from the camera poses (:func:`estimate_up`). The estimate assumes the
  images' rows were roughly level (a landscape camera that does not roll); for a capture held
  in portrait, or upside down, name the axis instead.

The chosen up vector is turned into +z by the smallest rotation (:func:`gravity_rotation`),
which is pre-multiplied onto every ``world_from_camera``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

UP_AXES: tuple[str, ...] = ("auto", "z", "-z", "y", "-y", "x", "-x")
"""Values of ``data.up_axis``."""

ALIGNED_DEGREES = 10.0
"""A mean camera up further than this from +z is reported as "poses not gravity-aligned"."""

_AXES = {
    "x": (1.0, 0.0, 0.0),
    "-x": (-1.0, 0.0, 0.0),
    "y": (0.0, 1.0, 0.0),
    "-y": (0.0, -1.0, 0.0),
    "z": (0.0, 0.0, 1.0),
    "-z": (0.0, 0.0, -1.0),
}


def mean_camera_up(poses: Sequence[np.ndarray]) -> np.ndarray:
    """Unit mean of the cameras' up directions (OpenCV ``-y``) in the world, ``(3,)``.

    Raises:
        ValueError: no pose, or the up directions cancel out.
    """
    if not len(poses):
        raise ValueError("no camera pose to estimate the up direction from")
    ups = np.stack([-np.asarray(p, dtype=np.float64)[:3, 1] for p in poses])
    mean = ups.mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm < 1e-6:
        raise ValueError("the cameras' up directions cancel out: set data.up_axis explicitly")
    return mean / norm


def estimate_up(poses: Sequence[np.ndarray]) -> np.ndarray:
    """The world's up direction ``(3,)`` estimated from ``world_from_camera`` poses.

    Hand-held and robot cameras rarely roll, so a camera's x axis is (nearly) horizontal however
    much it pitches: up is the direction most perpendicular to every camera's x axis (the
    eigenvector of the smallest eigenvalue of ``sum x x^T``), signed to agree with the mean
    camera up. When the x axes barely vary (a camera that never turned), that direction is not
    determined and the mean camera up, made perpendicular to the mean x axis, is used instead.
    """
    up = mean_camera_up(poses)
    xs = np.stack([np.asarray(p, dtype=np.float64)[:3, 0] for p in poses])
    values, vectors = np.linalg.eigh(xs.T @ xs)
    # Determined when the x axes span a plane (the camera turned) that is clearly thinner than wide.
    if values[1] > 1e-3 * values[2] and values[0] < 0.5 * values[1]:
        estimate = vectors[:, 0]
    else:
        x = vectors[:, 2]
        estimate = up - (up @ x) * x
        if np.linalg.norm(estimate) < 1e-6:
            return up
    estimate = estimate / np.linalg.norm(estimate)
    return estimate if estimate @ up >= 0 else -estimate


def axis_vector(up_axis: str) -> np.ndarray:
    if up_axis not in _AXES:
        raise ValueError(f"up_axis must be one of {', '.join(UP_AXES)}; got {up_axis!r}")
    return np.array(_AXES[up_axis])


def gravity_rotation(up: np.ndarray) -> np.ndarray:
    """``(4, 4)`` smallest rotation taking the unit vector ``up`` to +z (``aligned_from_world``)."""
    up = np.asarray(up, dtype=np.float64)
    up = up / np.linalg.norm(up)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(up, z)
    sin, cos = np.linalg.norm(axis), float(up @ z)
    out = np.eye(4)
    if sin < 1e-12:
        if cos < 0:  # upside down: half a turn about x
            out[:3, :3] = np.diag([1.0, -1.0, -1.0])
        return out
    k = axis / sin
    skew = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    out[:3, :3] = np.eye(3) + sin * skew + (1.0 - cos) * skew @ skew
    return out


def up_rotation(up_axis: str, poses: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(``aligned_from_world`` (4, 4), the up vector used) for ``data.up_axis`` and the poses."""
    up = estimate_up(poses) if up_axis == "auto" else axis_vector(up_axis)
    return gravity_rotation(up), up


def tilt_degrees(up: np.ndarray) -> float:
    """Angle between ``up`` and +z in degrees."""
    up = np.asarray(up, dtype=np.float64)
    return float(np.degrees(np.arccos(np.clip(up[2] / np.linalg.norm(up), -1.0, 1.0))))


def alignment_note(poses: Sequence[np.ndarray]) -> str | None:
    """check-data's remark when the poses' world is not z-up (None when it is, or no poses)."""
    if not len(poses):
        return None
    try:
        up = mean_camera_up(poses)
    except ValueError:
        return None
    tilt = tilt_degrees(up)
    if tilt <= ALIGNED_DEGREES:
        return None
    shown = ", ".join(f"{v:+.2f}" for v in up)
    return (
        f"poses not gravity-aligned (mean camera up = ({shown}), {tilt:.0f} deg from +z); "
        "pretraining rotates the world with data.up_axis (auto: estimated from the poses)"
    )

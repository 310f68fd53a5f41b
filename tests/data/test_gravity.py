import math

import numpy as np
import pytest

from ppkt.data.gravity import (
    alignment_note,
    axis_vector,
    estimate_up,
    gravity_rotation,
    mean_camera_up,
    tilt_degrees,
    up_rotation,
)


def camera(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """world_from_camera of an OpenCV camera in a z-up world: looking along yaw, tilted down by pitch."""
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), -math.sin(pitch)])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    down = np.cross(forward, right)
    R = np.stack([right, down, forward], axis=1)
    if roll:
        c, s = math.cos(roll), math.sin(roll)
        R = R @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    pose = np.eye(4)
    pose[:3, :3] = R
    return pose


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_camera_helper_is_a_rotation_with_up_minus_y():
    pose = camera(0.3, 0.0)
    assert np.allclose(pose[:3, :3].T @ pose[:3, :3], np.eye(3)) and np.linalg.det(pose[:3, :3]) > 0
    assert np.allclose(-pose[:3, 1], [0, 0, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimate_up_ignores_pitch_where_the_mean_camera_up_does_not(seed):
    # A capture that looks 35 deg down while turning through only 60 deg, in a rotated world.
    world = np.eye(4)
    world[:3, :3] = random_rotation(seed)
    poses = [world @ camera(math.radians(yaw), math.radians(35)) for yaw in range(0, 61, 10)]
    true_up = world[:3, :3] @ [0, 0, 1]
    assert np.degrees(np.arccos(np.clip(mean_camera_up(poses) @ true_up, -1, 1))) > 10  # biased by pitch
    assert np.allclose(estimate_up(poses), true_up, atol=1e-9)
    aligned_from_world, _ = up_rotation("auto", poses)
    assert np.allclose(aligned_from_world[:3, :3] @ true_up, [0, 0, 1], atol=1e-9)


def test_estimate_up_falls_back_when_the_camera_never_turns():
    # Every x axis the same: up is only known to be perpendicular to it, so take the mean camera up
    # projected onto that plane (here: exact, the cameras are level).
    poses = [camera(0.2, 0.0) for _ in range(4)]
    poses[1][:3, 3] = [1, 2, 3]
    assert np.allclose(estimate_up(poses), [0, 0, 1])


def test_gravity_rotation_hand_values_and_degenerate_axes():
    assert np.allclose(gravity_rotation(np.array([0, 0, 1.0])), np.eye(4))
    flip = gravity_rotation(np.array([0, 0, -1.0]))
    assert np.allclose(flip[:3, :3] @ [0, 0, -1], [0, 0, 1]) and np.isclose(np.linalg.det(flip[:3, :3]), 1)
    # up = -y (7-Scenes' first-camera world): R_x(-90 deg), taking -y to z and z to y
    R = gravity_rotation(axis_vector("-y"))[:3, :3]
    assert np.allclose(R, [[1, 0, 0], [0, 0, 1], [0, -1, 0]])
    for axis in ("x", "-x", "y", "-y", "z", "-z"):
        R = gravity_rotation(axis_vector(axis))[:3, :3]
        assert np.allclose(R @ axis_vector(axis), [0, 0, 1]) and np.allclose(R.T @ R, np.eye(3))
    with pytest.raises(ValueError, match="up_axis must be one of"):
        axis_vector("up")
    assert tilt_degrees(np.array([0, 1.0, 1.0])) == pytest.approx(45.0)


def test_alignment_note_only_for_tilted_worlds():
    level = [camera(math.radians(a), math.radians(20)) for a in range(0, 360, 30)]
    assert alignment_note(level) is None and alignment_note([]) is None
    first_camera = np.linalg.inv(camera(0.0, 0.0))
    note = alignment_note([first_camera @ p for p in level])
    assert note.startswith("poses not gravity-aligned (mean camera up = (") and "90 deg from +z" in note
    with pytest.raises(ValueError, match="cancel out"):
        mean_camera_up([camera(0, 0), camera(0, 0, math.pi)])

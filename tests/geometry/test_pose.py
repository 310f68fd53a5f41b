"""look_at: one function, returning world_from_camera (OpenCV camera axes)."""

import numpy as np
import pytest

from ppkt.geometry.pose import look_at


def test_camera_axes_point_where_they_should():
    eye, target = np.array([1.0, 2.0, 1.5]), np.array([4.0, 2.0, 1.5])  # looking along +x, z up
    pose = look_at(eye, target)
    np.testing.assert_allclose(pose[:3, 2], [1, 0, 0], atol=1e-12)  # z forward
    np.testing.assert_allclose(pose[:3, 1], [0, 0, -1], atol=1e-12)  # y down = -world up
    np.testing.assert_allclose(pose[:3, 0], [0, -1, 0], atol=1e-12)  # x right (z up, looking +x)
    np.testing.assert_array_equal(pose[:3, 3], eye)
    np.testing.assert_array_equal(pose[3], [0, 0, 0, 1])
    # world_from_camera: the target is straight ahead at its distance (camera (0, 0, 3)).
    np.testing.assert_allclose(pose @ [0, 0, 3, 1], [*target, 1], atol=1e-12)


@pytest.mark.parametrize("target", [[0.3, -2.0, 0.5], [0.0, 0.0, -4.0], [1e-9, 0.0, 5.0]])
def test_rotation_is_proper_even_looking_along_up(target):
    pose = look_at(np.zeros(3), np.array(target), roll=0.3)
    R = pose[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(R), 1.0)
    np.testing.assert_allclose(R[:, 2], np.array(target) / np.linalg.norm(target), atol=1e-12)


def test_roll_turns_about_the_viewing_axis():
    eye, target = np.zeros(3), np.array([0.0, 5.0, 0.0])
    plain, rolled = look_at(eye, target), look_at(eye, target, roll=0.25)
    np.testing.assert_array_equal(rolled[:3, 2], plain[:3, 2])
    cos = float(plain[:3, 0] @ rolled[:3, 0])
    assert cos == pytest.approx(np.cos(0.25))

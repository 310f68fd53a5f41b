"""Fixtures for the reader tests: datasets written into tmp_path in the exact on-disk formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

K_COLOR = np.array([[120.0, 0.0, 39.5], [0.0, 120.0, 29.5], [0.0, 0.0, 1.0]])  # 80x60 colour
K_DEPTH = np.array([[60.0, 0.0, 19.5], [0.0, 60.0, 14.5], [0.0, 0.0, 1.0]])  # 40x30 depth


def rigid_pose(index: int) -> np.ndarray:
    """A valid camera-to-world pose that differs per frame."""
    angle = 0.1 * index
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    pose[:3, 3] = [0.1 * index, 1.0, 1.5]
    return pose


def frame_images(index: int, color_hw=(60, 80), depth_hw=(30, 40)) -> tuple[np.ndarray, np.ndarray]:
    """A colour image (its red channel encodes the frame index) and a uint16 depth in mm."""
    color = np.zeros((*color_hw, 3), dtype=np.uint8)
    color[..., 0] = 10 * index % 256
    color[..., 1] = np.linspace(0, 255, color_hw[1], dtype=np.uint8)[None, :]
    depth = np.full(depth_hw, 1000 + 10 * index, dtype=np.uint16)
    depth[0, 0] = 0  # an invalid pixel
    return color, depth


def write_matrix(path: Path, matrix: np.ndarray) -> None:
    """Write a matrix as ScanNet's exporter does (one row per line, '%f')."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(" ".join(f"{v:f}" for v in row) for row in matrix) + "\n")


def write_scannet_scene(root: Path, scene: str, num_frames: int, *, id_format: str = "{}") -> Path:
    """Write an exported ScanNet scene: color/<i>.jpg, depth/<i>.png, pose/<i>.txt, intrinsic/*.txt."""
    scene_dir = root / scene
    for folder in ("color", "depth", "pose", "intrinsic"):
        (scene_dir / folder).mkdir(parents=True, exist_ok=True)
    for K, name in ((K_COLOR, "intrinsic_color.txt"), (K_DEPTH, "intrinsic_depth.txt")):
        K4 = np.eye(4)
        K4[:3, :3] = K
        write_matrix(scene_dir / "intrinsic" / name, K4)
    for index in range(num_frames):
        frame_id = id_format.format(index)
        color, depth = frame_images(index)
        Image.fromarray(color).save(scene_dir / "color" / f"{frame_id}.jpg", quality=95)
        Image.fromarray(depth).save(scene_dir / "depth" / f"{frame_id}.png")
        write_matrix(scene_dir / "pose" / f"{frame_id}.txt", rigid_pose(index))
    return scene_dir


@pytest.fixture
def scannet_root(tmp_path) -> Path:
    """Two exported scenes of 6 frames each, plus split files."""
    root = tmp_path / "scannet"
    write_scannet_scene(root, "scene0000_00", 6)
    write_scannet_scene(root, "scene0001_00", 6)
    (root / "scannetv2_train.txt").write_text("scene0000_00\n")
    (root / "scannetv2_val.txt").write_text("scene0001_00\n")
    return root


@pytest.fixture(scope="session")
def motorcycle_frame():
    """The real Middlebury 2014 'Motorcycle' RGB-D frame (500x741), see ppkt.data.real_frame."""
    pytest.importorskip("skimage")
    from ppkt.data.real_frame import middlebury_motorcycle_frame

    return middlebury_motorcycle_frame()


@pytest.fixture
def scannet_writer():
    """``write_scannet_scene(root, scene, num_frames, id_format="{}")``, for tests with their own layout."""
    return write_scannet_scene


@pytest.fixture
def matrix_writer():
    return write_matrix


@pytest.fixture
def images_for_frame():
    """``frame_images(index) -> (colour (60,80,3) uint8, depth (30,40) uint16 mm)``; ``rigid_pose(index)``."""
    return frame_images, rigid_pose

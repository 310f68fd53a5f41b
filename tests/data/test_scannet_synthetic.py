"""The synthetic generator's output read back through the ScanNet readers and check-data."""

import numpy as np

from ppkt.data.check import scan_dataset
from ppkt.data.scannet import ScanNetFrames, read_scannet_scene, scannet_split


def test_synthetic_dataset_reads_as_scannet(tmp_path):
    from ppkt.data.synthetic import generate_dataset

    root = generate_dataset(tmp_path / "syn", scenes=2, frames_per_scene=2, seed=0, image_hw=(48, 64))
    train = scannet_split(root, "train")
    frames = ScanNetFrames(root, split="train")
    assert len(frames) == 2 * len(train) and frames.report.frames_skipped == 0
    report = scan_dataset(root)
    assert report.format == "scannet" and report.frames_usable == report.frames_found == 4
    frame = frames[0]
    scene = read_scannet_scene(root / frame.scene_id)
    # Depth back-projected with the frame's pose lands on the scene's labelled cloud.
    i, j = np.nonzero(frame.depth > 0)
    z = frame.depth[i, j]
    K = frame.K_depth
    cam = np.stack([(j - K[0, 2]) * z / K[0, 0], (i - K[1, 2]) * z / K[1, 1], z, np.ones_like(z)], 1)
    world = (frame.world_from_camera @ cam.T).T[:, :3]
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(scene.points).query(world[::7])
    assert np.median(distance) < 0.05

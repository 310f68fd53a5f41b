"""docs/your-own-data.md's walk-through at tiny size: a folder of RGB-D frames through check-data,
pretrain, cache-teacher and viz overlay, by the commands a user types."""

import math

import numpy as np

from ppkt.cli import main
from ppkt.data.rgbd_folder import write_rgbd_folder

K = np.array([[40.0, 0.0, 19.5], [0.0, 40.0, 14.5], [0.0, 0.0, 1.0]])


def capture(folder):
    """Four frames of a camera turning in front of a wall with a step, in its first camera's world."""
    colors, depths, poses = [], [], []
    for i in range(4):
        color = np.zeros((30, 40, 3), np.uint8)
        color[..., 0] = np.linspace(0, 255, 40, dtype=np.uint8)[None]
        color[15:, :, 1] = 200
        depth = np.full((30, 40), 2000, np.uint16)
        depth[15:, :20] = 1500
        yaw = 0.1 * i
        pose = np.eye(4)
        pose[:3, :3] = [[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]]
        colors.append(color), depths.append(depth), poses.append(pose)
    return write_rgbd_folder(folder, colors, depths, K, None, poses)


def test_check_pretrain_cache_overlay_on_an_rgbd_folder(tmp_path, capsys):
    root = capture(tmp_path / "my_capture")
    assert main(["check-data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "format: rgbd-folder" in out and "frames usable: 4" in out and "poses not gravity-aligned" in out

    run = tmp_path / "run"
    args = ["pretrain", "--preset", "demo", "--data.kind", "rgbd-folder", "--data.root", str(root)]
    args += ["--data.frame_skip", "1", "--data.image_hw", "24,32", "--data.num_workers", "0"]
    args += ["--teacher.stage", "stride8", "--model.width", "0.25", "--loss.num_pairs", "64"]
    args += ["--optim.batch_size", "2", "--optim.steps", "1", "--run.progress", "false"]
    args += ["--run.out", str(run)]
    assert main(args) == 0
    assert "pretrained 1 steps" in capsys.readouterr().out

    cache = ["cache-teacher", str(root), "--stage", "stride8", "--image-size", "24", "32"]
    cache += ["--frame-skip", "1"]
    assert main([*cache, "--out", str(tmp_path / "cache")]) == 0
    assert "4 frames written" in capsys.readouterr().out

    picture = tmp_path / "overlay.png"
    # A folder inside the sequence: the root is found one level above.
    assert main(["viz", "overlay", str(root / "color"), "--out", str(picture)]) == 0
    out = capsys.readouterr().out
    assert "one level above" in out and picture.is_file()

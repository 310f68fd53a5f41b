"""``ppkt cache-teacher`` on a tiny hand-written ScanNet-layout dataset."""

import numpy as np
from PIL import Image

from ppkt.cli import main
from ppkt.teachers import TeacherFeatureCache, build_teacher


def _write_scene(root, scene: str, frames: list[int]) -> None:
    rng = np.random.default_rng(0)
    d = root / scene
    for folder in ("color", "depth", "pose", "intrinsic"):
        (d / folder).mkdir(parents=True, exist_ok=True)
    K = np.array([[50.0, 0, 31.5, 0], [0, 50.0, 23.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    np.savetxt(d / "intrinsic" / "intrinsic_color.txt", K)
    np.savetxt(d / "intrinsic" / "intrinsic_depth.txt", K)
    for i in frames:
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(d / "color" / f"{i}.jpg")
        Image.fromarray(np.full((48, 64), 1500, np.uint16)).save(d / "depth" / f"{i}.png")
        np.savetxt(d / "pose" / f"{i}.txt", np.eye(4))


def test_cache_teacher_command_writes_then_resumes(tmp_path, capsys):
    _write_scene(tmp_path, "scene0000_00", [0, 25, 50, 60])
    out = tmp_path / "cache"
    argv = ["cache-teacher", str(tmp_path), "--stage", "stride16", "--image-size", "32", "48",
            "--frame-skip", "25", "--out", str(out), "--batch-size", "2"]  # fmt: skip
    assert main(argv) == 0
    assert "3 frames written" in capsys.readouterr().out  # frame 60 is not a multiple of 25
    cache = TeacherFeatureCache(out, build_teacher("efficientnet_lite0", stage="stride16").identity, (32, 48))
    assert cache.get("scene0000_00", "25").shape == (112, 2, 3)
    assert main(argv) == 0
    assert "0 frames written, 3 already cached" in capsys.readouterr().out
    # Another stage into the same folder is refused with the reason.
    assert main([*argv[:3], "stride8", *argv[4:]]) == 2
    assert "teacher_identity" in capsys.readouterr().err


def test_resnet_without_weights_fails_cleanly(tmp_path, capsys):
    assert main(["cache-teacher", str(tmp_path), "--teacher", "resnet50"]) == 2
    assert "weights" in capsys.readouterr().err

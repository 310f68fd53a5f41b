"""``ppkt finetune --task detection``, ``ppkt evaluate`` (table and --json), ``ppkt viz detections``."""

import json

import pytest

from ppkt.cli import main

TINY = [
    "--data.voxel_size", "0.1", "--data.synthetic_scenes", "3", "--data.synthetic_frames_per_scene", "1",
    "--data.synthetic_image_hw", "24,32", "--model.width", "0.25", "--head.num_seeds", "64",
    "--head.num_proposals", "16", "--head.hidden", "32", "--head.proposal_hidden", "32",
    "--optim.steps", "1", "--optim.batch_size", "1", "--run.device", "cpu", "--run.progress", "false",
]  # fmt: skip


def test_finetune_evaluate_and_viz_detection(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["finetune", "--task", "detection", "--preset", "demo-detection", *TINY,
            "--data.root", str(tmp_path / "synthetic"), "--run.out", str(run),
            "--labels.splits_dir", str(tmp_path / "splits")]  # fmt: skip
    assert main([*args, "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "num_heading_bins: 12" in printed and "num_seeds: 64" in printed
    assert main(args) == 0
    assert "| **mAP** |" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--device", "cpu", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "AP@0.25" in table and "| **mAP** |" in table
    assert main(["evaluate", str(run), "--device", "cpu", "--no-progress", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["task"] == "detection" and "mAP@0.25" in record and "chair" in record["classes"]
    png = tmp_path / "det.png"
    pytest.importorskip("matplotlib")
    assert main(["viz", "detections", str(run), "--out", str(png), "--score", "0.0"]) == 0
    assert png.is_file() and png.stat().st_size > 5000
    assert "true boxes" in capsys.readouterr().out


def test_detection_flags_are_checked():
    with pytest.raises(SystemExit, match="segmentation preset"):
        main(["finetune", "--task", "detection", "--preset", "demo-finetune", "--print-config"])
    # A detection-only field is refused by a segmentation run.
    with pytest.raises((SystemExit, ValueError)):
        main(["finetune", "--preset", "demo-finetune", "--head.num_seeds", "8", "--print-config"])

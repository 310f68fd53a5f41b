"""``ppkt finetune --task detection``, ``ppkt evaluate`` (table and --json), ``ppkt viz detections``."""

import json

import pytest

from ppkt.cli import main

TINY = [
    "--model.voxel_size", "0.1", "--data.synthetic.scenes", "3", "--data.synthetic.frames_per_scene", "1",
    "--data.synthetic.image_hw", "24,32", "--model.width", "0.25", "--head.num_seeds", "64",
    "--head.num_proposals", "16", "--head.hidden", "32", "--head.proposal_hidden", "32",
    "--optim.steps", "1", "--optim.batch_size", "1", "--run.device", "cpu", "--run.progress", "false",
]  # fmt: skip


def test_finetune_evaluate_and_viz_detection(tmp_path, capsys, monkeypatch):
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
    pytest.importorskip("matplotlib")
    assert main(["viz", "detections", str(run), "--score", "0.0"]) == 0
    printed = capsys.readouterr().out
    png, photo = run / "viz" / "detections.png", run / "viz" / "detections_image.png"
    assert "true boxes" in printed and f"wrote {photo}" in printed
    assert png.is_file() and png.stat().st_size > 5000
    # The photo: the synthetic room's frame (24x32 at this size) with the boxes drawn in, beside
    # the legend, under the caption.
    from PIL import Image

    with Image.open(photo) as image:
        width, height = image.size
    assert width > 32 and height > 24
    # An unknown --frame: one line, exit 2, before the evaluation and before any picture.
    import ppkt.eval.detection.loop as detection_loop

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated before checking --frame")

    with monkeypatch.context() as patch:
        patch.setattr(detection_loop, "evaluate_detection_checkpoint", no_evaluation)
        assert main(["viz", "detections", str(run), "--frame", "nope", "--out", str(tmp_path / "d.png")]) == 2
    captured = capsys.readouterr()
    assert "no posed frame 'nope'" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert not (tmp_path / "d.png").exists() and captured.out == ""
    # A photo that cannot be decoded: one "no photo" line naming the file, the top-down picture kept.
    colors = sorted((tmp_path / "synthetic").rglob("color/*.jpg"))
    assert colors
    for color in colors:
        color.write_bytes(b"not a jpeg")
    assert main(["viz", "detections", str(run), "--score", "0.0", "--out", str(tmp_path / "e.png")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("no photo")]
    assert len(lines) == 1 and ".jpg: " in lines[0] and str(tmp_path / "synthetic") in lines[0], lines
    assert (tmp_path / "e.png").is_file() and not (tmp_path / "e_image.png").exists()


def test_detection_flags_are_checked(capsys):
    # User errors go through ppkt.cli.main's one handler: one line naming the problem, exit 2.
    assert main(["finetune", "--task", "detection", "--preset", "demo-finetune", "--print-config"]) == 2
    assert "segmentation preset" in capsys.readouterr().err
    # A detection-only field is refused by a segmentation run.
    assert main(["finetune", "--preset", "demo-finetune", "--head.num_seeds", "8", "--print-config"]) == 2
    assert "head.num_seeds" in capsys.readouterr().err
    # Range checks of the detection config (its own head fields and the shared optim fields).
    assert main(["finetune", "--task", "detection", "--preset", "demo-detection", "--head.radius", "0",
                 "--optim.accumulate", "0", "--print-config"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "head.radius" in err and "optim.accumulate" in err and len(err.strip().splitlines()) == 1
    assert main(["finetune", "--task", "detection", "--resume", "/nonexistent/run"]) == 2
    assert "not a fine-tuning run folder" in capsys.readouterr().err
    assert main(["viz", "detections", "/nonexistent/run"]) == 2
    assert "no detection checkpoint" in capsys.readouterr().err

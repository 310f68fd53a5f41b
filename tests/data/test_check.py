import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ppkt.cli import main
from ppkt.data import registry
from ppkt.data.check import detect_format, scan_dataset
from ppkt.data.report import DataReport, FrameError
from ppkt.data.sens import write_sens


def _break_scannet(root):
    """One frame per kind of problem, all in scene0000_00 (frames 0..5)."""
    scene = root / "scene0000_00"
    (scene / "color" / "1.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(scene / "color" / "2.jpg")  # other size
    Image.fromarray(np.zeros((30, 40), np.uint16)).save(scene / "depth" / "3.png")  # all invalid
    (scene / "pose" / "4.txt").write_text("-inf " * 16)
    (scene / "depth" / "5.png").unlink()
    return scene


def test_scan_finds_every_problem_with_its_path(scannet_root):
    scene = _break_scannet(scannet_root)
    report = scan_dataset(scannet_root, frame_skip=1)
    assert report.format == "scannet" and report.decoded
    assert report.frames_found == 12 and report.frames_usable == 7
    assert report.skipped == {
        "invalid pose": 1,
        "missing file": 1,
        "undecodable image": 1,
        "size mismatch": 1,
        "empty depth": 1,
    }
    assert str(scene / "color" / "1.jpg") in report.examples["undecodable image"][0]
    assert str(scene / "color" / "2.jpg") in report.examples["size mismatch"][0]
    assert str(scene / "depth" / "5.png") in report.examples["missing file"][0]
    text = report.format_text()
    assert "frames usable: 7" in text and "empty depth: 1" in text


def test_strict_raises_the_same_message(scannet_root):
    scene = _break_scannet(scannet_root)
    # Repair what indexing finds, so that strict mode stops at the first decoding problem.
    (scene / "pose" / "4.txt").write_text(" ".join(map(str, np.eye(4).ravel())))
    (scene / "depth" / "5.png").write_bytes((scene / "depth" / "0.png").read_bytes())
    lenient = scan_dataset(scannet_root, frame_skip=1)
    with pytest.raises(FrameError) as info:
        scan_dataset(scannet_root, strict=True, frame_skip=1)
    assert info.value.reason == "undecodable image" and info.value.path == str(scene / "color" / "1.jpg")
    assert str(info.value) in lenient.examples[info.value.reason]


def test_workers_give_the_same_report(scannet_root):
    _break_scannet(scannet_root)
    serial = scan_dataset(scannet_root, frame_skip=1)
    parallel = scan_dataset(scannet_root, frame_skip=1, workers=1)
    assert parallel.to_dict() == serial.to_dict()


def test_default_frame_skip_is_what_pretraining_reads(scannet_root):
    report = scan_dataset(scannet_root)
    assert report.frames_found == 2 and "frame_skip=25" in report.notes[0]


def test_sens_scan_and_detection(tmp_path, images_for_frame):
    frame_images, rigid_pose = images_for_frame
    K = np.array([[60.0, 0, 19.5], [0, 60, 14.5], [0, 0, 1]])
    colors, depths = zip(*[frame_images(i, color_hw=(30, 40)) for i in range(3)], strict=True)
    depths = list(depths)
    depths[1] = np.zeros_like(depths[1])
    write_sens(
        tmp_path / "scene0000_00" / "scene0000_00.sens",
        colors,
        depths,
        [rigid_pose(i) for i in range(3)],
        K,
        K,
    )
    (tmp_path / "scene0001_00").mkdir()
    (tmp_path / "scene0001_00" / "scene0001_00.sens").write_bytes(b"\x04\0\0\0 short")
    assert detect_format(tmp_path) == "scannet-sens"
    report = scan_dataset(tmp_path, frame_skip=1)
    assert report.frames_found == 4 and report.frames_usable == 2
    assert report.skipped == {"empty depth": 1, "truncated file": 1}


def test_detect_formats(tmp_path, scannet_root):
    assert detect_format(scannet_root) == "scannet"
    assert detect_format(scannet_root / "scene0000_00") == "scannet"
    seven = tmp_path / "7s" / "heads" / "seq-01"
    seven.mkdir(parents=True)
    (seven / "frame-000000.pose.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1")
    assert detect_format(tmp_path / "7s") == "7scenes"
    tum = tmp_path / "tum" / "rgbd_dataset_freiburg2_desk"
    tum.mkdir(parents=True)
    (tum / "rgb.txt").write_text("")
    (tum / "depth.txt").write_text("")
    assert detect_format(tmp_path / "tum") == "tum"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot tell the dataset format"):
        detect_format(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown dataset format"):
        scan_dataset(scannet_root, format="kinect")


def test_one_registry_entry_reaches_detection_check_data_and_its_cli(tmp_path, monkeypatch, capsys):
    """Adding a format is one entry: auto-detection, the check-data scan and the command's
    --format choices all find it, and the scan gets the folder detection resolved."""
    scanned = []

    def scan_fake(path, strict, **options):
        scanned.append(Path(path))
        return DataReport(root=str(path), format="fake", frames_found=3, frames_usable=2)

    fake = registry.DatasetSpec(
        "fake", "rgbd", "a test format", "z", lambda path: (path / "FAKE").is_file(), None, scan=scan_fake
    )
    monkeypatch.setitem(registry.DATASETS, "fake", fake)
    (tmp_path / "capture").mkdir()
    (tmp_path / "capture" / "FAKE").write_text("")
    assert registry.detect(tmp_path).format == "fake"  # one level below the given folder
    assert main(["check-data", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["format"], out["frames_usable"]) == ("fake", 2)
    assert scanned == [tmp_path / "capture"]
    assert main(["check-data", str(tmp_path / "capture"), "--format", "fake"]) == 0


def test_cli_json_and_exit_status(scannet_root, tmp_path, capsys):
    assert main(["check-data", str(scannet_root), "--frame-skip", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames_usable"] == 12 and out["format"] == "scannet" and out["frames_skipped"] == 0
    for pose in (scannet_root / "scene0000_00" / "pose").iterdir():
        pose.write_text("nan " * 16)
    assert main(["check-data", str(scannet_root / "scene0000_00"), "--format", "scannet"]) == 1
    captured = capsys.readouterr()
    assert "invalid pose: 1" in captured.out and "no usable frame" in captured.err
    assert main(["check-data", str(scannet_root / "scene0000_00"), "--strict"]) == 2
    assert "invalid pose" in capsys.readouterr().err
    assert main(["check-data", str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err


def test_unexpected_exceptions_are_counted_not_raised(scannet_root, monkeypatch):
    import ppkt.data.images as images

    real = images.read_depth_png

    def flaky(path, *args):
        if path.endswith("/2.png"):
            raise MemoryError("simulated")
        return real(path, *args)

    monkeypatch.setattr(images, "read_depth_png", flaky)
    report = scan_dataset(scannet_root, frame_skip=1)
    assert report.frames_usable == 10 and report.skipped == {"unreadable": 2}
    assert "MemoryError: simulated" in report.examples["unreadable"][0]

"""Faulty inputs of every kind a new user brings: each ends in one line naming the file or field and
the problem (exit 2), or in a counted skip naming the file; never a traceback, a hang or a silent
wrong result (issue 22).

Every case runs ``ppkt.cli.main`` in this process (fast); a handful run ``python -m ppkt`` to see
what a shell sees.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from bad_input_fixtures import (
    SCENE,
    images,
    patch_bytes,
    png_bomb_header,
    pose,
    sens_header_offset,
    write_matrix,
    write_scannet,
    write_sens_file,
)
from PIL import Image

from ppkt.cli import main

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from outdoor_fixtures import write_kitti_object, write_nuscenes, write_semantickitti  # noqa: E402

TINY = [
    "--data.kind", "scannet", "--data.split", "none", "--data.frame_skip", "1", "--data.image_hw", "24,32",
    "--data.num_workers", "0", "--teacher.stage", "stride8", "--model.width", "0.25",
    "--model.backbone", "res16unet14", "--loss.num_pairs", "32", "--optim.batch_size", "2",
    "--optim.steps", "1", "--run.progress", "false", "--run.tensorboard", "false", "--run.device", "cpu",
]  # fmt: skip
"""A one-step pretraining run of the demo preset on a ScanNet export (add --data.root, --run.out)."""


def one_line_error(capsys, argv: list[str], command: str, *names: str, code: int = 2) -> str:
    """Run ``ppkt argv``; assert exit ``code``, no traceback and a last stderr line
    ``ppkt <command>: ...`` that contains each of ``names``. Returns that line."""
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out, out.err
    # Progress bars (tqdm, "...%|...") share stderr; they are not error lines.
    lines = [line for line in re.split(r"[\r\n]", out.err) if line.strip() and "%|" not in line]
    assert status == code, (status, out.err)
    assert lines and lines[-1].startswith(f"ppkt {command}: "), out.err
    for name in names:
        assert str(name) in lines[-1], (name, lines[-1])
    return lines[-1]


# ------------------------------------------------------------------------------------ shared data
@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return write_scannet(tmp_path_factory.mktemp("pristine") / "scannet")


@pytest.fixture
def scannet(pristine, tmp_path) -> Path:
    """A fresh copy of the 4-frame ScanNet export, free to break."""
    return Path(shutil.copytree(pristine, tmp_path / "scannet"))


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory, pristine) -> Path:
    """A finished one-step pretraining run (for evaluate / export / resume cases)."""
    out = tmp_path_factory.mktemp("runs") / "pretrain"
    assert main(["pretrain", *TINY, "--data.root", str(pristine), "--run.out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, pretrain_run) -> Path:
    out = tmp_path_factory.mktemp("export") / "backbone.safetensors"
    assert main(["export", str(pretrain_run), "--out", str(out)]) == 0
    return out


# ----------------------------------------------------------------------- config values (pretrain)
PRETRAIN_VALUES = [
    ("optim.grad_clip", "-1"),
    ("optim.grad_clip", "0"),
    ("optim.lr", "nan"),
    ("optim.lr", "inf"),
    ("optim.lr", "0"),
    ("optim.lr", "-0.1"),
    ("optim.lr", "abc"),
    ("loss.tau", "inf"),
    ("loss.tau", "nan"),
    ("loss.tau", "0"),
    ("loss.tau", "-0.07"),
    ("optim.steps", "0"),
    ("optim.steps", "-5"),
    ("optim.steps", "1.5"),
    ("optim.batch_size", "0"),
    ("optim.epochs", "0"),
    ("optim.momentum", "1"),
    ("optim.momentum", "-0.5"),
    ("optim.weight_decay", "-1e-4"),
    ("optim.warmup_steps", "-1"),
    ("run.stop_after", "0"),
    ("run.cpu_threads", "0"),
    ("run.checkpoint_every", "0"),
    ("run.keep_checkpoints", "0"),
    ("run.log_every", "0"),
    ("run.seed", "-1"),
    ("run.device", "gpu0"),
    ("data.frame_skip", "0"),
    ("data.num_workers", "-1"),
    ("data.min_depth", "-1"),
    ("data.max_depth", "0.05"),
    ("data.image_hw", "4,4"),
    ("data.image_hw", "240"),
    ("data.kind", "lidar"),
    ("data.synthetic.scenes", "0"),
    ("augment.hflip", "2"),
    ("augment.flip_3d", "-0.1"),
    ("augment.scale_min", "0"),
    ("augment.scale_max", "0.5"),
    ("augment.crop_scale_min", "1.5"),
    ("augment.rotate_up", "inf"),
    ("loss.num_pairs", "1"),
    ("loss.embedding_dim", "0"),
    ("model.voxel_size", "0"),
    ("model.width", "-1"),
    ("model.backbone", "minkunet"),
    ("model.sparse_backend", "minkowski"),
    ("teacher.name", "clip"),
    ("run.progress", "maybe"),
]


@pytest.mark.parametrize(("field", "value"), PRETRAIN_VALUES, ids=[f"{f}={v}" for f, v in PRETRAIN_VALUES])
def test_pretrain_config_value(capsys, field, value):
    one_line_error(capsys, ["pretrain", "--print-config", f"--{field}", value], "pretrain", field)


FINETUNE_VALUES = [
    ("optim.lr_head", "-0.1"),
    ("optim.lr_head", "nan"),
    ("optim.lr_backbone", "-0.1"),
    ("optim.steps", "0"),
    ("optim.batch_size", "0"),
    ("optim.momentum", "1.5"),
    ("optim.poly_power", "0"),
    ("optim.head_warmup_steps", "-1"),
    ("labels.budget", "0"),
    ("labels.budget", "1.5"),
    ("model.voxel_size", "0"),
    ("model.voxel_size", "inf"),
    ("data.num_classes", "0"),
    ("data.num_workers", "-2"),
    ("augment.flip", "1.5"),
    ("augment.scale_min", "-1"),
    ("run.eval_every", "0"),
    ("run.seed", "-3"),
    ("model.backbone", "pointnet"),
    ("model.init", "no/such/backbone.safetensors"),
]


@pytest.mark.parametrize(("field", "value"), FINETUNE_VALUES, ids=[f"{f}={v}" for f, v in FINETUNE_VALUES])
def test_finetune_config_value(capsys, field, value):
    one_line_error(capsys, ["finetune", "--print-config", f"--{field}", value], "finetune", field)


def test_points_budget_must_be_a_whole_number(capsys):
    argv = ["finetune", "--print-config", "--labels.kind", "points", "--labels.budget", "0.5"]
    one_line_error(capsys, argv, "finetune", "labels.budget", "whole number")


def test_several_bad_values_are_all_named(capsys):
    argv = ["pretrain", "--print-config", "--optim.grad_clip", "-1", "--loss.tau", "inf"]
    argv += ["--run.stop_after", "0"]
    one_line_error(capsys, argv, "pretrain", "optim.grad_clip", "loss.tau", "run.stop_after", "> 0")


# ------------------------------------------------------------------------------ config files, flags
CONFIG_FILES: dict[str, tuple[str, str]] = {
    # name -> (file text, what the message names besides the file)
    "not-yaml": ("optim: [1, 2\n", "not valid YAML"),
    "a-list": ("- 1\n- 2\n", "expected a mapping"),
    "unknown-key": ("optim:\n  lr2: 0.1\n", "lr2"),
    "unknown-section": ("optimiser:\n  lr: 0.1\n", "optimiser"),
    "wrong-type": ("optim:\n  steps: many\n", "optim.steps"),
    "nan": ("optim:\n  momentum: .nan\n", "optim.momentum"),
    "bool-for-number": ("optim:\n  momentum: true\n", "optim.momentum"),
    "inf": ("optim:\n  weight_decay: .inf\n", "optim.weight_decay"),
    "negative-steps": ("optim:\n  steps: -3\n", "optim.steps"),
    "section-not-mapping": ("optim: 3\n", "optim"),
}


@pytest.mark.parametrize("name", sorted(CONFIG_FILES))
@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_config_file(capsys, tmp_path, name, command):
    text, names = CONFIG_FILES[name]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    # Values that parse but cannot be meant are named by field (validation); the rest by file too.
    named = [names] if name in ("inf", "negative-steps") else [path, names]
    one_line_error(capsys, [command, "--config", path, "--print-config"], command, *named)


def test_config_file_missing_or_a_folder(capsys, tmp_path):
    one_line_error(capsys, ["pretrain", "--config", tmp_path / "no.yaml"], "pretrain", "no.yaml", "not found")
    one_line_error(capsys, ["finetune", "--config", tmp_path / "no.yaml"], "finetune", "no.yaml")
    one_line_error(capsys, ["pretrain", "--config", tmp_path], "pretrain", str(tmp_path))


FLAGS = [
    (["pretrain", "--optim.lrr", "0.1"], "pretrain", "--optim.lrr"),
    (["pretrain", "--optim.lr"], "pretrain", "--optim.lr"),
    (["pretrain", "--preset", "fast"], "pretrain", "--preset"),
    (["finetune", "--nope"], "finetune", "--nope"),
    (["check-data", "{data}", "--frame-skip", "0"], "check-data", "--frame-skip"),
    (["check-data", "{data}", "--frame-skip", "-25"], "check-data", "--frame-skip"),
    (["check-data", "{data}", "--frame-skip", "x"], "check-data", "--frame-skip"),
    (["check-data", "{data}", "--workers", "-1"], "check-data", "--workers"),
    (["check-data", "{data}", "--format", "sun3d"], "check-data", "--format"),
    (["synth", "{tmp}/s", "--scenes", "0"], "synth", "--scenes"),
    (["synth", "{tmp}/s", "--frames-per-scene", "-1"], "synth", "--frames-per-scene"),
    (["synth", "{tmp}/s", "--height", "4"], "synth", "--height"),
    (["synth", "{tmp}/s", "--point-spacing", "0"], "synth", "--point-spacing"),
    (["synth", "{tmp}/s", "--point-spacing", "nan"], "synth", "--point-spacing"),
    (["synth", "{tmp}/s", "--workers", "0"], "synth", "--workers"),
    (["synth", "{tmp}/s", "--max-points", "0"], "synth", "--max-points"),
    (["cache-teacher", "{data}", "--frame-skip", "0"], "cache-teacher", "--frame-skip"),
    (["cache-teacher", "{data}", "--batch-size", "0"], "cache-teacher", "--batch-size"),
    (["cache-teacher", "{data}", "--image-size", "0", "32"], "cache-teacher", "--image-size"),
    (["cache-teacher", "{data}", "--teacher", "clip", "--out", "{tmp}/c"], "cache-teacher", "clip"),
    (["viz", "curves"], "viz curves", "run"),
    (["viz", "nothing"], "viz", "nothing"),
    (["compare"], "compare", "runs"),
    (["demo", "--budget", "foo", "--out", "{tmp}/d"], "demo", "--budget foo"),
    (["demo", "--budget", "points:0", "--out", "{tmp}/d"], "demo", "--budget points:0"),
    (["demo", "--budget", "scenes:2", "--out", "{tmp}/d"], "demo", "--budget scenes:2"),
    (["demo", "--scratch-lr-grid", "-1", "--out", "{tmp}/d"], "demo", "optim.lr_backbone"),
    (["demo", "--seeds", "-1"], "demo", "--seeds"),
    (["demo", "--pretrain-steps", "0"], "demo", "--pretrain-steps"),
]


@pytest.mark.parametrize(("argv", "command", "name"), FLAGS, ids=[" ".join(a[:4]) for a, _, _ in FLAGS])
def test_command_line_flag(capsys, scannet, tmp_path, argv, command, name):
    argv = [a.format(data=scannet, tmp=tmp_path) for a in argv]
    one_line_error(capsys, argv, command, name)


def test_unknown_command(capsys):
    assert main(["pretrian", "--preset", "demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ppkt: ") and "'pretrian'" in err


# ---------------------------------------------------------------------- data: ScanNet export faults
def _frame(root: Path, folder: str, index: int, suffix: str) -> Path:
    return root / SCENE / folder / f"{index}{suffix}"


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not an image at all")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])


def _bomb(path: Path) -> None:
    path.write_bytes(png_bomb_header())


def _rgb_depth(path: Path) -> None:
    Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8)).save(path, format="PNG")


def _half_size_depth(path: Path) -> None:
    Image.fromarray(images(1)[1][::2, ::2].copy()).save(path)


def _double_size_color(path: Path) -> None:
    Image.fromarray(np.repeat(np.repeat(images(1)[0], 2, 0), 2, 1)).save(path, format="JPEG")


@dataclass(frozen=True)
class FrameFault:
    folder: str
    suffix: str
    damage: Callable[[Path], None]
    reason: str
    names_also: str = ""  # a second file the message must name (the intrinsics)


FRAME_FAULTS = {
    "colour-garbage": FrameFault("color", ".jpg", _garbage, "undecodable image"),
    "colour-truncated": FrameFault("color", ".jpg", _truncate, "undecodable image"),
    "colour-bomb-30000x30000": FrameFault("color", ".jpg", _bomb, "undecodable image"),
    "colour-empty-file": FrameFault("color", ".jpg", lambda p: p.write_bytes(b""), "undecodable image"),
    "colour-double-size": FrameFault("color", ".jpg", _double_size_color, "size mismatch", "intrinsic_color"),
    "colour-missing": FrameFault("color", ".jpg", Path.unlink, "missing file"),
    "depth-garbage": FrameFault("depth", ".png", _garbage, "undecodable image"),
    "depth-truncated": FrameFault("depth", ".png", _truncate, "undecodable image"),
    "depth-bomb-30000x30000": FrameFault("depth", ".png", _bomb, "undecodable image"),
    "depth-rgb-png": FrameFault("depth", ".png", _rgb_depth, "undecodable image"),
    "depth-half-size": FrameFault("depth", ".png", _half_size_depth, "size mismatch", "intrinsic_depth"),
    "depth-all-zero": FrameFault(
        "depth", ".png", lambda p: Image.fromarray(np.zeros((30, 40), np.uint16)).save(p), "empty depth"
    ),
    "depth-beyond-max-depth": FrameFault(
        "depth",
        ".png",
        lambda p: Image.fromarray(np.full((30, 40), 9000, np.uint16)).save(p),
        "no depth within range",
    ),  # fmt: skip
    "depth-missing": FrameFault("depth", ".png", Path.unlink, "missing file"),
    "pose-nan": FrameFault("pose", ".txt", lambda p: p.write_text("nan " * 16), "invalid pose"),
    "pose-minus-inf": FrameFault("pose", ".txt", lambda p: p.write_text("-inf " * 16), "invalid pose"),
    "pose-not-rigid": FrameFault(
        "pose", ".txt", lambda p: write_matrix(p, np.diag([2.0, 1, 1, 1])), "invalid pose"
    ),
    "pose-words": FrameFault("pose", ".txt", lambda p: p.write_text("identity\n"), "invalid pose"),
    "pose-12-numbers": FrameFault("pose", ".txt", lambda p: p.write_text("1 0 0 0 " * 3), "invalid pose"),
    "pose-missing": FrameFault("pose", ".txt", Path.unlink, "missing file"),
}


@pytest.mark.parametrize("fault", sorted(FRAME_FAULTS))
def test_scannet_frame_fault(capsys, scannet, fault):
    """check-data counts the frame under its own file; --strict stops there with one line."""
    spec = FRAME_FAULTS[fault]
    bad = _frame(scannet, spec.folder, 1, spec.suffix)
    spec.damage(bad)
    assert main(["check-data", str(scannet), "--frame-skip", "1", "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["frames_usable"] == 3 and report["skipped"] == {spec.reason: 1}
    assert str(bad) in report["examples"][spec.reason][0]
    names = [bad, spec.reason] + ([spec.names_also] if spec.names_also else [])
    one_line_error(capsys, ["check-data", scannet, "--frame-skip", "1", "--strict"], "check-data", *names)


@pytest.mark.parametrize(
    ("name", "text"),
    [("missing", None), ("nan", "nan " * 16), ("negative-focal", "-60 0 19.5 0 0 60 14.5 0 0 0 1 0 0 0 0 1"),
     ("too-few-numbers", "60 0 19.5"), ("not-numbers", "fx fy cx cy")],
)  # fmt: skip
def test_scannet_intrinsics_fault(capsys, scannet, name, text):
    path = scannet / SCENE / "intrinsic" / "intrinsic_depth.txt"
    path.unlink() if text is None else path.write_text(text)
    assert main(["check-data", str(scannet), "--frame-skip", "1"]) == 1  # nothing usable
    out = capsys.readouterr()
    assert "bad intrinsics: 4" in out.out and str(path) in out.out
    one_line_error(capsys, ["check-data", scannet, "--strict"], "check-data", path)


def test_consistent_depth_size_mismatch_is_caught_in_pretraining_too(capsys, scannet, tmp_path):
    """Every depth image at half the size of intrinsic_depth.txt: never 'usable' with wrong geometry."""
    for index in range(4):
        _half_size_depth(_frame(scannet, "depth", index, ".png"))
    assert main(["check-data", str(scannet), "--frame-skip", "1"]) == 1
    assert "size mismatch: 4" in capsys.readouterr().out
    argv = ["pretrain", *TINY, "--data.root", scannet, "--run.out", tmp_path / "run"]
    one_line_error(capsys, argv, "pretrain", "unusable frames", "size mismatch", "intrinsic_depth.txt")


def test_depth_scaled_by_1000_is_reported(capsys, scannet, tmp_path):
    """Depth in micrometres (all beyond max_depth): check-data says so; pretraining gives one line."""
    for index in range(4):
        Image.fromarray(np.full((30, 40), 60000, np.uint16)).save(_frame(scannet, "depth", index, ".png"))
    assert main(["check-data", str(scannet), "--frame-skip", "1"]) == 1
    assert "no depth within range: 4" in capsys.readouterr().out
    argv = ["pretrain", *TINY, "--data.root", scannet, "--run.out", tmp_path / "run"]
    one_line_error(capsys, argv, "pretrain", "4 consecutive unusable frames", "pairs", str(scannet))


@pytest.mark.parametrize("where", ["missing-root", "root-is-a-file", "empty-folder", "scene-without-frames"])
def test_dataset_location(capsys, tmp_path, where):
    path = tmp_path / "data"
    if where == "root-is-a-file":
        path.write_text("x")
    elif where != "missing-root":
        path.mkdir()
        if where == "scene-without-frames":
            (path / SCENE / "color").mkdir(parents=True)
    # A dataset without any frame is a scan result (exit 1), the others cannot be scanned (exit 2).
    code = 1 if where == "scene-without-frames" else 2
    one_line_error(capsys, ["check-data", path], "check-data", path, code=code)


def test_pretrain_data_root_missing(capsys, tmp_path):
    argv = ["pretrain", *TINY, "--data.root", tmp_path / "nowhere", "--run.out", tmp_path / "run"]
    one_line_error(capsys, argv, "pretrain", tmp_path / "nowhere")


# -------------------------------------------------------------------------------- data: .sens faults
@pytest.fixture(scope="module")
def pristine_sens(tmp_path_factory) -> Path:
    return write_sens_file(tmp_path_factory.mktemp("sens") / "scene0000_00.sens")


def _sens(pristine_sens: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(pristine_sens, tmp_path / "scene0000_00.sens"))


def _sens_field(field: str, data: bytes) -> Callable[[Path], None]:
    return lambda path: patch_bytes(path, sens_header_offset(path, field), data)


def _le(value: int, size: int) -> bytes:
    return value.to_bytes(size, "little")


SENS_FAULTS = {
    # name -> (damage(path), reason named in the report)
    "frame-count-10^12": (_sens_field("num_frames", _le(10**12, 8)), "truncated file"),
    "version-7": (_sens_field("version", _le(7, 4)), "undecodable image"),
    "sensor-name-length-huge": (_sens_field("name_len", _le(2**40, 8)), "undecodable image"),
    "cut-in-header": (lambda p: p.write_bytes(p.read_bytes()[:100]), "truncated file"),
    "depth-shift-0": (_sens_field("depth_shift", b"\0\0\0\0"), "bad depth scale"),
    "depth-compression-occi": (_sens_field("depth_compression", _le(2, 4)), "undecodable image"),
    "colour-compression-9": (_sens_field("color_compression", _le(9, 4)), "undecodable image"),
}


@pytest.mark.parametrize("fault", sorted(SENS_FAULTS))
def test_sens_file_fault(capsys, pristine_sens, tmp_path, fault):
    path = _sens(pristine_sens, tmp_path)
    damage, reason = SENS_FAULTS[fault]
    damage(path)
    status = main(["check-data", str(path), "--frame-skip", "1"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err and f"{reason}: " in out.out and str(path) in out.out
    # A corrupt frame count still leaves the 3 frames that are there; the other faults leave none.
    assert status == (0 if fault == "frame-count-10^12" else 1)
    one_line_error(capsys, ["check-data", path, "--frame-skip", "1", "--strict"], "check-data", path, reason)


def test_sens_corrupt_frame_count_does_not_hang(pristine_sens, tmp_path):
    import time

    from ppkt.data.sens import SensFrames

    path = _sens(pristine_sens, tmp_path)
    patch_bytes(path, sens_header_offset(path, "num_frames"), (10**12).to_bytes(8, "little"))
    started = time.perf_counter()
    frames = SensFrames(path, frame_skip=1)
    assert time.perf_counter() - started < 2.0
    assert len(frames) == 3 and frames.report.skipped == {"truncated file": 1}
    assert "can hold at most" in frames.report.examples["truncated file"][0]


def _sens_frame_damage(path: Path, what: str) -> None:
    import struct

    start = sens_header_offset(path, "first_frame")
    data = path.read_bytes()
    color_bytes, depth_bytes = struct.unpack_from("<2Q", data, start + 80)
    colour_at = start + 96
    if what == "colour-bytes":
        patch_bytes(path, colour_at, b"\0" * 64)
    elif what == "depth-zlib":
        patch_bytes(path, colour_at + color_bytes, b"\xff" * 16)
    elif what == "pose-nan":
        patch_bytes(path, start, np.full(16, np.nan, "<f4").tobytes())
    elif what == "cut-in-frame":
        path.write_bytes(data[: colour_at + color_bytes + 10])


@pytest.mark.parametrize("what", ["colour-bytes", "depth-zlib", "pose-nan", "cut-in-frame"])
def test_sens_frame_fault(capsys, pristine_sens, tmp_path, what):
    path = _sens(pristine_sens, tmp_path)
    _sens_frame_damage(path, what)
    main(["check-data", str(path), "--frame-skip", "1"])
    out = capsys.readouterr().out
    assert "frames skipped: " in out and f"{path}" in out and "frames skipped: 0" not in out
    one_line_error(capsys, ["check-data", path, "--frame-skip", "1", "--strict"], "check-data", path)


# --------------------------------------------------------------------- data: lidar + camera formats
@pytest.fixture
def nuscenes(tmp_path) -> Path:
    root = tmp_path / "nuscenes"
    write_nuscenes(root, scenes=("scene-0061",), samples_per_scene=1, num_points=30, with_lidarseg=False)
    return root


def _edit_table(root: Path, name: str, edit: Callable[[list], object]) -> Path:
    import json

    path = root / "v1.0-mini" / f"{name}.json"
    rows = json.loads(path.read_text())
    result = edit(rows)
    path.write_text(json.dumps(rows if result is None else result))
    return path


def _drop(field: str, everywhere: bool = False) -> Callable[[list], None]:
    def edit(rows: list) -> None:
        for row in rows if everywhere else rows[:1]:
            row.pop(field)

    return edit


def _set_rotation(rows: list) -> None:
    for row in rows:
        row["rotation"] = [1, 2]


NUSCENES_FAULTS = {
    # name -> (table, edit(rows) -> new rows or None, what the message names)
    "sample_data-without-calibrated_sensor_token": (
        "sample_data", _drop("calibrated_sensor_token"), "calibrated_sensor_token"
    ),
    "sample_data-without-filename": ("sample_data", _drop("filename"), "filename"),
    "sensor-without-channel": ("sensor", _drop("channel"), "channel"),
    "scene-table-not-a-list": ("scene", lambda rows: {"scenes": rows}, "list"),
    "ego_pose-rotation-missing": ("ego_pose", _drop("rotation", everywhere=True), "ego_pose"),
    "calibrated_sensor-bad-quaternion": ("calibrated_sensor", _set_rotation, "calibrated_sensor"),
}  # fmt: skip


@pytest.mark.parametrize("fault", sorted(NUSCENES_FAULTS))
def test_nuscenes_table_fault(capsys, nuscenes, fault):
    table, edit, name = NUSCENES_FAULTS[fault]
    path = _edit_table(nuscenes, table, edit)
    one_line_error(capsys, ["check-data", nuscenes, "--format", "nuscenes"], "check-data", path.name, name)


def test_nuscenes_table_not_json(capsys, nuscenes):
    path = nuscenes / "v1.0-mini" / "sample.json"
    path.write_text("[{")
    one_line_error(capsys, ["check-data", nuscenes, "--format", "nuscenes"], "check-data", path, "JSON")


@pytest.mark.parametrize("what", ["camera-bomb", "camera-garbage", "lidar-truncated"])
def test_nuscenes_sample_file_fault(capsys, nuscenes, what):
    if what == "lidar-truncated":
        bad = next((nuscenes / "samples" / "LIDAR_TOP").iterdir())
        bad.write_bytes(bad.read_bytes()[:7])
    else:
        bad = next((nuscenes / "samples" / "CAM_FRONT").iterdir())
        _bomb(bad) if what == "camera-bomb" else _garbage(bad)
    main(["check-data", str(nuscenes), "--format", "nuscenes"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err and str(bad) in out.out
    one_line_error(capsys, ["check-data", nuscenes, "--format", "nuscenes", "--strict"], "check-data", bad)


@pytest.mark.parametrize("what", ["calib-missing", "calib-nan", "velodyne-truncated", "image-bomb"])
def test_kitti_fault(capsys, tmp_path, what):
    root = tmp_path / "kitti"
    write_kitti_object(root, frames=2, num_points=50)
    training = root / "training"
    if what == "calib-missing":
        bad = training / "calib" / "000001.txt"
        bad.unlink()
    elif what == "calib-nan":
        bad = training / "calib" / "000001.txt"
        bad.write_text(bad.read_text().replace("P2: ", "P2: nan "))
    elif what == "velodyne-truncated":
        bad = training / "velodyne" / "000001.bin"
        bad.write_bytes(bad.read_bytes()[:30])
    else:
        bad = training / "image_2" / "000001.png"
        _bomb(bad)
    main(["check-data", str(root), "--format", "kitti"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err and str(bad) in out.out
    one_line_error(capsys, ["check-data", root, "--format", "kitti", "--strict"], "check-data", bad)


@pytest.mark.parametrize("what", ["velodyne-truncated", "labels-short", "calib-missing", "image-garbage"])
def test_semantickitti_fault(capsys, tmp_path, what):
    root = tmp_path / "semkitti"
    seq = write_semantickitti(root, sequences=("00",), frames=2, num_points=40) / "00"
    bad = {
        "velodyne-truncated": seq / "velodyne" / "000000.bin",
        "labels-short": seq / "labels" / "000000.label",
        "calib-missing": seq / "calib.txt",
        "image-garbage": seq / "image_2" / "000000.png",
    }[what]
    if what == "calib-missing":
        bad.unlink()
    elif what == "image-garbage":
        _garbage(bad)
    else:
        bad.write_bytes(bad.read_bytes()[:30])
    main(["check-data", str(root), "--format", "semantickitti"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err and str(bad) in out.out + out.err
    argv = ["check-data", root, "--format", "semantickitti", "--strict"]
    one_line_error(capsys, argv, "check-data", bad)


# ------------------------------------------------------------------------ data: 7-Scenes and TUM
def _write_7scenes(root: Path, frames: int = 3) -> Path:
    seq = root / "chess" / "seq-01"
    seq.mkdir(parents=True)
    (root / "camera-intrinsics.txt").write_text("60 0 19.5\n0 60 14.5\n0 0 1\n")
    for index in range(frames):
        color, depth = images(index)
        Image.fromarray(color[::2, ::2].copy()).save(seq / f"frame-{index:06d}.color.png")
        Image.fromarray(depth).save(seq / f"frame-{index:06d}.depth.png")
        write_matrix(seq / f"frame-{index:06d}.pose.txt", pose(index))
    return seq


SEVEN_SCENES_FAULTS = {
    # name -> (file of frame 1 to damage, damage, reason)
    "pose-nan": ("pose.txt", lambda p: p.write_text("nan " * 16), "invalid pose"),
    "colour-garbage": ("color.png", _garbage, "undecodable image"),
    "colour-bomb": ("color.png", _bomb, "undecodable image"),
    "depth-half-size": ("depth.png", _half_size_depth, "size mismatch"),
    "depth-missing": ("depth.png", Path.unlink, "missing file"),
}


@pytest.mark.parametrize("fault", sorted(SEVEN_SCENES_FAULTS))
def test_seven_scenes_fault(capsys, tmp_path, fault):
    suffix, damage, reason = SEVEN_SCENES_FAULTS[fault]
    seq = _write_7scenes(tmp_path / "7scenes")
    bad = seq / f"frame-000001.{suffix}"
    damage(bad)
    assert main(["check-data", str(tmp_path / "7scenes"), "--format", "7scenes"]) == 0
    out = capsys.readouterr().out
    assert f"{reason}: 1" in out and str(bad) in out
    argv = ["check-data", tmp_path / "7scenes", "--format", "7scenes", "--strict"]
    one_line_error(capsys, argv, "check-data", bad, reason)


def test_seven_scenes_bad_intrinsics_file(capsys, tmp_path):
    _write_7scenes(tmp_path / "7scenes")
    bad = tmp_path / "7scenes" / "camera-intrinsics.txt"
    bad.write_text("60 0 19.5\n0 -60 14.5\n0 0 1\n")
    assert main(["check-data", str(tmp_path / "7scenes"), "--format", "7scenes"]) == 1
    assert "bad intrinsics: 3" in capsys.readouterr().out
    argv = ["check-data", tmp_path / "7scenes", "--format", "7scenes", "--strict"]
    one_line_error(capsys, argv, "check-data", bad)


def _write_tum(seq: Path, frames: int = 3) -> Path:
    (seq / "rgb").mkdir(parents=True)
    (seq / "depth").mkdir()
    rgb, depth, truth = ["# rgb"], ["# depth"], ["# ground truth"]
    for index in range(frames):
        t = 100.0 + index / 30
        Image.fromarray(np.full((480, 640, 3), 100, np.uint8)).save(seq / "rgb" / f"{t:.6f}.png")
        Image.fromarray(np.full((480, 640), 5000, np.uint16)).save(seq / "depth" / f"{t:.6f}.png")
        rgb.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth.append(f"{t:.6f} depth/{t:.6f}.png")
        truth.append(f"{t:.4f} 0 0 0 0 0 0 1")
    for name, lines in (("rgb.txt", rgb), ("depth.txt", depth), ("groundtruth.txt", truth)):
        (seq / name).write_text("\n".join(lines) + "\n")
    return seq


TUM_FAULTS = {
    # name -> (list file, line appended, what the message names)
    "rgb-line-without-file": ("rgb.txt", "100.1", "rgb.txt:5"),
    "rgb-bad-timestamp": ("rgb.txt", "yesterday rgb/x.png", "rgb.txt:5"),
    "depth-nan-timestamp": ("depth.txt", "nan depth/x.png", "depth.txt:5"),
    "groundtruth-words": ("groundtruth.txt", "100.0333 a b c d e f g", "groundtruth.txt"),
    "groundtruth-quaternion-zero": ("groundtruth.txt", "100.0334 0 0 0 0 0 0 0", "groundtruth.txt"),
}


@pytest.mark.parametrize("fault", sorted(TUM_FAULTS))
def test_tum_fault(capsys, tmp_path, fault):
    name, line, names = TUM_FAULTS[fault]
    seq = _write_tum(tmp_path / "rgbd_dataset_freiburg1_desk")
    with open(seq / name, "a") as handle:
        handle.write(line + "\n")
    if name == "groundtruth.txt":  # the bad pose is the nearest one of frame 1 (t = 100.0333)
        lines = (seq / name).read_text().splitlines()
        (seq / name).write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    main(["check-data", str(seq), "--format", "tum"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err and names in out.out
    one_line_error(capsys, ["check-data", seq, "--format", "tum", "--strict"], "check-data", names)


# ----------------------------------------------------------------------- pretraining at run time
def test_bomb_and_truncated_images_are_counted_skips_in_pretraining(capsys, scannet, tmp_path):
    _bomb(_frame(scannet, "color", 1, ".jpg"))
    _truncate(_frame(scannet, "depth", 2, ".png"))
    out = tmp_path / "run"
    argv = ["pretrain", *TINY, "--optim.steps", "2", "--data.root", scannet, "--run.out", out]
    assert main([str(a) for a in argv]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "skipped frames: " in captured.out
    assert "skipped frames: 0" not in captured.out


def test_skips_inside_dataloader_workers_reach_the_main_process_with_their_file(scannet):
    import torch

    from ppkt.data.scannet import ScanNetFrames
    from ppkt.train.batch import Collator
    from ppkt.train.config import AugmentConfig, DataConfig
    from ppkt.train.dataset import PretrainDataset

    bad = _frame(scannet, "color", 0, ".jpg")
    _bomb(bad)
    frames = ScanNetFrames(scannet, frame_skip=1)
    data = DataConfig(image_hw=(24, 32))
    dataset = PretrainDataset(frames, data, AugmentConfig(), "rgb", seed=0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=2, num_workers=1, collate_fn=Collator(0.05), sampler=[(0, 0), (2, 0)]
    )
    batch = next(iter(loader))
    assert len(batch.skipped) == 1 and str(bad) in batch.skipped[0] and "undecodable" in batch.skipped[0]


def test_every_frame_unusable_with_dataloader_workers(capsys, scannet, tmp_path):
    for index in range(4):
        Image.fromarray(np.zeros((30, 40), np.uint16)).save(_frame(scannet, "depth", index, ".png"))
    argv = ["pretrain", *TINY, "--data.num_workers", "1", "--data.root", scannet, "--run.out", tmp_path / "r"]
    one_line_error(capsys, argv, "pretrain", "4 consecutive unusable frames", "pairs", str(scannet))


def test_pretrain_output_under_a_regular_file(capsys, pristine, tmp_path):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "run"
    argv = ["pretrain", *TINY, "--data.root", pristine, "--run.out", out]
    one_line_error(capsys, argv, "pretrain", tmp_path / "file", "not a directory")


@pytest.mark.parametrize("command", ["finetune", "synth", "cache-teacher", "viz-curves"])
def test_output_under_a_regular_file(capsys, pristine, pretrain_run, tmp_path, command):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "out"
    argv = {
        "finetune": ["finetune", "--preset", "demo-finetune", "--data.root", tmp_path, "--run.out", out],
        "synth": ["synth", out, "--scenes", "1", "--frames-per-scene", "1", "--height", "24", "--width", "9"],
        "cache-teacher": ["cache-teacher", pristine, "--frame-skip", "1", "--image-size", "24", "32",
                          "--stage", "stride8", "--out", out],
        "viz-curves": ["viz", "curves", pretrain_run, "--out", out / "curves.png"],
    }[command]  # fmt: skip
    if command == "viz-curves":
        pytest.importorskip("matplotlib")
    one_line_error(capsys, argv, command.replace("-curves", ""), blocker, "not a directory")


def test_pretrain_output_is_a_regular_file(capsys, pristine, tmp_path):
    out = tmp_path / "run"
    out.write_text("x")
    one_line_error(capsys, ["pretrain", *TINY, "--data.root", pristine, "--run.out", out], "pretrain", out)


def test_pretrain_read_only_output_folder(capsys, pristine, tmp_path, monkeypatch):
    # Tests may run as root, for whom chmod does not stop a write: refuse it as a read-only mount would.
    parent = tmp_path / "readonly"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(parent)):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    argv = ["pretrain", *TINY, "--data.root", pristine, "--run.out", parent / "run"]
    one_line_error(capsys, argv, "pretrain", parent / "run", "permission denied")


@pytest.mark.parametrize("command", ["pretrain", "finetune", "synth"])
def test_disk_full(capsys, pristine, tmp_path, monkeypatch, command):
    """A full disk while writing (simulated: every atomic write's fsync raises ENOSPC)."""
    import ppkt.utils.io as io

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.os, "fsync", full)
    out = tmp_path / "out"
    argv = {
        "pretrain": ["pretrain", *TINY, "--data.root", pristine, "--run.out", out],
        "finetune": [
            "finetune",
            "--preset",
            "demo-finetune",
            "--data.root",
            tmp_path / "s",
            "--run.out",
            out,
        ],
        "synth": ["synth", out, "--scenes", "1", "--frames-per-scene", "1", "--height", "24", "--width", "8"],
    }[command]
    line = one_line_error(capsys, argv, command, "disk full")
    assert str(tmp_path) in line


def test_disk_full_while_writing_a_checkpoint(capsys, pristine, tmp_path, monkeypatch):
    """safetensors reports a full disk with its own error type; it still becomes one line."""
    from safetensors import SafetensorError

    import ppkt.utils.weights as weights

    def full(*args, **kwargs):
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: ""})'
        )

    monkeypatch.setattr(weights, "save_file", full)
    out = tmp_path / "run"
    argv = ["pretrain", *TINY, "--data.root", pristine, "--run.out", out]
    one_line_error(capsys, argv, "pretrain", out, "model.safetensors", "disk full")


def test_ctrl_c_is_one_line_and_exit_130(capsys, pristine, tmp_path, monkeypatch):
    from ppkt.train import loop

    class Interrupted(KeyboardInterrupt):
        pass

    def interrupted(*args, **kwargs):
        raise Interrupted("interrupted at step 3; resume with: ppkt pretrain --resume runs/x")

    monkeypatch.setattr(loop, "build_model", interrupted)
    argv = ["pretrain", *TINY, "--data.root", pristine, "--run.out", tmp_path / "run"]
    one_line_error(capsys, argv, "pretrain", "interrupted at step 3; resume with:", code=130)

    def plain(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "build_model", plain)
    argv = ["pretrain", *TINY, "--data.root", pristine, "--run.out", tmp_path / "run2"]
    assert one_line_error(capsys, argv, "pretrain", code=130) == "ppkt pretrain: interrupted"


def test_debug_flag_and_environment_show_the_traceback(pristine, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "check-data", str(tmp_path / "nowhere")])
    with pytest.raises(ValueError, match="optim.grad_clip"):
        main(["pretrain", "--print-config", "--optim.grad_clip", "-1", "--debug"])
    monkeypatch.setenv("PPKT_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(["check-data", str(tmp_path / "nowhere")])


def test_bugs_keep_their_traceback(monkeypatch, tmp_path):
    """Only user errors become one line: an internal error (here a ZeroDivisionError) is not hidden."""
    from ppkt.data import check

    monkeypatch.setattr(check, "scan_dataset", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["check-data", str(tmp_path)])


# ----------------------------------------------------------------------------- fine-tuning data
@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    from ppkt.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("labelled") / "rooms"
    return generate_dataset(
        root, scenes=2, frames_per_scene=1, image_hw=(24, 32), max_points=2000, progress=False
    )


@pytest.mark.parametrize("what", ["mesh-truncated", "labels-missing", "mesh-garbage", "split-empty"])
def test_finetune_scene_fault(capsys, labelled, tmp_path, what):
    root = Path(shutil.copytree(labelled, tmp_path / "rooms"))
    scene = (root / "scannetv2_train.txt").read_text().split()[0]
    mesh = root / scene / f"{scene}_vh_clean_2.ply"
    bad = {
        "mesh-truncated": mesh,
        "mesh-garbage": mesh,
        "labels-missing": root / scene / f"{scene}_vh_clean_2.labels.ply",
        "split-empty": root / "scannetv2_train.txt",
    }[what]
    if what == "mesh-truncated":
        bad.write_bytes(bad.read_bytes()[:400])
    elif what == "labels-missing":
        bad.unlink()
    else:
        bad.write_text("" if what == "split-empty" else "ply\nformat nonsense\n")
    argv = ["finetune", "--preset", "demo-finetune", "--data.kind", "scannet", "--data.root", root,
            "--model.backbone", "res16unet14", "--model.width", "0.25", "--optim.steps", "1",
            "--optim.batch_size", "1", "--run.out", tmp_path / "ft", "--run.progress", "false"]  # fmt: skip
    one_line_error(capsys, argv, "finetune", bad)


# -------------------------------------------------------------------- checkpoints and run folders
def test_evaluate_a_pretraining_run(capsys, pretrain_run):
    one_line_error(capsys, ["evaluate", pretrain_run], "evaluate", pretrain_run, "pretraining run")


def test_finetune_init_with_another_voxel_size(capsys, backbone, tmp_path):
    argv = ["finetune", "--preset", "demo-finetune", "--init", backbone, "--model.voxel_size", "0.02",
            "--model.backbone", "res16unet14", "--model.width", "0.25", "--data.root", tmp_path / "syn",
            "--data.synthetic.scenes", "2", "--data.synthetic.frames_per_scene", "1",
            "--run.out", tmp_path / "ft", "--run.progress", "false"]  # fmt: skip
    one_line_error(capsys, argv, "finetune", backbone, "voxel_size")


CHECKPOINT_FAULTS = {
    "garbage": lambda p: p.write_bytes(b"\x00" * 100),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:200]),
    "empty": lambda p: p.write_bytes(b""),
}


@pytest.mark.parametrize("fault", sorted(CHECKPOINT_FAULTS))
def test_evaluate_broken_checkpoint(capsys, backbone, tmp_path, fault):
    path = Path(shutil.copy(backbone, tmp_path / "model.safetensors"))
    CHECKPOINT_FAULTS[fault](path)
    one_line_error(capsys, ["evaluate", path], "evaluate", path)


def test_evaluate_a_backbone_not_a_segmentation_checkpoint(capsys, backbone):
    one_line_error(capsys, ["evaluate", backbone], "evaluate", backbone, "not a ppkt segmentation checkpoint")


def test_evaluate_missing_checkpoint_and_empty_run_folder(capsys, tmp_path):
    one_line_error(capsys, ["evaluate", tmp_path / "x.safetensors"], "evaluate", "x.safetensors")
    one_line_error(capsys, ["evaluate", tmp_path], "evaluate", tmp_path, "no best checkpoint")


def test_resume_with_a_corrupt_checkpoint(capsys, pretrain_run, tmp_path):
    run = Path(shutil.copytree(pretrain_run, tmp_path / "run"))
    weights = next(run.glob("checkpoints/step_*/model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    argv = ["pretrain", "--resume", run, "--run.out", run, "--optim.steps", "2"]
    one_line_error(capsys, argv, "pretrain", weights.name)


def test_resume_with_no_steps_left(capsys, pretrain_run):
    argv = ["pretrain", "--resume", pretrain_run, "--optim.steps", "1"]
    one_line_error(capsys, argv, "pretrain", "optim.steps", "already done 1 steps")


@pytest.mark.parametrize(("name", "text"), [("config.yaml", "a: [1"), ("metrics.json", "{best")])
def test_compare_a_run_with_a_broken_file(capsys, tmp_path, name, text):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("origin: demo-finetune\n")
    (run / "metrics.json").write_text("{}")
    (run / name).write_text(text)
    one_line_error(capsys, ["compare", run], "compare", run / name)


def test_export_and_compare_on_wrong_folders(capsys, tmp_path, pretrain_run):
    one_line_error(capsys, ["export", tmp_path], "export", tmp_path)
    (tmp_path / "file").write_text("x")
    argv = ["export", pretrain_run, "--out", tmp_path / "file" / "b.safetensors"]
    one_line_error(capsys, argv, "export", tmp_path / "file")
    one_line_error(capsys, ["compare", tmp_path / "nope"], "compare", "nope")
    one_line_error(capsys, ["viz", "curves", tmp_path / "nope"], "viz", "nope")


def test_pickle_payloads_never_run(capsys, tmp_path):
    """A .pth whose unpickling would run code: refused as teacher weights and as a backbone."""
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"conv1.weight": Payload()}, protocol=2))
    argv = ["pretrain", "--print-config", "--teacher.weights", evil, "--teacher.name", "resnet18"]
    assert main([str(a) for a in argv]) == 0  # weights are read when the run starts, not by --print-config
    capsys.readouterr()
    from ppkt.teachers import build_teacher

    with pytest.raises(ValueError, match="weights-only"):
        build_teacher("resnet18", weights=evil)
    renamed = Path(shutil.copy(evil, tmp_path / "evil.safetensors"))
    one_line_error(capsys, ["evaluate", renamed], "evaluate", renamed)
    assert not marker.exists()


# ------------------------------------------------------------------ what a shell sees (subprocesses)
@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["pretrain", "--optim.grad_clip", "-1", "--print-config"], "optim.grad_clip"),
        (["check-data", "/no/such/dataset"], "/no/such/dataset"),
        (["finetune", "--loss.tau", "1"], "--loss.tau"),
    ],
)
def test_in_a_shell(argv, expect):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    env.pop("PPKT_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "ppkt", *argv], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and expect in result.stderr, result.stderr


def test_debug_in_a_shell_prints_the_traceback():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src"), "PPKT_DEBUG": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "ppkt", "check-data", "/no/such/dataset"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" in result.stderr and "FileNotFoundError" in result.stderr


def test_evaluate_names_a_run_folder_without_a_best_model(capsys, tmp_path):
    """A fine-tuning run stopped before its first evaluation is told apart from a pretraining run."""
    finetuning = tmp_path / "ft"
    (finetuning / "checkpoints" / "step_00000001").mkdir(parents=True)
    (finetuning / "log.jsonl").write_text("")
    line = one_line_error(capsys, ["evaluate", finetuning], "evaluate", "without a best checkpoint", "--resume")
    assert "pretraining" not in line
    pretraining = tmp_path / "pre"
    (pretraining / "checkpoints" / "step_00000001").mkdir(parents=True)
    one_line_error(capsys, ["evaluate", pretraining], "evaluate", "a pretraining run", "ppkt export")

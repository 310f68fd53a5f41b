"""Published limited-label files (the ScanNet data-efficient benchmark's scene lists and per-scene
point indices), read in each supported format, used unchanged and copied into the run folder."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_eval_finetune import tiny_config

from ppkt.data.types import IGNORE_LABEL
from ppkt.eval.finetune import finetune
from ppkt.eval.splits import SplitMismatch, load_published_split, read_point_indices, read_scene_list

POOL = ["scene0000_00", "scene0001_00", "scene0002_00"]
LABELS = {sid: np.array([0, 1, IGNORE_LABEL, 2, 3, 1, 0, 2], dtype=np.int64) for sid in POOL}


def test_scene_list_formats(tmp_path):
    path = tmp_path / "scannetv2_train_1.txt"
    path.write_text("# 1 %\nscene0000_00\nscene0002_00.pth\n/data/scans/scene0001_00\n\n")
    assert read_scene_list(path) == ["scene0000_00", "scene0002_00", "scene0001_00"]
    path.write_text("scene0000_00\nscene0000_00.pth\n")
    with pytest.raises(SplitMismatch, match="listed twice"):
        read_scene_list(path)
    path.write_text("# nothing\n")
    with pytest.raises(SplitMismatch, match="empty"):
        read_scene_list(path)


@pytest.mark.parametrize("suffix", [".json", ".npz", "", ".pth-tensors"])
def test_point_index_formats(tmp_path, suffix):
    mapping = {"scene0000_00": [5, 1, 3], "scene0001_00": [0]}
    path = tmp_path / f"points20{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(mapping))
    elif suffix == ".npz":
        np.savez(path, **{k: np.array(v) for k, v in mapping.items()})
    elif suffix == "":  # the benchmark's files: torch.save of a dict of numpy arrays, no suffix
        torch.save({k: np.array(v, dtype=np.int64) for k, v in mapping.items()}, path)
    else:
        torch.save({k: torch.tensor(v) for k, v in mapping.items()}, path)
    indices = read_point_indices(path)
    assert {k: v.tolist() for k, v in indices.items()} == {"scene0000_00": [1, 3, 5], "scene0001_00": [0]}


def test_point_index_file_never_runs_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "points20"
    torch.save({"scene0000_00": Evil()}, path)
    with pytest.raises(SplitMismatch, match="not a point-index file"):
        read_point_indices(path)
    (tmp_path / "floats.json").write_text(json.dumps({"scene0000_00": [0.5]}))
    with pytest.raises(SplitMismatch, match="must be integers"):
        read_point_indices(tmp_path / "floats.json")


def test_published_split_is_used_unchanged_and_copied(tmp_path):
    scenes = tmp_path / "scannetv2_train_5.txt"
    scenes.write_text("scene0001_00\nscene0002_00\n")
    points = tmp_path / "points20.json"
    points.write_text(json.dumps({"scene0001_00": [0, 2, 3], "scene0002_00": [7], "scene9999_00": [1]}))
    split = load_published_split(
        POOL, LABELS.__getitem__, scene_list=scenes, point_indices=points, copy_to=tmp_path / "run" / "splits"
    )
    assert split.scenes == ("scene0001_00", "scene0002_00") and split.kind == "published"
    assert split.name == "published(scannetv2_train_5.txt, points20.json)"
    assert split.point_indices["scene0001_00"].tolist() == [0, 3]  # point 2 has no label in the data
    assert (tmp_path / "run" / "splits" / "points20.json").read_bytes() == points.read_bytes()
    assert (tmp_path / "run" / "splits" / "scannetv2_train_5.txt").read_bytes() == scenes.read_bytes()
    from ppkt.data.types import LabeledScene

    n = len(LABELS["scene0001_00"])
    scene = LabeledScene(
        np.zeros((n, 3), np.float32), np.zeros((n, 3), np.uint8), LABELS["scene0001_00"], "scene0001_00"
    )
    assert split.apply(scene).labels.tolist() == [0, -1, -1, 2, -1, -1, -1, -1]


def test_published_split_errors_name_the_file(tmp_path):
    points = tmp_path / "points50"
    torch.save({"scene0000_00": np.array([0, 99])}, points)
    common = dict(copy_to=tmp_path / "out")
    with pytest.raises(
        SplitMismatch, match=r"points50: scene 'scene0000_00' lists point 99 but has 8 points"
    ):
        load_published_split(
            ["scene0000_00"], LABELS.__getitem__, scene_list=None, point_indices=points, **common
        )
    torch.save({"scene0000_00": np.array([0, 7])}, points)
    with pytest.raises(SplitMismatch, match="no point indices for training scene 'scene0001_00'"):
        load_published_split(POOL[:2], LABELS.__getitem__, scene_list=None, point_indices=points, **common)
    listed = tmp_path / "list.txt"
    listed.write_text("scene0042_00\n")
    with pytest.raises(SplitMismatch, match="not training scenes of the data"):
        load_published_split(POOL, LABELS.__getitem__, scene_list=listed, point_indices=None, **common)
    with pytest.raises(ValueError, match="needs labels.scene_list"):
        load_published_split(POOL, LABELS.__getitem__, scene_list=None, point_indices=None, **common)


def test_finetune_with_published_files(tmp_path, rooms_source):
    train = rooms_source.scene_ids("train")
    points = tmp_path / "points20"
    torch.save({sid: np.arange(0, 600, 30) for sid in train}, points)
    scene_list = tmp_path / "scannetv2_train_20.txt"
    scene_list.write_text("\n".join(train[:2]) + "\n")
    cfg = tiny_config(tmp_path, kind="published")
    cfg = replace(cfg, labels=replace(cfg.labels, scene_list=scene_list, point_indices=points))
    cfg = replace(cfg, optim=replace(cfg.optim, steps=1))
    result = finetune(cfg, source=rooms_source)
    run = result.run_dir
    assert (run / "splits" / "points20").read_bytes() == points.read_bytes()
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    split_event = next(e for e in events if e["event"] == "split")
    assert (
        split_event["name"] == "published(scannetv2_train_20.txt, points20)"
        and split_event["train_scenes"] == 2
    )


def test_point_index_file_written_with_numpy_1(tmp_path):
    """The benchmark's files were pickled by numpy 1.x, whose arrays name ``numpy.core``."""
    import zipfile

    path = tmp_path / "points100"
    torch.save({"scene0000_00": np.array([4, 2], dtype=np.int64)}, path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    pickled = next(name for name in members if name.endswith("data.pkl"))
    assert b"numpy._core.multiarray" in members[pickled]
    members[pickled] = members[pickled].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert read_point_indices(path)["scene0000_00"].tolist() == [2, 4]


def test_help_of_the_commands_with_new_options_renders(capsys):
    from ppkt.cli import main

    for command in ("finetune", "pretrain", "check-data", "cache-teacher"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--labels.point_indices", "--data.label_set", "--data.up_axis", "rgbd-folder"):
        assert option in out

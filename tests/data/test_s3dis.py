"""S3DIS: the Aligned_Version layout, class labels from file names, malformed rows, area splits,
the finetune-s3dis preset through the CLI and the 6-fold runner at tiny size."""

import numpy as np
import pytest

from ppkt.data.s3dis import S3DIS_CLASS_NAMES, S3DISSceneSource, parse_xyzrgb
from ppkt.eval.presets import get_preset

TINY = [
    "--model.voxel_size", "0.25", "--data.num_workers", "0", "--model.backbone", "res16unet14",
    "--model.width", "0.25", "--optim.steps", "1", "--optim.batch_size", "1", "--run.eval_every", "1",
    "--run.progress", "false", "--run.device", "cpu", "--augment.max_points", "300",
]  # fmt: skip


def write_room(base, area, room, objects):
    folder = base / area / room / "Annotations"
    folder.mkdir(parents=True)
    for name, rows in objects.items():
        (folder / name).write_text("\n".join(" ".join(str(v) for v in row) for row in rows) + "\n")
    # The whole-room file is not read (its points are the annotations' union).
    (base / area / room / f"{room}.txt").write_text("not read\n")


def write_areas(root, areas=("Area_1", "Area_2", "Area_5")):
    rng = np.random.default_rng(0)
    base = root / "Stanford3dDataset_v1.2_Aligned_Version"
    for a, area in enumerate(areas):
        objects = {}
        for k, name in enumerate(("floor_1.txt", "wall_1.txt", "wall_2.txt", "chair_1.txt")):
            xyz = rng.uniform(0, 3, (60, 3)).round(3)
            rgb = np.full((60, 3), 50 * k + a)
            objects[name] = np.c_[xyz, rgb]
        write_room(base, area, f"office_{a + 1}", objects)
    return base


def test_room_is_the_union_of_its_annotations_labelled_by_file_name(tmp_path):
    base = write_areas(tmp_path)
    source = S3DISSceneSource(tmp_path)  # the parent of the Aligned_Version folder works too
    assert source.base == base and source.class_names == S3DIS_CLASS_NAMES and len(S3DIS_CLASS_NAMES) == 13
    assert source.rooms == ["Area_1/office_1", "Area_2/office_2", "Area_5/office_3"]
    scene = source.read("Area_2/office_2")
    assert scene.num_points == 240 and scene.points.dtype == np.float32 and scene.colors.dtype == np.uint8
    # files in name order: chair_1, floor_1, wall_1, wall_2
    names = [S3DIS_CLASS_NAMES[i] for i in scene.labels[::60]]
    assert names == ["chair", "floor", "wall", "wall"]
    assert scene.colors[0].tolist() == [151, 151, 151]  # chair_1: 50 * 3 + area index 1


def test_area_splits(tmp_path):
    write_areas(tmp_path)
    source = S3DISSceneSource(tmp_path)
    assert source.scene_ids("Area_5") == ["Area_5/office_3"]
    assert source.scene_ids("Area_1,Area_2,Area_3,Area_4,Area_6") == ["Area_1/office_1", "Area_2/office_2"]
    assert len(source.scene_ids("all")) == 3
    with pytest.raises(ValueError, match="expected 'all', an area"):
        source.scene_ids("train")
    with pytest.raises(FileNotFoundError, match="no S3DIS areas"):
        S3DISSceneSource(tmp_path / "Stanford3dDataset_v1.2_Aligned_Version" / "Area_1")


def test_malformed_rows_are_counted_named_skips(tmp_path):
    path = tmp_path / "ceiling_1.txt"
    path.write_text(
        "1 2 3 4 5 6\n1.0 2.0 2.5 103.0\x100000 5 6\n1 2 3 4 5\n\n7 8 9 10 11 12\n1 2 nan 4 5 6\n"
    )
    from ppkt.data.report import DataReport

    report = DataReport(root=str(tmp_path), format="s3dis")
    rows = parse_xyzrgb(path, report)
    assert rows.tolist() == [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]]
    assert report.skipped == {"malformed row": 3}
    assert [e.split(": ")[0] for e in report.examples["malformed row"]] == [f"{path}:{n}" for n in (2, 3, 6)]


def test_finetune_s3dis_preset_is_the_area5_protocol():
    cfg = get_preset("finetune-s3dis")
    assert cfg.data.kind == "s3dis" and cfg.data.num_classes == 13
    assert cfg.data.val_split == "Area_5" and "Area_5" not in cfg.data.train_split.split(",")
    assert sorted(cfg.data.train_split.split(",")) == ["Area_1", "Area_2", "Area_3", "Area_4", "Area_6"]


def test_finetune_s3dis_command_runs_on_a_layout_fixture(tmp_path, capsys):
    from ppkt.cli import main

    write_areas(tmp_path / "s3dis")
    args = ["finetune", "--preset", "finetune-s3dis", "--data.root", str(tmp_path / "s3dis"), *TINY]
    assert main([*args, "--run.out", str(tmp_path / "run")]) == 0
    assert "| mIoU |" in capsys.readouterr().out
    assert (tmp_path / "run" / "splits" / "scenes-1-seed0.json").is_file()


def test_six_fold_runner_prints_every_fold_and_the_mean(tmp_path):
    from ppkt.config import apply_overrides
    from ppkt.experiments.s3dis_folds import fold_config, format_folds, six_fold

    write_areas(tmp_path / "s3dis")
    overrides = {k.lstrip("-"): v for k, v in zip(TINY[::2], TINY[1::2], strict=False)}
    overrides |= {"data.root": str(tmp_path / "s3dis"), "run.out": str(tmp_path / "folds")}
    cfg = apply_overrides(get_preset("finetune-s3dis"), overrides)
    fold = fold_config(cfg, "Area_2")
    assert fold.data.val_split == "Area_2" and "Area_2" not in fold.data.train_split.split(",")
    assert fold.run.out == tmp_path / "folds" / "fold-Area_2"
    results = six_fold(cfg, folds=("Area_1", "Area_5"))
    assert [r.area for r in results] == ["Area_1", "Area_5"]
    text = format_folds(results)
    lines = text.splitlines()
    assert lines[0].startswith("Area_1: mIoU ") and lines[1].startswith("Area_5: mIoU ")
    mean = 100 * np.mean([r.metrics.miou for r in results])
    assert lines[2] == f"mean over 2 folds: mIoU {mean:.1f}"
    with pytest.raises(ValueError, match="is not one of"):
        fold_config(cfg, "Area_7")

"""ScanNet boxes from a small fixture written in ScanNet's own layout."""

import math
from pathlib import Path

import numpy as np
import pytest
from scannet_fixtures import write_scan

from ppkt.data.scannet_boxes import ScanNetDetectionSource, read_scannet_detection_scene
from ppkt.eval.detection.data import check_detection_scenes


def test_boxes_are_the_aligned_bounding_boxes_of_each_object(tmp_path):
    a = math.radians(30)
    alignment = np.array(
        [
            [math.cos(a), -math.sin(a), 0, 0.5],
            [math.sin(a), math.cos(a), 0, -1.0],
            [0, 0, 1, 0.1],
            [0, 0, 0, 1],
        ]
    )
    chair, table = write_scan(tmp_path, alignment=alignment)
    scene, skips = read_scannet_detection_scene(tmp_path / "scene0000_00")
    assert skips == []
    names = [scene.boxes.class_names[k] for k in scene.boxes.labels]
    assert names == ["chair", "table"]  # the wall is not a detection class
    np.testing.assert_allclose(scene.boxes.centers[0], (chair.min(0) + chair.max(0)) / 2, atol=1e-4)
    np.testing.assert_allclose(scene.boxes.sizes[1], table.max(0) - table.min(0), atol=1e-4)
    assert (scene.boxes.headings == 0).all()
    assert (scene.instance_ids == 0).sum() == 60 and (scene.instance_ids == 1).sum() == 80
    np.testing.assert_allclose(scene.points[:60], chair, atol=1e-4)  # points come back aligned
    source = ScanNetDetectionSource(tmp_path)
    assert source.scene_ids("train") == ["scene0000_00"] and len(source.read("scene0000_00").boxes) == 2


def test_bad_annotations_are_counted_and_named(tmp_path):
    segs = np.repeat([1, 2, 3, 0], [30, 30, 80, 50])
    segs[5] = 9  # a one-vertex chair object: zero size
    extra = [
        {"id": 3, "objectId": 3, "label": "chair", "segments": [42]},  # no vertices
        {"id": 4, "objectId": 4, "label": "chair", "segments": [9]},
    ]
    write_scan(tmp_path, extra_groups=extra, segs_override=segs)
    scene, skips = read_scannet_detection_scene(tmp_path / "scene0000_00")
    assert sorted((s.object_id, s.reason) for s in skips) == [(3, "no points"), (4, "non-positive size")]
    assert len(scene.boxes) == 2
    check = check_detection_scenes(ScanNetDetectionSource(tmp_path), ["scene0000_00", "scene0099_00"])
    assert check.skips == {"no points": 1, "non-positive size": 1} and check.scenes == 1 and check.boxes == 2
    assert "scene0000_00: object 3 'chair' (no points)" in check.named
    assert "scene0099_00" in check.failed and "not found" in check.failed["scene0099_00"]


def test_missing_or_malformed_annotation_files(tmp_path):
    write_scan(tmp_path)
    folder = tmp_path / "scene0000_00"
    (folder / "scene0000_00.aggregation.json").write_text("{not json")
    with pytest.raises(ValueError, match="aggregation.json"):
        read_scannet_detection_scene(folder)
    (folder / "scene0000_00.aggregation.json").unlink()
    with pytest.raises(FileNotFoundError, match="aggregation.json"):
        read_scannet_detection_scene(folder)
    (folder / "scene0000_00.txt").write_text("axisAlignment = 1 0 0\n")
    from ppkt.data.scannet_boxes import read_axis_alignment

    with pytest.raises(ValueError, match="16"):
        read_axis_alignment(folder / "scene0000_00.txt")


def test_detection_fine_tune_reads_scannet_scans(tmp_path):
    """The loop on ScanNet-layout scans: data.kind scannet builds the source from data.root."""
    import json as _json
    from dataclasses import replace

    from ppkt.eval.config import EvalRunConfig, LabelsConfig, ModelConfig
    from ppkt.eval.detection.config import (
        DetectionConfig,
        DetectionDataConfig,
        DetectionOptimConfig,
        VoteNetConfig,
    )
    from ppkt.eval.detection.loop import finetune_detection

    root = tmp_path / "scans"
    write_scan(root, "scene0000_00")
    write_scan(root, "scene0001_00")
    (root / "scannetv2_train.txt").write_text("scene0000_00\n")
    (root / "scannetv2_val.txt").write_text("scene0001_00\n")
    cfg = DetectionConfig(
        data=DetectionDataConfig(kind="scannet", root=root),
        labels=LabelsConfig(splits_dir=tmp_path / "splits"),
        model=ModelConfig(backbone="res16unet14", width=0.25, voxel_size=0.1),
        head=VoteNetConfig(num_seeds=32, num_proposals=8, hidden=16, proposal_hidden=16, num_heading_bins=1),
        optim=DetectionOptimConfig(steps=1, batch_size=1),
        run=EvalRunConfig(out=tmp_path / "run", eval_every=1, device="cpu", progress=False),
    )
    result = finetune_detection(cfg)
    summary = _json.loads((result.run_dir / "metrics.json").read_text())
    assert summary["best"]["classes"]["chair"]["ground_truth"] == 1
    assert summary["best"]["classes"]["table"]["ground_truth"] == 1
    with pytest.raises(ValueError, match="data.root"):
        finetune_detection(replace(cfg, data=replace(cfg.data, root=None)), overwrite=True)


def _bad_scans(root):
    """scene0000_00 with one bad annotation of each kind a ScanNet scan can have, and its frames;
    scene0001_00 whose mesh has a non-finite vertex (the whole scan is unreadable)."""
    from scannet_fixtures import WALL, write_frames

    segs = np.repeat([1, 2, 3, 0], [30, 30, 80, 50])
    segs[5] = 9  # a one-vertex object: zero size
    segs[140:145] = 7  # five wall vertices become an object whose vertices are unannotated
    labels = np.repeat([5, 7, WALL], [60, 80, 50])
    labels[140:145] = 0
    extra = [
        {"id": 3, "objectId": 3, "label": "chair", "segments": [42]},  # no vertices
        {"id": 4, "objectId": 4, "label": "chair", "segments": [9]},
        {"id": 5, "objectId": 5, "label": "lamp", "segments": [7]},
    ]
    write_scan(root, extra_groups=extra, segs_override=segs, labels_override=labels)
    pose = np.eye(4)
    pose[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # looking along +y
    write_frames(root / "scene0000_00", np.array([[50.0, 0, 31.5], [0, 50, 23.5], [0, 0, 1]]), [pose])
    write_scan(root, "scene0001_00")
    from ppkt.data.ply import read_ply_vertices, write_ply_vertices

    mesh_path = root / "scene0001_00" / "scene0001_00_vh_clean_2.ply"
    mesh = read_ply_vertices(mesh_path)
    mesh["x"][3] = np.nan
    write_ply_vertices(mesh_path, mesh)


def test_unknown_class_and_unreadable_scans_are_named(tmp_path):
    _bad_scans(tmp_path)
    scene, skips = read_scannet_detection_scene(tmp_path / "scene0000_00")
    assert sorted((s.object_id, s.reason) for s in skips) == [
        (3, "no points"), (4, "non-positive size"), (5, "unknown class")
    ]  # fmt: skip
    assert len(scene.boxes) == 2
    with pytest.raises(ValueError, match="scene0001_00_vh_clean_2.ply.*not finite"):
        read_scannet_detection_scene(tmp_path / "scene0001_00")


def test_check_data_counts_and_names_scannet_box_annotations(tmp_path, capsys):
    from ppkt.cli import main
    from ppkt.data.check import scan_dataset

    _bad_scans(tmp_path)
    report = scan_dataset(tmp_path, "scannet", frame_skip=1)
    assert report.frames_usable == 1
    notes = "\n".join(report.notes)
    assert "boxes: 1 of 2 annotated scans read" in notes
    assert "boxes: 2 usable, 3 annotations left out" in notes
    for reason in ("no points 1", "non-positive size 1", "unknown class 1"):
        assert reason in notes
    assert "left out: scene0000_00: object 5 'lamp' (unknown class)" in notes
    assert "left out: scene0000_00: object 3 'chair' (no points)" in notes
    assert "unreadable scan: scene0001_00:" in notes and "not finite" in notes
    # One scan folder is a root of its own.
    single = scan_dataset(tmp_path / "scene0000_00", "scannet", frame_skip=1)
    assert any("boxes: 1 of 1 annotated scans read" in n for n in single.notes)
    with pytest.raises(ValueError, match="not finite"):
        scan_dataset(tmp_path, "scannet", strict=True, frame_skip=1)
    assert main(["check-data", str(tmp_path), "--format", "scannet", "--frame-skip", "1"]) == 0
    out = capsys.readouterr().out
    assert "note: boxes: 2 usable, 3 annotations left out" in out
    assert main(["check-data", str(tmp_path), "--format", "scannet", "--frame-skip", "1", "--no-boxes"]) == 0
    assert "boxes:" not in capsys.readouterr().out


def _old_vote(nyu40_ids):
    """The class vote before the NYU40 reading (2ce7be6), naively: ids outside the 20 benchmark
    classes and 0 pool into one "other" (0); ties go to the smaller id; "other" is no box."""
    from collections import Counter

    from ppkt.data.boxes import SCANNET_DETECTION_NYU40_IDS
    from ppkt.data.scannet_classes import SCANNET20_NYU40_IDS

    counts = Counter(i if i in SCANNET20_NYU40_IDS else 0 for i in nyu40_ids)
    winner = min(counts, key=lambda i: (-counts[i], i))
    return winner if winner in SCANNET_DETECTION_NYU40_IDS else None


CABINET, OTHERPROP, CEILING, FLOOR = 3, 40, 22, 2


@pytest.mark.parametrize(
    "table_ids, expected",
    [
        ([CABINET] * 32 + [OTHERPROP] * 24 + [CEILING] * 24, None),  # 40/30/30: "other" wins, no box
        ([CABINET] * 32 + [1] * 24 + [FLOOR] * 24, CABINET),  # wall and floor vote each for themselves
        ([CABINET] * 32 + [0] * 48, None),  # mostly unannotated: no box, but not an "unknown class"
        ([CABINET] * 40 + [OTHERPROP] * 40, None),  # a tie goes to "other"
        ([CABINET] * 41 + [OTHERPROP] * 20 + [0] * 19, CABINET),
    ],
)
def test_the_class_vote_pools_the_ids_outside_the_benchmark_classes(tmp_path, table_ids, expected):
    from scannet_fixtures import CHAIR, WALL

    from ppkt.data.boxes import SCANNET_DETECTION_CLASS_NAMES, SCANNET_DETECTION_NYU40_IDS

    assert _old_vote(table_ids) == expected
    write_scan(tmp_path, labels_override=np.concatenate([[CHAIR] * 60, table_ids, [WALL] * 50]))
    scene, skips = read_scannet_detection_scene(tmp_path / "scene0000_00")
    assert skips == []
    names = [scene.boxes.class_names[k] for k in scene.boxes.labels]
    table = (
        []
        if expected is None
        else [SCANNET_DETECTION_CLASS_NAMES[SCANNET_DETECTION_NYU40_IDS.index(expected)]]
    )
    assert names == ["chair", *table]


def test_check_data_reads_each_scan_once(tmp_path, monkeypatch):
    import ppkt.data.scannet_boxes as scannet_boxes
    from ppkt.data.check import scan_dataset

    _bad_scans(tmp_path)  # scene0001_00 is unreadable
    write_scan(tmp_path, "scene0002_00")
    reads = []
    real = scannet_boxes.read_scannet_detection_scene

    def spy(scene_dir):
        reads.append(Path(scene_dir).name)
        return real(scene_dir)

    monkeypatch.setattr(scannet_boxes, "read_scannet_detection_scene", spy)
    report = scan_dataset(tmp_path, "scannet", frame_skip=1)
    assert reads == ["scene0000_00", "scene0001_00", "scene0002_00"]
    assert any("boxes: 2 of 3 annotated scans read" in n for n in report.notes)
    reads.clear()
    with pytest.raises(ValueError, match="scene0001_00_vh_clean_2.ply.*not finite"):
        scan_dataset(tmp_path, "scannet", strict=True, frame_skip=1)
    assert reads == ["scene0000_00", "scene0001_00"]  # one pass, stopped at the unreadable scan
    reads.clear()
    (tmp_path / "scene0001_00" / "scene0001_00.aggregation.json").unlink()  # no longer a box scan
    scan_dataset(tmp_path, "scannet", strict=True, frame_skip=1)
    assert reads == ["scene0000_00", "scene0002_00"]

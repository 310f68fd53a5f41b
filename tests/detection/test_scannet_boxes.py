"""ScanNet boxes from a small fixture written in ScanNet's own layout."""

import json
import math

import numpy as np
import pytest

from ppkt.data.ply import write_ply_vertices
from ppkt.data.scannet_boxes import ScanNetDetectionSource, read_scannet_detection_scene
from ppkt.eval.detection.data import check_detection_scenes

CHAIR, TABLE, WALL = 5, 7, 1  # NYU40


def write_scan(root, scene="scene0000_00", alignment=None, extra_groups=(), segs_override=None):
    """Three objects: a chair (segments 1, 2), a table (3), a wall (0); one vertex per segment pattern."""
    rng = np.random.default_rng(0)
    folder = root / scene
    folder.mkdir(parents=True)
    chair = rng.uniform([1, 1, 0], [1.5, 1.4, 0.9], (60, 3))
    table = rng.uniform([3, 2, 0], [4.2, 2.8, 0.75], (80, 3))
    wall = np.c_[rng.uniform(0, 5, 50), np.zeros(50), rng.uniform(0, 2.5, 50)]
    points = np.concatenate([chair, table, wall]).astype(np.float32)
    labels = np.repeat([CHAIR, TABLE, WALL], [60, 80, 50]).astype(np.uint16)
    segs = np.repeat([1, 2, 3, 0], [30, 30, 80, 50])
    if alignment is not None:  # store the scan un-aligned: vertices = inverse(alignment) @ aligned
        inv = np.linalg.inv(alignment)
        points = (points.astype(np.float64) @ inv[:3, :3].T + inv[:3, 3]).astype(np.float32)
    colors = np.full((len(points), 3), 100, np.uint8)
    xyz = {"x": points[:, 0], "y": points[:, 1], "z": points[:, 2]}
    write_ply_vertices(
        folder / f"{scene}_vh_clean_2.ply",
        {**xyz, "red": colors[:, 0], "green": colors[:, 1], "blue": colors[:, 2]},
    )
    write_ply_vertices(folder / f"{scene}_vh_clean_2.labels.ply", {**xyz, "label": labels})
    (folder / f"{scene}_vh_clean_2.0.010000.segs.json").write_text(
        json.dumps(
            {"sceneId": scene, "segIndices": (segs if segs_override is None else segs_override).tolist()}
        )
    )
    groups = [
        {"id": 0, "objectId": 0, "label": "chair", "segments": [1, 2]},
        {"id": 1, "objectId": 1, "label": "table", "segments": [3]},
        {"id": 2, "objectId": 2, "label": "wall", "segments": [0]},
        *extra_groups,
    ]
    (folder / f"{scene}.aggregation.json").write_text(json.dumps({"sceneId": scene, "segGroups": groups}))
    meta = "colorHeight = 968\n"
    if alignment is not None:
        meta += "axisAlignment = " + " ".join(f"{x:.10f}" for x in alignment.reshape(-1)) + "\n"
    (folder / f"{scene}.txt").write_text(meta)
    (root / "scannetv2_train.txt").write_text(scene + "\n")
    return chair, table


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

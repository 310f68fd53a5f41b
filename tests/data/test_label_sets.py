import json

import numpy as np
import pytest

from ppkt.data.ply import write_ply_vertices
from ppkt.data.registry import SceneRequest, open_scenes
from ppkt.data.scannet_classes import (
    NYU40_CLASS_NAMES,
    SCANNET20_CLASS_NAMES,
    SCANNET200_CLASS_IDS,
    SCANNET200_CLASS_NAMES,
    label_set,
)


def write_scene(root, nyu40):
    scene = root / "scene0000_00"
    scene.mkdir(parents=True)
    n = len(nyu40)
    xyz = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
    columns = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
    columns |= {c: np.full(n, 9, np.uint8) for c in ("red", "green", "blue")}
    write_ply_vertices(scene / "scene0000_00_vh_clean_2.ply", columns)
    write_ply_vertices(scene / "scene0000_00_vh_clean_2.labels.ply", {"label": np.asarray(nyu40, np.uint16)})
    (root / "scannetv2_train.txt").write_text("scene0000_00\n")


def test_nyu40_and_scannet20_from_the_same_labels(tmp_path):
    nyu40 = [0, 1, 13, 22, 24, 39, 40, 41]  # unannotated, wall, blinds, ceiling, refrigerator, ..., bad id
    write_scene(tmp_path, nyu40)
    s20 = open_scenes("scannet", SceneRequest(tmp_path)).read("scene0000_00")
    s40 = open_scenes("scannet", SceneRequest(tmp_path, label_set="nyu40")).read("scene0000_00")
    assert s20.class_names == SCANNET20_CLASS_NAMES and s40.class_names == NYU40_CLASS_NAMES
    assert s20.labels.tolist() == [-1, 0, -1, -1, 14, 19, -1, -1]
    assert s40.labels.tolist() == [-1, 0, 12, 21, 23, 38, 39, -1]
    assert [NYU40_CLASS_NAMES[i] for i in s40.labels[1:7]] == [
        "wall", "blinds", "ceiling", "refridgerator", "otherfurniture", "otherprop",
    ]  # fmt: skip


def test_every_scannet20_class_keeps_its_name_in_nyu40():
    names, to20 = label_set("scannet20")
    for nyu_id in range(1, 41):
        mapped = int(to20(np.array([nyu_id]))[0])
        if mapped >= 0:
            expected = NYU40_CLASS_NAMES[nyu_id - 1].replace("refridgerator", "refrigerator")
            assert names[mapped] == expected


def write_scannet200_files(root, tsv_rows):
    scene = root / "scene0000_00"
    header = "id\traw_category\tcategory\tcount\tnyu40id"
    rows = [f"{i}\t{raw}\t{raw}\t1\t0" for i, raw in tsv_rows]
    (root / "scannetv2-labels.combined.tsv").write_text("\n".join([header, *rows]) + "\n")
    segs = {"sceneId": "scene0000_00", "segIndices": [10, 10, 11, 11, 12, 12, 13, 13]}
    (scene / "scene0000_00_vh_clean_2.0.010000.segs.json").write_text(json.dumps(segs))
    groups = [
        {"id": 0, "objectId": 0, "segments": [11], "label": "chair"},
        {"id": 1, "objectId": 1, "segments": [12], "label": "mattress"},
        {"id": 2, "objectId": 2, "segments": [13], "label": "weird thing"},
        {"id": 3, "objectId": 3, "segments": [10], "label": "not in the tsv"},
    ]
    (scene / "scene0000_00.aggregation.json").write_text(json.dumps({"segGroups": groups}))


def test_scannet200_from_aggregation_segments_and_tsv(tmp_path):
    write_scene(tmp_path, [0] * 8)
    write_scannet200_files(tmp_path, [(1, "wall"), (2, "chair"), (12, "weird thing"), (1191, "mattress")])
    source = open_scenes("scannet", SceneRequest(tmp_path, label_set="scannet200"))
    scene = source.read("scene0000_00")
    assert len(source.class_names) == 200 and scene.class_names == SCANNET200_CLASS_NAMES
    # chair: tsv id 2 -> class 1; mattress: tsv id 1191, the last -> class 199; tsv id 12 is not one
    # of the 200; a raw category missing from the tsv stays unlabelled
    assert scene.labels.tolist() == [-1, -1, 1, 1, 199, 199, -1, -1]
    assert [SCANNET200_CLASS_NAMES[i] for i in (1, 199)] == ["chair", "mattress"]


def test_scannet200_table_is_the_benchmarks():
    assert len(SCANNET200_CLASS_IDS) == len(set(SCANNET200_CLASS_IDS)) == 200
    assert len(set(SCANNET200_CLASS_NAMES)) == 200 and list(SCANNET200_CLASS_IDS) == sorted(
        SCANNET200_CLASS_IDS
    )
    assert SCANNET200_CLASS_IDS[:4] == (1, 2, 3, 4) and SCANNET200_CLASS_NAMES[:4] == (
        "wall",
        "chair",
        "floor",
        "table",
    )
    assert SCANNET200_CLASS_IDS[-1] == 1191 and SCANNET200_CLASS_NAMES[-1] == "mattress"


def test_scannet200_needs_its_files(tmp_path):
    write_scene(tmp_path, [0] * 8)
    with pytest.raises(FileNotFoundError, match="scannetv2-labels.combined.tsv"):
        open_scenes("scannet", SceneRequest(tmp_path, label_set="scannet200"))
    (tmp_path / "labels.tsv").write_text("a\tb\n")
    with pytest.raises(ValueError, match="expected the columns 'id' and 'raw_category'"):
        open_scenes(
            "scannet", SceneRequest(tmp_path, label_set="scannet200", label_map=tmp_path / "labels.tsv")
        )
    (tmp_path / "labels.tsv").write_text("id\traw_category\n1\twall\n")
    source = open_scenes(
        "scannet", SceneRequest(tmp_path, label_set="scannet200", label_map=tmp_path / "labels.tsv")
    )
    with pytest.raises(FileNotFoundError, match="segs.json: not found"):
        source.read("scene0000_00")
    with pytest.raises(ValueError, match="label_map is read for data.label_set scannet200 only"):
        open_scenes("scannet", SceneRequest(tmp_path, label_map=tmp_path / "labels.tsv"))
    with pytest.raises(ValueError, match="unknown label set 'scannet100'"):
        label_set("scannet100")

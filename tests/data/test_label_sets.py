import numpy as np
import pytest

from ppkt.data.ply import write_ply_vertices
from ppkt.data.registry import SceneRequest, open_scenes
from ppkt.data.scannet_classes import NYU40_CLASS_NAMES, SCANNET20_CLASS_NAMES, label_set


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


def test_unknown_label_set_says_scannet200_is_not_supported():
    with pytest.raises(ValueError, match="ScanNet200 is not supported"):
        label_set("scannet200")

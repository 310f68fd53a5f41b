import numpy as np
import pytest

from ppkt.data.ply import PlyError, read_ply_vertices, write_ply_vertices
from ppkt.data.scannet_classes import nyu40_to_scannet20


def test_binary_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    cols = {
        "x": rng.random(5, dtype=np.float32),
        "red": rng.integers(0, 255, 5).astype(np.uint8),
        "label": np.array([0, 1, 39, 22, 5], dtype=np.uint16),
    }
    write_ply_vertices(tmp_path / "a.ply", cols)
    back = read_ply_vertices(tmp_path / "a.ply")
    for k, v in cols.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v)


def test_ascii_and_faces_are_read(tmp_path):
    text = (
        "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty uchar red\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n1.5 3\n-2 255\n3 0 1 1\n"
    )
    (tmp_path / "b.ply").write_text(text)
    back = read_ply_vertices(tmp_path / "b.ply")
    assert np.allclose(back["x"], [1.5, -2]) and list(back["red"]) == [3, 255]


def test_truncated_and_garbage_name_the_file(tmp_path):
    write_ply_vertices(tmp_path / "c.ply", {"x": np.zeros(100, np.float32)})
    data = (tmp_path / "c.ply").read_bytes()
    (tmp_path / "c.ply").write_bytes(data[:-10])
    with pytest.raises(PlyError, match=r"c\.ply.*truncated"):
        read_ply_vertices(tmp_path / "c.ply")
    (tmp_path / "d.ply").write_bytes(b"hello")
    with pytest.raises(PlyError, match=r"d\.ply"):
        read_ply_vertices(tmp_path / "d.ply")


def test_nyu40_mapping():
    out = nyu40_to_scannet20(np.array([0, 1, 2, 22, 39, 40, 14, 300]))
    assert list(out) == [-1, 0, 1, -1, 19, -1, 12, -1]

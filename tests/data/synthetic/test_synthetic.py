"""Synthetic rooms: geometry consistency of what is written, layout validity, determinism, cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ppkt.data import ScanNetFrames, read_scannet_scene, scannet_split
from ppkt.data.ply import read_ply_vertices
from ppkt.data.synthetic import (
    CLASSES,
    camera_trajectory,
    ensure_dataset,
    generate_dataset,
    generate_scene,
    intrinsics_for,
    render,
)
from ppkt.data.synthetic import dataset as synth_dataset
from ppkt.data.synthetic.render import _to_local, camera_rays
from ppkt.geometry.camera import transform_points, unproject_depth
from ppkt.geometry.pose import look_at

TINY = dict(frames_per_scene=3, image_hw=(48, 64), progress=False)


@pytest.fixture(scope="module")
def dense_dataset(tmp_path_factory):
    """One room, noise-free depth, a dense cloud (1.5 cm) so the cloud resolves the surfaces."""
    root = tmp_path_factory.mktemp("synth") / "dense"
    return generate_dataset(
        root, scenes=1, seed=5, depth_noise=False, point_spacing=0.015, max_points=10**7, **TINY
    )


def test_depth_backprojects_onto_labelled_cloud(dense_dataset):
    scipy_spatial = pytest.importorskip("scipy.spatial")
    frames = ScanNetFrames(dense_dataset, frame_skip=25, strict=True)
    assert len(frames) == 3
    scene = read_scannet_scene(dense_dataset / frames[0].scene_id)
    nyu40 = read_ply_vertices(dense_dataset / scene.scene_id / f"{scene.scene_id}_vh_clean_2.labels.ply")[
        "label"
    ]
    tree = scipy_spatial.cKDTree(scene.points)
    for frame in frames:
        np.testing.assert_allclose(frame.K_depth, intrinsics_for((48, 64)))
        np.testing.assert_allclose(frame.K_color, frame.K_depth)
        points, ij = unproject_depth(
            torch.from_numpy(frame.depth), torch.from_numpy(frame.K_depth), min_depth=0.1, max_depth=20.0
        )
        assert len(points) > 0.95 * 48 * 64  # noise-free depth of a closed room: (nearly) every pixel
        world = transform_points(torch.from_numpy(frame.world_from_camera), points.double()).numpy()
        dist, nearest = tree.query(world)
        assert np.median(dist) < 0.01, f"frame {frame.frame_id}: median {np.median(dist):.4f} m"
        assert np.percentile(dist, 99) < 0.03
        # The renderer's per-pixel classes agree with the cloud's labels at the back-projected points.
        label_png = np.asarray(Image.open(dense_dataset / scene.scene_id / "label" / f"{frame.frame_id}.png"))
        pixel_labels = label_png[ij[:, 0].numpy(), ij[:, 1].numpy()]
        assert (pixel_labels == nyu40[nearest]).mean() > 0.97


def test_written_layout_and_manifest(dense_dataset):
    manifest = json.loads((dense_dataset / "synthetic.json").read_text())
    assert manifest["version"] == synth_dataset.GENERATOR_VERSION
    assert manifest["params"]["scenes"] == 1
    scene_dir = dense_dataset / "scene0000_00"
    for name in ("intrinsic_color", "intrinsic_depth"):
        K4 = np.loadtxt(scene_dir / "intrinsic" / f"{name}.txt")
        assert K4.shape == (4, 4)
        np.testing.assert_allclose(K4[:3, :3], intrinsics_for((48, 64)), atol=1e-6)
    for name in ("extrinsic_color", "extrinsic_depth"):
        np.testing.assert_allclose(np.loadtxt(scene_dir / "intrinsic" / f"{name}.txt"), np.eye(4))
    depth = np.asarray(Image.open(scene_dir / "depth" / "25.png"))
    assert depth.dtype == np.uint16 and depth.shape == (48, 64)
    color = np.asarray(Image.open(scene_dir / "color" / "25.jpg"))
    assert color.shape == (48, 64, 3)
    labels = read_ply_vertices(scene_dir / "scene0000_00_vh_clean_2.labels.ply")["label"]
    assert labels.dtype == np.uint16
    assert set(np.unique(labels).tolist()) <= set(CLASSES)


def test_intrinsics_follow_resize_rule():
    K = intrinsics_for((240, 320))
    np.testing.assert_allclose(K[0, 0], 577.870605 * 0.5)
    np.testing.assert_allclose(K[:2, 2], [159.5, 119.5])
    np.testing.assert_allclose(intrinsics_for((480, 640))[:2, 2], [319.5, 239.5])


def _points_inside(part, points, shrink=0.002):
    local = _to_local(part, points)
    if part.kind == "box":
        return np.all(np.abs(local) < part.half - shrink, axis=1)
    radial = np.hypot(local[:, 0], local[:, 1])
    return (radial < part.half[0] - shrink) & (np.abs(local[:, 2]) < part.half[2] - shrink)


@pytest.mark.parametrize("seed", range(6))
def test_layout_has_no_interpenetration_and_stays_in_the_room(seed):
    rng = np.random.default_rng(seed)
    scene = generate_scene(rng)
    size = scene.room.size
    sampler = np.random.default_rng(100 + seed)
    for k, part in enumerate(scene.parts):
        # Points filling the part (its bounding box, kept when inside the part itself).
        local = sampler.uniform(-1, 1, size=(400, 3)) * part.half
        c, s = np.cos(part.yaw), np.sin(part.yaw)
        world = local @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + part.center
        world = world[_points_inside(part, world, shrink=0.0)]
        assert np.all(world >= -1e-6) and np.all(world <= size + 1e-6), f"part {k} leaves the room"
        for other in scene.parts:
            if other.instance != part.instance:
                inside = _points_inside(other, world)
                assert not inside.any(), (
                    f"seed {seed}: part of object {part.instance} inside {other.instance}"
                )


def test_layouts_cover_at_least_ten_benchmark_classes():
    seen = set()
    for seed in range(12):
        seen |= {p.nyu40 for p in generate_scene(np.random.default_rng(seed)).parts}
    seen |= {1, 2}  # walls and floor are always there
    benchmark = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39}
    assert len(seen & benchmark) >= 10, sorted(seen)


@pytest.mark.parametrize("seed", range(4))
def test_camera_is_handheld_and_outside_furniture(seed):
    rng = np.random.default_rng(seed)
    scene = generate_scene(rng)
    poses = camera_trajectory(scene, rng, 40)
    R = poses[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    position = poses[:, :3, 3]
    assert np.all((position[:, 2] >= 1.2) & (position[:, 2] <= 1.8))
    assert np.all(scene.footprint_distance(position[:, :2]) > 0.15)
    assert np.all((position[:, :2] > 0.2) & (position[:, :2] < scene.room.size[:2] - 0.2))
    assert np.all(R[:, 2, 1] < 0)  # image "down" (camera +y) points down in the world: upright camera
    steps = np.linalg.norm(np.diff(position, axis=0), axis=1)
    assert steps.max() < 0.5  # a smooth walk, no jumps


def test_render_is_deterministic_and_depth_is_camera_z():
    rng = np.random.default_rng(3)
    scene = generate_scene(rng)
    pose = camera_trajectory(scene, rng, 5)[2]
    K = intrinsics_for((30, 40))
    a = render(scene, K, (30, 40), pose)
    b = render(scene, K, (30, 40), pose, rays_camera=camera_rays(K, (30, 40)))
    np.testing.assert_array_equal(a.color, b.color)
    np.testing.assert_array_equal(a.depth, b.depth)


def test_empty_room_depth_is_analytic():
    scene = generate_scene(np.random.default_rng(0))
    scene.parts = []
    lx, ly, lz = scene.room.size
    pose = look_at(np.array([1.0, ly / 2, 1.5]), np.array([lx, ly / 2, 1.5]))  # looking along +x
    K = intrinsics_for((31, 41))
    K[:2, 2] = [20.0, 15.0]  # the centre pixel on the optical axis
    frame = render(scene, K, (31, 41), pose)
    np.testing.assert_allclose(frame.depth[15, 20], lx - 1.0, rtol=1e-5)
    # Depth is camera z, not ray length: the far wall (every wall pixel of the centre column) is flat.
    column = frame.label[:, 20] == 1
    assert column.sum() > 5
    np.testing.assert_allclose(frame.depth[column, 20], lx - 1.0, rtol=1e-5)
    assert frame.label[15, 20] == 1 and frame.label[30, 20] == 2  # wall ahead, floor at the bottom


def test_generation_is_deterministic_and_independent_of_workers(tmp_path):
    a = generate_dataset(tmp_path / "a", scenes=2, seed=1, max_points=5000, **TINY)
    b = generate_dataset(tmp_path / "b", scenes=2, seed=1, max_points=5000, workers=2, **TINY)
    for rel in (
        "scene0001_00/color/50.jpg",
        "scene0001_00/depth/25.png",
        "scene0000_00/pose/0.txt",
        "scene0001_00/scene0001_00_vh_clean_2.labels.ply",
    ):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert scannet_split(a, "train") == ["scene0000_00"] and scannet_split(a, "val") == ["scene0001_00"]
    c = generate_dataset(tmp_path / "c", scenes=1, seed=2, max_points=5000, **TINY)
    assert (a / "scene0000_00/color/0.jpg").read_bytes() != (c / "scene0000_00/color/0.jpg").read_bytes()


def test_generate_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_dataset(tmp_path / "x", scenes=1, **TINY)


def test_ensure_dataset_caches_and_never_reuses_an_interrupted_run(tmp_path, monkeypatch):
    original = synth_dataset.write_scene

    def failing(root, index, params):
        if index == 1:
            raise RuntimeError("interrupted")
        return original(root, index, params)

    monkeypatch.setattr(synth_dataset, "write_scene", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        ensure_dataset(scenes=2, seed=4, max_points=5000, cache_dir=tmp_path, **TINY)
    assert list(tmp_path.iterdir()) == []  # no partial dataset, no leftover temp folder
    monkeypatch.setattr(synth_dataset, "write_scene", original)
    first = ensure_dataset(scenes=2, seed=4, max_points=5000, cache_dir=tmp_path, **TINY)
    stamp = (first / "synthetic.json").stat().st_mtime_ns
    again = ensure_dataset(scenes=2, seed=4, max_points=5000, cache_dir=tmp_path, **TINY)
    assert again == first and (again / "synthetic.json").stat().st_mtime_ns == stamp
    other = ensure_dataset(scenes=2, seed=5, max_points=5000, cache_dir=tmp_path, **TINY)
    assert other != first


def test_cache_dir_follows_ppkt_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PPKT_CACHE", str(tmp_path))
    assert synth_dataset.default_cache_dir() == tmp_path / "synthetic"


def test_cli_writes_dataset_and_preview(tmp_path):
    from ppkt.cli import main

    out = tmp_path / "rooms"
    code = main(
        [
            "synth",
            str(out),
            "--scenes",
            "1",
            "--frames-per-scene",
            "2",
            "--height",
            "48",
            "--width",
            "64",
            "--max-points",
            "5000",
            "--preview",
        ]
    )
    assert code == 0
    preview = np.asarray(Image.open(out / "preview.png"))
    assert preview.shape[1] == 3 * 64  # colour, depth, labels
    assert len(ScanNetFrames(out, frame_skip=1)) == 2

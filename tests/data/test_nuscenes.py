import numpy as np
import pytest
from outdoor_fixtures import (
    FOCAL,
    IMAGE_HW,
    NUSC_CAMERA_YAW_DEG,
    fixture_K,
    nusc_camera_extrinsics,
    nusc_camera_time,
    nusc_ego_pose,
    nusc_global_from_camera,
    nusc_lidar_from_global,
    pose_matrix,
    write_nuscenes,
)
from scipy.spatial.transform import Rotation

from ppkt.data.lidar_common import MISSING_CAMERA, quaternion_to_rotation
from ppkt.data.nuscenes import (
    GENERAL_TO_NUSCENES16,
    LIDARSEG_GENERAL_CLASSES,
    NUSCENES16_CLASS_NAMES,
    NUSCENES_CAMERAS,
    NUSCENES_VAL_SCENES,
    NuScenesSamples,
    general_to_nuscenes16_lut,
    resolve_split,
)
from ppkt.data.report import TRUNCATED, FrameError
from ppkt.data.types import IGNORE_LABEL


def project(camera, points_lidar):
    """Test-side pinhole projection (independent of ppkt.geometry)."""
    homogeneous = np.concatenate([points_lidar, np.ones((len(points_lidar), 1))], axis=1)
    cam = (camera.camera_from_lidar @ homogeneous.T).T[:, :3]
    uvw = (camera.K @ cam.T).T
    return uvw[:, :2] / uvw[:, 2:3], cam[:, 2]


def plant_points(path, points_lidar):
    values = np.zeros((len(points_lidar), 5), dtype="<f4")
    values[:, :3] = points_lidar
    values.tofile(path)


def test_reads_samples_in_scene_order_with_six_cameras(tmp_path):
    fx = write_nuscenes(tmp_path, samples_per_scene=3)
    data = NuScenesSamples(tmp_path, version="v1.0-mini")
    assert len(data) == 6 and data.skipped == {}
    assert [r.sample_token for r in data.records] == fx.sample_tokens
    sample = data[1]
    raw = np.fromfile(fx.lidar_paths[1], dtype="<f4").reshape(-1, 5)
    assert sample.points.dtype == np.float32 and np.array_equal(sample.points, raw[:, :3])
    assert np.array_equal(sample.intensity, raw[:, 3])
    assert [c.name for c in sample.images] == list(NUSCENES_CAMERAS)
    assert all(c.hw == IMAGE_HW and c.image.dtype == np.uint8 for c in sample.images)
    assert np.allclose(sample.images[0].K, fixture_K())
    # Each camera has its own image (the fixture paints camera i with red = 30 i).
    reds = [int(np.median(c.image[..., 0])) for c in sample.images]
    assert all(
        abs(r - 30 * list(NUSC_CAMERA_YAW_DEG).index(c.name)) <= 3
        for r, c in zip(reds, sample.images, strict=True)
    )
    assert sample.labels is None and sample.sample_id == fx.sample_tokens[1]


def test_point_straight_ahead_of_each_camera_lands_on_principal_point(tmp_path):
    """Hand-known pixels: a point 10 m along a camera's optical axis (at the camera's own time)
    projects to (cx, cy); 1 m to its right at 10 m projects FOCAL / 10 pixels right."""
    fx = write_nuscenes(tmp_path, samples_per_scene=1)
    lidar_time = fx.lidar_times[0]
    planted = []
    for channel in NUSCENES_CAMERAS:
        global_from_camera = nusc_global_from_camera(lidar_time, channel)
        for cam_point in ([0.0, 0.0, 10.0], [1.0, 0.0, 10.0], [0.0, -2.0, 20.0]):
            world = global_from_camera @ np.array([*cam_point, 1.0])
            planted.append((nusc_lidar_from_global(lidar_time) @ world)[:3])
    plant_points(fx.lidar_paths[0], np.array(planted))
    sample = NuScenesSamples(tmp_path)[0]
    cx, cy = fixture_K()[0, 2], fixture_K()[1, 2]
    expected = np.array([[cx, cy], [cx + FOCAL / 10, cy], [cx, cy - FOCAL * 2 / 20]])
    for k, camera in enumerate(sample.images):
        uv, depth = project(camera, sample.points[3 * k : 3 * k + 3].astype(np.float64))
        assert np.allclose(uv, expected, atol=2e-3), camera.name  # float32 points at ~1 km from origin
        assert np.allclose(depth, [10, 10, 20], atol=1e-4)


def test_transform_matches_independent_composition_and_uses_each_sensor_time(tmp_path):
    fx = write_nuscenes(tmp_path, samples_per_scene=1)
    sample = NuScenesSamples(tmp_path)[0]
    lidar_time = fx.lidar_times[0]
    for camera in sample.images:
        independent = np.linalg.inv(nusc_global_from_camera(lidar_time, camera.name)) @ np.linalg.inv(
            nusc_lidar_from_global(lidar_time)
        )
        assert np.allclose(camera.camera_from_lidar, independent, atol=1e-9)
        assert np.allclose(camera.camera_from_lidar[3], [0, 0, 0, 1])
        assert np.allclose(camera.camera_from_lidar[:3, :3] @ camera.camera_from_lidar[:3, :3].T, np.eye(3))
        # Composing with the ego pose at the lidar time instead would be off by the car's motion.
        ego_rot, ego_t = nusc_ego_pose(lidar_time)
        rot, t = nusc_camera_extrinsics(camera.name)
        wrong = np.linalg.inv(pose_matrix(ego_rot, ego_t) @ pose_matrix(rot, t)) @ np.linalg.inv(
            nusc_lidar_from_global(lidar_time)
        )
        assert np.abs(wrong[:3, 3] - camera.camera_from_lidar[:3, 3]).max() > 0.05
        assert nusc_camera_time(lidar_time, camera.name) != lidar_time


def test_quaternion_matches_scipy_and_normalises():
    rng = np.random.default_rng(1)
    for q in rng.normal(size=(20, 4)):
        expected = Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()
        assert np.allclose(quaternion_to_rotation(q), expected, atol=1e-12)
    assert np.allclose(quaternion_to_rotation([1, 0, 0, 0]), np.eye(3))
    # 90 degrees about z, by hand: x -> y.
    s = np.sqrt(0.5)
    assert np.allclose(quaternion_to_rotation([s, 0, 0, s]) @ [1, 0, 0], [0, 1, 0])
    with pytest.raises(ValueError):
        quaternion_to_rotation([0, 0, 0, 0])


def test_lidarseg_labels_mapped_to_16_classes(tmp_path):
    fx = write_nuscenes(tmp_path)
    data = NuScenesSamples(tmp_path, with_labels=True)
    sample = data[2]
    raw = np.fromfile(fx.lidarseg_paths[2], dtype=np.uint8)
    assert sample.labels.dtype == np.int64 and sample.labels.shape == (len(raw),)
    assert sample.class_names == NUSCENES16_CLASS_NAMES
    for raw_id, label in zip(raw, sample.labels, strict=True):
        coarse = GENERAL_TO_NUSCENES16.get(LIDARSEG_GENERAL_CLASSES[raw_id])
        assert label == (IGNORE_LABEL if coarse is None else NUSCENES16_CLASS_NAMES.index(coarse))


def test_class_map_by_hand():
    lut = general_to_nuscenes16_lut(LIDARSEG_GENERAL_CLASSES)
    names = dict(enumerate(NUSCENES16_CLASS_NAMES))
    assert lut.shape == (32,)
    assert (lut == IGNORE_LABEL).sum() == 12  # noise, animal, 3 pedestrian kinds, 3 movable, 2 emergency, ...
    assert names[lut[17]] == "car" and names[lut[15]] == names[lut[16]] == "bus"
    assert {names[lut[i]] for i in (2, 3, 4, 6)} == {"pedestrian"}
    assert lut[0] == lut[1] == lut[5] == lut[7] == lut[8] == lut[29] == lut[31] == IGNORE_LABEL
    assert names[lut[24]] == "driveable_surface" and names[lut[30]] == "vegetation"
    assert sorted(set(lut[lut >= 0].tolist())) == list(range(16))
    # The whole table, raw id by raw id (the order of nuScenes-lidarseg's category.json).
    expected = [-1, -1, 6, 6, 6, -1, 6, -1, -1, 0, -1, -1, 7, -1, 1, 2, 2, 3, 4, -1, -1, 5, 8, 9, 10, 11,
                12, 13, 14, -1, 15, -1]  # fmt: skip
    assert lut.tolist() == expected
    # category.json indices, when present, take precedence over the published order.
    swapped = general_to_nuscenes16_lut({0: "vehicle.car", 1: "noise"})
    assert list(swapped) == [NUSCENES16_CLASS_NAMES.index("car"), IGNORE_LABEL]


def test_category_without_index_uses_published_order(tmp_path):
    write_nuscenes(tmp_path, category_index=False)
    assert NuScenesSamples(tmp_path, with_labels=True)[0].labels is not None


def test_unknown_or_truncated_labels_name_the_file(tmp_path):
    fx = write_nuscenes(tmp_path)
    np.full(40, 77, np.uint8).tofile(fx.lidarseg_paths[0])
    data = NuScenesSamples(tmp_path, with_labels=True)
    with pytest.raises(FrameError, match=r"_lidarseg\.bin: unknown label id \(ids \[77\] on 40 points\)"):
        data[0]
    np.zeros(39, np.uint8).tofile(fx.lidarseg_paths[1])
    with pytest.raises(FrameError, match=r"_lidarseg\.bin: label count mismatch \(39 labels .* of 40"):
        data[1]


def test_truncated_points_missing_image_and_tables(tmp_path):
    fx = write_nuscenes(tmp_path)
    data = fx.lidar_paths[0].read_bytes()
    fx.lidar_paths[0].write_bytes(data[:-3])
    samples = NuScenesSamples(tmp_path)
    with pytest.raises(FrameError, match=r"\.pcd\.bin: truncated file \(.* multiple of 20") as info:
        samples[0]
    assert info.value.reason == TRUNCATED
    next(iter(samples.records[1].cameras)).path.unlink()
    with pytest.raises(FrameError, match=r"CAM_FRONT.*\.jpg: missing file \(camera image\)"):
        samples[1]
    (tmp_path / "v1.0-mini" / "ego_pose.json").unlink()
    with pytest.raises(FrameError, match=r"ego_pose\.json: missing file"):
        NuScenesSamples(tmp_path)
    with pytest.raises(FrameError, match="v1.0-trainval"):
        NuScenesSamples(tmp_path, version="v1.0-trainval")


def test_splits_and_camera_subset(tmp_path):
    write_nuscenes(tmp_path, scenes=("scene-0061", "scene-0103", "scene-0916"))
    assert len(NuScenesSamples(tmp_path, split="mini_val")) == 4
    with pytest.raises(ValueError, match="not in v1.0-mini/scene.json"):
        NuScenesSamples(tmp_path, split="mini_train")  # the fixture holds only 2 of its 8 scenes
    with pytest.raises(ValueError, match="needs version v1.0-trainval"):
        NuScenesSamples(tmp_path, split="train")
    only = NuScenesSamples(tmp_path, split=["scene-0061"], cameras=("CAM_BACK",))
    assert len(only) == 2 and [c.name for c in only[0].images] == ["CAM_BACK"]
    with pytest.raises(ValueError, match="unknown nuScenes cameras"):
        NuScenesSamples(tmp_path, cameras=("CAM_TOP",))
    assert len(NUSCENES_VAL_SCENES) == 150 and len(set(NUSCENES_VAL_SCENES)) == 150
    names = [f"scene-{i:04d}" for i in range(1, 1111)]
    assert resolve_split("val", "v1.0-trainval", names) == [n for n in names if n in set(NUSCENES_VAL_SCENES)]
    train = resolve_split("train", "v1.0-trainval", names)
    assert not set(train) & set(NUSCENES_VAL_SCENES) and "scene-0001" in train and "scene-0003" not in train
    parametrize = resolve_split("slidr_parametrize", "v1.0-trainval", names)
    verify = resolve_split("slidr_verify", "v1.0-trainval", names)
    assert len(verify) == 100 and set(verify) <= set(train) and "scene-0008" in verify
    assert sorted(parametrize + verify) == sorted(train) and "scene-0001" in parametrize


def test_sample_missing_a_camera_is_skipped_and_counted(tmp_path):
    import json

    fx = write_nuscenes(tmp_path)
    table = tmp_path / "v1.0-mini" / "sample_data.json"
    rows = [
        r
        for r in json.loads(table.read_text())
        if not (r["sample_token"] == fx.sample_tokens[0] and "CAM_BACK__" in r["filename"])
    ]
    table.write_text(json.dumps(rows))
    data = NuScenesSamples(tmp_path)
    assert len(data) == 3 and data.skipped == {MISSING_CAMERA: 1}
    assert len(NuScenesSamples(tmp_path, cameras=("CAM_FRONT",))) == 4


def test_check_data_scans_nuscenes_and_counts_bad_samples(tmp_path):
    from ppkt.cli import main
    from ppkt.data.check import detect_format, scan_dataset
    from ppkt.data.lidar_common import BAD_LABELS

    fx = write_nuscenes(tmp_path)
    assert detect_format(tmp_path) == "nuscenes"
    report = scan_dataset(tmp_path)
    assert report.format == "nuscenes" and report.skipped == {}
    assert (report.frames_found, report.frames_usable) == (4, 4)
    assert any("inside a camera image" in note for note in report.notes)
    fx.lidar_paths[0].write_bytes(fx.lidar_paths[0].read_bytes()[:-4])
    np.full(40, 200, np.uint8).tofile(fx.lidarseg_paths[1])
    report = scan_dataset(tmp_path, "nuscenes")
    assert report.frames_usable == 2 and report.skipped == {TRUNCATED: 1, BAD_LABELS: 1}
    assert fx.lidar_paths[0].name in report.examples[TRUNCATED][0]
    with pytest.raises(FrameError, match="truncated"):
        scan_dataset(tmp_path, "nuscenes", strict=True)
    assert main(["check-data", str(tmp_path), "--format", "nuscenes"]) == 0


def test_version_from_split(tmp_path):
    write_nuscenes(tmp_path, scenes=("scene-0061", "scene-0103", "scene-0916"))
    assert len(NuScenesSamples(tmp_path, version=None, split="mini_val")) == 4
    assert NuScenesSamples(tmp_path, version=None).version == "v1.0-mini"  # the only one present
    with pytest.raises(FrameError, match="v1.0-trainval"):
        NuScenesSamples(tmp_path, version=None, split="train")


def test_samples_feed_the_pretraining_pipeline(tmp_path):
    from ppkt.train.batch import Collator
    from ppkt.train.config import AugmentConfig, DataConfig
    from ppkt.train.dataset import PretrainDataset

    write_nuscenes(tmp_path, num_points=2000)
    samples = NuScenesSamples(tmp_path)
    data = DataConfig(kind="nuscenes", image_hw=(30, 40), num_workers=0)
    dataset = PretrainDataset(samples, data, AugmentConfig(), "constant", seed=0)
    items = [dataset[(i, 0)] for i in range(2)]
    assert all(item.skipped == [] and item.images.shape == (6, 3, 30, 40) for item in items)
    assert all(len(item.pair_point) > 20 for item in items)
    batch = Collator(0.1)(items)
    assert batch.images.shape[0] == 12 and int(batch.pair_image.max()) < 12


def test_scene_source_for_segmentation(tmp_path):
    from ppkt.data.nuscenes import NuScenesSceneSource

    write_nuscenes(tmp_path, scenes=("scene-0061", "scene-0103", "scene-0916"))
    source = NuScenesSceneSource(tmp_path)
    ids = source.scene_ids("mini_val")
    assert len(ids) == 4
    labeled = NuScenesSamples(tmp_path, split="mini_val", with_labels=True)
    scene = source.read(ids[1])
    assert scene.scene_id == ids[1] and scene.class_names == NUSCENES16_CLASS_NAMES
    assert np.array_equal(scene.labels, labeled[1].labels) and np.array_equal(scene.points, labeled[1].points)
    assert scene.colors.shape == (40, 3) and scene.colors.dtype == np.uint8
    first_of_all = NuScenesSamples(tmp_path).records[0].sample_token  # not in mini_val: read finds it too
    assert source.read(first_of_all).labels.shape == (40,)
    with pytest.raises(KeyError, match="no nuScenes sample"):
        source.read("nope")
    from ppkt.eval import data as eval_data

    item = eval_data.scene_sample(scene, "constant", len(source.class_names))
    assert item.labels.shape == (40,)


def test_dangling_table_references_name_the_table(tmp_path):
    import json

    fx = write_nuscenes(tmp_path)
    table = tmp_path / "v1.0-mini" / "ego_pose.json"
    poses = json.loads(table.read_text())
    table.write_text(json.dumps(poses[1:]))  # the first sample's lidar pose
    with pytest.raises(
        FrameError, match=r"sample_data\.json: bad table \(sample_data .*: unknown ego_pose\)"
    ):
        NuScenesSamples(tmp_path)
    # A split without that sample does not need the pose.
    assert len(NuScenesSamples(tmp_path, split=[fx.scene_of_sample[-1]])) == 2
    (tmp_path / "v1.0-mini" / "calibrated_sensor.json").write_text("[]")
    with pytest.raises(FrameError, match="unknown calibrated_sensor"):
        NuScenesSamples(tmp_path)
    (tmp_path / "v1.0-mini" / "scene.json").write_text("{not json")
    with pytest.raises(FrameError, match=r"scene\.json: bad table \(invalid JSON"):
        NuScenesSamples(tmp_path)

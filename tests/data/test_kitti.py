import numpy as np
import pytest
from outdoor_fixtures import (
    FOCAL,
    IMAGE_HW,
    KITTI_CAM2_POSITION,
    KITTI_R0_RECT,
    fixture_K,
    kitti_P2,
    kitti_tr_velo_to_cam,
    write_kitti_object,
    write_kitti_raw,
    write_velodyne,
)

from ppkt.data.kitti import (
    KittiObjectSamples,
    KittiRawSamples,
    read_kitti_object_calibration,
    rectified_camera_from_lidar,
)
from ppkt.data.lidar_common import decompose_rectified_projection
from ppkt.data.report import MISSING_FILE, FrameError


def raw_kitti_projection(points):
    """KITTI's own formula: x = P2 @ R0_rect @ Tr_velo_to_cam @ [p; 1]."""
    R0 = np.eye(4)
    R0[:3, :3] = KITTI_R0_RECT
    Tr = np.vstack([kitti_tr_velo_to_cam(), [0, 0, 0, 1]])
    x = (kitti_P2() @ R0 @ Tr @ np.concatenate([points, np.ones((len(points), 1))], 1).T).T
    return x[:, :2] / x[:, 2:3], x[:, 2]


def project(camera, points):
    cam = (camera.camera_from_lidar @ np.concatenate([points, np.ones((len(points), 1))], 1).T).T[:, :3]
    uvw = (camera.K @ cam.T).T
    return uvw[:, :2] / uvw[:, 2:3], cam[:, 2]


def lidar_from_camera2(camera2_points):
    """Independent inverse path: undo the baseline, R0_rect and Tr with np.linalg.inv."""
    rect0 = camera2_points + KITTI_CAM2_POSITION
    R0 = np.eye(4)
    R0[:3, :3] = KITTI_R0_RECT
    Tr = np.vstack([kitti_tr_velo_to_cam(), [0, 0, 0, 1]])
    lidar = (np.linalg.inv(R0 @ Tr) @ np.concatenate([rect0, np.ones((len(rect0), 1))], 1).T).T
    return lidar[:, :3]


def test_object_sample_points_image_and_calibration(tmp_path):
    ids = write_kitti_object(tmp_path, frames=3)
    data = KittiObjectSamples(tmp_path)
    assert len(data) == 3 and [r.sample_id for r in data.records] == [f"training/{i}" for i in ids]
    sample = data[1]
    raw = np.fromfile(tmp_path / "training" / "velodyne" / f"{ids[1]}.bin", dtype="<f4").reshape(-1, 4)
    assert np.array_equal(sample.points, raw[:, :3]) and np.array_equal(sample.intensity, raw[:, 3])
    (camera,) = sample.images
    assert camera.name == "image_2" and camera.hw == IMAGE_HW and camera.image.dtype == np.uint8
    assert np.allclose(camera.K, kitti_P2()[:, :3]) and np.allclose(camera.K, fixture_K())
    R = camera.camera_from_lidar[:3, :3]
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.allclose(
        camera.camera_from_lidar[3], [0, 0, 0, 1]
    )
    assert len(KittiObjectSamples(tmp_path, image_set="train")) == 2
    assert [r.sample_id for r in KittiObjectSamples(tmp_path, image_set="val").records] == [
        f"training/{ids[2]}"
    ]
    assert KittiObjectSamples(tmp_path, with_images=False)[0].images == []


def test_projection_equals_raw_P2_R0_Tr_formula(tmp_path):
    write_kitti_object(tmp_path, frames=1)
    camera = KittiObjectSamples(tmp_path)[0].images[0]
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform(3, 60, (200, 1)), rng.uniform(-10, 10, (200, 2))], axis=1)
    uv, depth = project(camera, points)
    uv_raw, w_raw = raw_kitti_projection(points)
    assert np.allclose(uv, uv_raw, atol=1e-9)
    # P2's last row is [0 0 1 t_z]: the homogeneous w equals the camera-2 depth.
    assert np.allclose(depth, w_raw, atol=1e-9)


def test_point_straight_ahead_of_camera2_lands_on_principal_point(tmp_path):
    write_kitti_object(tmp_path, frames=1)
    camera = KittiObjectSamples(tmp_path)[0].images[0]
    cam2 = np.array([[0.0, 0.0, 10.0], [1.0, 0.0, 10.0], [0.0, 3.0, 30.0]])
    uv, depth = project(camera, lidar_from_camera2(cam2))
    cx, cy = fixture_K()[0, 2], fixture_K()[1, 2]
    assert np.allclose(uv, [[cx, cy], [cx + FOCAL / 10, cy], [cx, cy + FOCAL / 10]], atol=1e-9)
    assert np.allclose(depth, [10, 10, 30])
    # Ignoring the baseline (camera 0's pose for camera 2) would shift the pixel by fx * 0.06 / z.
    rect_from_lidar = np.eye(4)
    rect_from_lidar[:3, :3] = KITTI_R0_RECT
    rect_from_lidar = rect_from_lidar @ np.vstack([kitti_tr_velo_to_cam(), [0, 0, 0, 1]])
    wrong = (rect_from_lidar @ np.append(lidar_from_camera2(cam2[:1])[0], 1))[:3]
    assert abs(FOCAL * wrong[0] / wrong[2]) > 0.5


def test_decompose_rectified_projection_by_hand():
    K = np.array([[700.0, 0, 600], [0, 710, 180], [0, 0, 1]])
    t = np.array([0.5, -0.2, 0.01])
    K_back, camera_from_rect = decompose_rectified_projection(K @ np.hstack([np.eye(3), t[:, None]]))
    assert np.allclose(K_back, K) and np.allclose(camera_from_rect[:3, 3], t)
    assert np.array_equal(camera_from_rect[:3, :3], np.eye(3))
    with pytest.raises(FrameError, match="not a rectified projection"):
        decompose_rectified_projection(np.zeros((3, 4)))
    K2, cam = rectified_camera_from_lidar(K @ np.hstack([np.eye(3), t[:, None]]), np.eye(4))
    assert np.allclose(cam[:3, 3], t) and np.allclose(K2, K)


def test_raw_drive_matches_object_calibration(tmp_path):
    write_kitti_object(tmp_path / "object", frames=1)
    drive = write_kitti_raw(tmp_path / "raw", frames=3)
    data = KittiRawSamples(tmp_path / "raw")
    assert len(data) == 3 and data.records[0].sample_id == f"{drive.name}/0000000000"
    raw_camera = data[2].images[0]
    K, camera_from_lidar = read_kitti_object_calibration(
        tmp_path / "object" / "training" / "calib" / "000000.txt"
    )
    assert np.allclose(raw_camera.K, K) and np.allclose(raw_camera.camera_from_lidar, camera_from_lidar)
    points = np.random.default_rng(1).uniform(5, 40, (50, 3))
    assert np.allclose(project(raw_camera, points)[0], raw_kitti_projection(points)[0], atol=1e-9)
    assert len(KittiRawSamples(tmp_path / "raw", frame_step=2)) == 2
    assert len(KittiRawSamples(tmp_path / "raw", drives=[drive.name])) == 3
    with pytest.raises(FrameError, match="not found"):
        KittiRawSamples(tmp_path / "raw", drives=["2011_09_26_drive_9999_sync"])


def test_bad_files_name_the_file(tmp_path):
    ids = write_kitti_object(tmp_path, frames=4)
    base = tmp_path / "training"
    bin_path = base / "velodyne" / f"{ids[0]}.bin"
    bin_path.write_bytes(bin_path.read_bytes()[:-6])
    (base / "calib" / f"{ids[1]}.txt").unlink()
    (base / "image_2" / f"{ids[2]}.png").unlink()
    calib = base / "calib" / f"{ids[3]}.txt"
    calib.write_text(
        "\n".join(line for line in calib.read_text().splitlines() if not line.startswith("R0_rect"))
    )
    data = KittiObjectSamples(tmp_path)
    with pytest.raises(FrameError, match=r"000000\.bin: truncated file .*not a multiple of 16"):
        data[0]
    with pytest.raises(FrameError, match=r"000001\.txt: missing file \(calibration file\)"):
        data[1]
    with pytest.raises(FrameError, match=r"000002\.png: missing file \(camera image\)") as info:
        data[2]
    assert info.value.reason == MISSING_FILE
    with pytest.raises(FrameError, match=r"000003\.txt: bad calibration \(missing .*'R0_rect'\)"):
        data[3]
    write_kitti_raw(tmp_path / "raw", frames=1)
    (tmp_path / "raw" / "2011_09_26" / "calib_velo_to_cam.txt").write_text("R: 1 0 0\nT: 0 0 0\n")
    with pytest.raises(FrameError, match=r"velo_to_cam\.txt: bad calibration \(R has 3 values, expected 9\)"):
        KittiRawSamples(tmp_path / "raw")[0]
    with pytest.raises(FrameError, match="no KITTI velodyne folder"):
        KittiObjectSamples(tmp_path / "nowhere")


def occluder_scene(rng):
    """Camera-2 frame scene: a 2 m x 2 m board at 6 m in front of a wall at 20 m.

    The wall points include those hidden from the camera by the board, as a lidar at another
    viewpoint sees them. Returns camera-2 points and, per point, whether the camera sees it.
    """
    board = np.stack([rng.uniform(-1, 1, 3000), rng.uniform(-1, 1, 3000), np.full(3000, 6.0)], 1)
    wall = np.stack([rng.uniform(-8, 8, 20000), rng.uniform(-3, 3, 20000), np.full(20000, 20.0)], 1)
    return with_visibility(np.concatenate([board, wall]))


def with_visibility(cam2):
    # Wall points whose ray from the camera centre crosses the board (|x|, |y| <= 1 at z = 6) are hidden.
    at_board = cam2[:, :2] * (6.0 / cam2[:, 2:3])
    hidden = (cam2[:, 2] > 6.5) & (np.abs(at_board) <= 1.0).all(1)
    return cam2, ~hidden


def lidar_rows_scene(row_spacing_deg):
    """The board and wall sampled the way a lidar samples them: rows of points 2 degrees apart,
    the wall's rows half-way between the board's (the lidar sees both from above the camera)."""
    step = np.deg2rad(row_spacing_deg)
    u = np.deg2rad(np.arange(-25, 25, 0.5))
    rows = []
    for depth, first in ((6.0, 0.0), (20.0, 0.5)):
        for v in (np.arange(-8, 8) + first) * step:
            rows.append(
                np.stack([np.tan(u) * depth, np.full_like(u, np.tan(v) * depth), np.full_like(u, depth)], 1)
            )
    points = np.concatenate(rows)
    off_board = (points[:, 2] < 10) & (np.abs(points[:, :2]) > 1.0).any(1)
    return with_visibility(points[~off_board])


def pairs_of(sample, cam2, **options):
    from ppkt.data.lidar_common import sample_pairs

    sample.points = lidar_from_camera2(cam2).astype(np.float32)
    return sample_pairs(sample, **options)


def test_sample_pairs_match_own_projection(tmp_path):
    write_kitti_object(tmp_path, frames=1)
    sample = KittiObjectSamples(tmp_path)[0]
    cam2, seen = occluder_scene(np.random.default_rng(0))
    pairs = pairs_of(sample, cam2, beam_spacing_deg=0.4, occlusion=False)
    uv, depth = project(sample.images[0], sample.points.astype(np.float64))
    h, w = IMAGE_HW
    inside = (
        (uv[:, 0] >= -0.5) & (uv[:, 0] < w - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < h - 0.5) & (depth > 1)
    )
    index = pairs.point_index.numpy()
    assert np.array_equal(np.sort(index), np.flatnonzero(inside))
    assert np.allclose(pairs.uv.numpy(), uv[index], atol=1e-3)
    assert (~seen[index]).sum() > 0  # hidden wall points are paired with board pixels
    # Dense points: even the per-pixel z-buffer (radius 0 for 0.4 degrees at fx = 100) removes most.
    kept = pairs_of(sample, cam2, beam_spacing_deg=0.4).point_index.numpy()
    assert (~seen[kept]).sum() < 0.2 * (~seen[index]).sum() and set(kept) <= set(index)


def test_occlusion_radius_from_beam_spacing_removes_hidden_points_between_rows(tmp_path):
    from ppkt.data.lidar_common import HDL32_BEAM_SPACING_DEG, occlusion_radius_px

    # nuScenes front camera at 224x416: fy = 1266 * 0.26 = 329 px; 1.33 degree rows are 7.6 px apart.
    assert occlusion_radius_px(np.diag([329.0, 329.0, 1.0]), HDL32_BEAM_SPACING_DEG) == 4
    assert occlusion_radius_px(np.diag([100.0, 100.0, 1.0]), 2.0) == 2
    write_kitti_object(tmp_path, frames=1)
    sample = KittiObjectSamples(tmp_path)[0]
    cam2, seen = lidar_rows_scene(2.0)
    everything = pairs_of(sample, cam2, beam_spacing_deg=2.0, occlusion=False).point_index.numpy()
    hidden_paired = int((~seen[everything]).sum())
    assert hidden_paired > 50
    # A per-pixel z-buffer misses them: they fall between the board's rows.
    per_pixel = pairs_of(sample, cam2, beam_spacing_deg=0.0).point_index.numpy()
    assert (~seen[per_pixel]).sum() == hidden_paired
    kept = pairs_of(sample, cam2, beam_spacing_deg=2.0).point_index.numpy()
    assert (~seen[kept]).sum() == 0
    # Visible points are kept (the board entirely, the wall away from the board's edge).
    lost = np.setdiff1d(everything[seen[everything]], kept)
    assert len(lost) < 0.1 * seen[everything].sum()


def test_check_data_scans_kitti_object_and_raw(tmp_path):
    from ppkt.data.check import detect_format, scan_dataset
    from ppkt.data.lidar_common import BAD_CALIBRATION, NO_PAIRS

    ids = write_kitti_object(tmp_path / "object", frames=4)
    write_kitti_raw(tmp_path / "raw", frames=2, num_points=300)
    assert detect_format(tmp_path / "object") == "kitti" and detect_format(tmp_path / "raw") == "kitti-raw"
    assert scan_dataset(tmp_path / "raw").frames_usable == 2
    report = scan_dataset(tmp_path / "object")
    assert (report.frames_found, report.frames_usable) == (4, 4)
    base = tmp_path / "object" / "training"
    (base / "calib" / f"{ids[0]}.txt").write_text("P2: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    # Points all behind the camera: what a flipped calibration looks like.
    write_velodyne(base / "velodyne" / f"{ids[1]}.bin", np.array([[-5.0, 0, 0, 1], [-9, 1, 1, 0]]))
    report = scan_dataset(tmp_path / "object", "kitti")
    assert report.frames_usable == 2 and report.skipped == {BAD_CALIBRATION: 1, NO_PAIRS: 1}


def test_check_data_counts_unexpected_failures(tmp_path, monkeypatch):
    from ppkt.data import kitti
    from ppkt.data.check import scan_dataset
    from ppkt.data.report import UNREADABLE

    write_kitti_object(tmp_path, frames=2)
    real = kitti.read_kitti_points

    def flaky(path):
        if path.stem == "000001":
            raise MemoryError("simulated")
        return real(path)

    monkeypatch.setattr(kitti, "read_kitti_points", flaky)
    report = scan_dataset(tmp_path, "kitti")
    assert report.frames_usable == 1 and report.skipped == {UNREADABLE: 1}
    assert "000001.bin: unreadable (MemoryError: simulated)" in report.examples[UNREADABLE][0]

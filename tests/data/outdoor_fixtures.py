"""Writers of tiny nuScenes, KITTI (object and raw) and SemanticKITTI datasets in their exact formats.

The geometry is chosen so that tests can predict pixels by hand: every camera has
``fx = fy = 100`` with the principal point at the image centre, the nuScenes ego vehicle drives
and turns between the lidar and camera timestamps, and the KITTI-style cameras are offset from
the rectified reference camera by a stereo baseline. Quaternions and rotations written here come
from ``scipy.spatial.transform`` so that the readers' own quaternion code is checked against an
independent implementation.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

IMAGE_HW = (60, 80)
FOCAL = 100.0


def fixture_K(image_hw=IMAGE_HW) -> np.ndarray:
    h, w = image_hw
    return np.array([[FOCAL, 0.0, (w - 1) / 2], [0.0, FOCAL, (h - 1) / 2], [0.0, 0.0, 1.0]])


def token(*parts) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def quat_wxyz(rotation: Rotation) -> list[float]:
    x, y, z, w = rotation.as_quat()
    return [float(w), float(x), float(y), float(z)]


def pose_matrix(rotation: Rotation, translation) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = rotation.as_matrix()
    out[:3, 3] = translation
    return out


def write_image(path: Path, color, image_hw=IMAGE_HW, textured: bool = False) -> None:
    """A uniform image of ``color``; ``textured`` adds photo-like structure (for read-speed figures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((*image_hw, 3), color, dtype=np.float32)
    if textured:
        rng = np.random.default_rng(zlib.crc32(path.name.encode()))
        coarse = Image.fromarray(
            rng.integers(0, 255, (image_hw[0] // 16 + 1, image_hw[1] // 16 + 1, 3), np.uint8)
        )
        image = 0.5 * image + 0.4 * np.asarray(coarse.resize(image_hw[::-1], Image.BILINEAR), np.float32)
        image += rng.normal(0, 6, image.shape)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)


# ---------------------------------------------------------------------------------------------
# nuScenes
# ---------------------------------------------------------------------------------------------

NUSC_CAMERA_YAW_DEG = {
    "CAM_FRONT": 0.0,
    "CAM_FRONT_RIGHT": -55.0,
    "CAM_BACK_RIGHT": -110.0,
    "CAM_BACK": 180.0,
    "CAM_BACK_LEFT": 110.0,
    "CAM_FRONT_LEFT": 55.0,
}
# Camera axes (x right, y down, z forward) in the ego frame (x forward, y left, z up) for a camera
# looking forward: columns are the camera axes.
CAMERA_LOOKING_FORWARD = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
NUSC_LIDAR_TRANSLATION = (0.94, 0.0, 1.84)
NUSC_LIDAR_ROTATION = Rotation.from_euler("z", -90.0, degrees=True)


def nusc_camera_extrinsics(channel: str) -> tuple[Rotation, np.ndarray]:
    yaw = Rotation.from_euler("z", NUSC_CAMERA_YAW_DEG[channel], degrees=True)
    rotation = yaw * Rotation.from_matrix(CAMERA_LOOKING_FORWARD)
    translation = yaw.apply([1.7, 0.0, 1.5])
    return rotation, translation


def nusc_ego_pose(timestamp_us: int) -> tuple[Rotation, np.ndarray]:
    """The car drives at 10 m/s and turns at 0.5 rad/s: 16 ms between sensors moves it by 16 cm."""
    t = (timestamp_us - 1_532_402_900_000_000) * 1e-6
    yaw = 0.3 + 0.5 * t
    rotation = Rotation.from_euler("xyz", [0.01, -0.02, yaw])
    translation = np.array([400.0 + 10.0 * t * np.cos(yaw), 1100.0 + 10.0 * t * np.sin(yaw), 0.2])
    return rotation, translation


def nusc_camera_time(lidar_time: int, channel: str) -> int:
    return lidar_time + 8000 + 4000 * list(NUSC_CAMERA_YAW_DEG).index(channel)


@dataclass
class NuScenesFixture:
    root: Path
    version: str
    sample_tokens: list[str]
    lidar_tokens: list[str]
    lidar_paths: list[Path]
    lidar_times: list[int]
    scene_of_sample: list[str]
    lidarseg_paths: list[Path] = field(default_factory=list)


def write_nuscenes(
    root: Path,
    *,
    version: str = "v1.0-mini",
    scenes: tuple[str, ...] = ("scene-0061", "scene-0103"),
    samples_per_scene: int = 2,
    num_points: int = 40,
    seed: int = 0,
    with_lidarseg: bool = True,
    category_index: bool = True,
    image_hw: tuple[int, int] = IMAGE_HW,
    textured: bool = False,
) -> NuScenesFixture:
    rng = np.random.default_rng(seed)
    root = Path(root)
    tables = root / version
    tables.mkdir(parents=True, exist_ok=True)
    sensors, calibrated, scene_rows, sample_rows, sample_data, ego_poses, lidarseg = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    channels = [("LIDAR_TOP", "lidar"), *((c, "camera") for c in NUSC_CAMERA_YAW_DEG)]
    calib_token = {}
    K = fixture_K(image_hw)
    for channel, modality in channels:
        sensors.append({"token": token("sensor", channel), "channel": channel, "modality": modality})
        if modality == "lidar":
            rotation, translation, intrinsic = NUSC_LIDAR_ROTATION, NUSC_LIDAR_TRANSLATION, []
        else:
            rotation, translation = nusc_camera_extrinsics(channel)
            intrinsic = K.tolist()
        calib_token[channel] = token("calib", channel)
        calibrated.append(
            {
                "token": calib_token[channel],
                "sensor_token": token("sensor", channel),
                "translation": [float(v) for v in translation],
                "rotation": quat_wxyz(rotation),
                "camera_intrinsic": intrinsic,
            }
        )
    fixture = NuScenesFixture(root, version, [], [], [], [], [])
    time = 1_532_402_900_000_000
    for scene_index, scene_name in enumerate(scenes):
        scene_token = token("scene", scene_name)
        tokens = [token("sample", scene_name, i) for i in range(samples_per_scene)]
        scene_rows.append(
            {
                "token": scene_token,
                "log_token": token("log", scene_index),
                "nbr_samples": samples_per_scene,
                "first_sample_token": tokens[0],
                "last_sample_token": tokens[-1],
                "name": scene_name,
                "description": "fixture",
            }
        )
        for i, sample_token in enumerate(tokens):
            time += 500_000
            sample_rows.append(
                {
                    "token": sample_token,
                    "timestamp": time,
                    "prev": tokens[i - 1] if i else "",
                    "next": tokens[i + 1] if i + 1 < len(tokens) else "",
                    "scene_token": scene_token,
                }
            )
            for channel, modality in channels:
                stamp = time if modality == "lidar" else nusc_camera_time(time, channel)
                rotation, translation = nusc_ego_pose(stamp)
                pose_token = token("ego", sample_token, channel)
                ego_poses.append(
                    {
                        "token": pose_token,
                        "timestamp": stamp,
                        "rotation": quat_wxyz(rotation),
                        "translation": translation.tolist(),
                    }
                )
                sd_token = token("sd", sample_token, channel)
                name = f"n015-2018-07-24-11-22-45+0800__{channel}__{stamp}"
                filename = (
                    f"samples/{channel}/{name}.pcd.bin"
                    if modality == "lidar"
                    else f"samples/{channel}/{name}.jpg"
                )
                sample_data.append(
                    {
                        "token": sd_token,
                        "sample_token": sample_token,
                        "ego_pose_token": pose_token,
                        "calibrated_sensor_token": calib_token[channel],
                        "timestamp": stamp,
                        "fileformat": "pcd" if modality == "lidar" else "jpg",
                        "is_key_frame": True,
                        "height": 0 if modality == "lidar" else image_hw[0],
                        "width": 0 if modality == "lidar" else image_hw[1],
                        "filename": filename,
                        "prev": "",
                        "next": "",
                    }
                )
                # A non-key-frame sweep between samples, which the reader must ignore.
                sample_data.append({**sample_data[-1], "token": sd_token + "x", "is_key_frame": False,
                                    "filename": filename.replace("samples/", "sweeps/")})  # fmt: skip
                if modality == "lidar":
                    values = np.concatenate(
                        [
                            rng.uniform(-20, 20, (num_points, 3)),
                            rng.uniform(0, 255, (num_points, 1)),
                            rng.integers(0, 32, (num_points, 1)),
                        ],
                        axis=1,
                    ).astype("<f4")
                    path = root / filename
                    path.parent.mkdir(parents=True, exist_ok=True)
                    values.tofile(path)
                    fixture.sample_tokens.append(sample_token)
                    fixture.lidar_tokens.append(sd_token)
                    fixture.lidar_paths.append(path)
                    fixture.lidar_times.append(stamp)
                    fixture.scene_of_sample.append(scene_name)
                    if with_lidarseg:
                        label_name = f"lidarseg/{version}/{sd_token}_lidarseg.bin"
                        (root / label_name).parent.mkdir(parents=True, exist_ok=True)
                        rng.integers(0, 32, num_points).astype(np.uint8).tofile(root / label_name)
                        lidarseg.append({"token": token("ls", sd_token), "sample_data_token": sd_token,
                                         "filename": label_name})  # fmt: skip
                        fixture.lidarseg_paths.append(root / label_name)
                else:
                    color = (30 * list(NUSC_CAMERA_YAW_DEG).index(channel), 120, 200)
                    write_image(root / filename, color, image_hw, textured)
    from ppkt.data.nuscenes import LIDARSEG_GENERAL_CLASSES

    categories = [
        {
            "token": token("cat", name),
            "name": name,
            "description": "",
            **({"index": i} if category_index else {}),
        }
        for i, name in enumerate(LIDARSEG_GENERAL_CLASSES)
    ]
    for name, rows in [
        ("sensor", sensors),
        ("calibrated_sensor", calibrated),
        ("scene", scene_rows),
        ("sample", sample_rows),
        ("sample_data", sample_data),
        ("ego_pose", ego_poses),
        ("category", categories),
        *([("lidarseg", lidarseg)] if with_lidarseg else []),
    ]:
        (tables / f"{name}.json").write_text(json.dumps(rows))
    return fixture


def nusc_lidar_from_global(lidar_time: int) -> np.ndarray:
    """Independent path (scipy rotations): lidar_from_global at a lidar timestamp."""
    ego_rotation, ego_translation = nusc_ego_pose(lidar_time)
    global_from_lidar = pose_matrix(ego_rotation, ego_translation) @ pose_matrix(
        NUSC_LIDAR_ROTATION, NUSC_LIDAR_TRANSLATION
    )
    return np.linalg.inv(global_from_lidar)


def nusc_global_from_camera(lidar_time: int, channel: str) -> np.ndarray:
    ego_rotation, ego_translation = nusc_ego_pose(nusc_camera_time(lidar_time, channel))
    rotation, translation = nusc_camera_extrinsics(channel)
    return pose_matrix(ego_rotation, ego_translation) @ pose_matrix(rotation, translation)


# ---------------------------------------------------------------------------------------------
# KITTI: a rectified reference camera 0, camera 2 offset by a baseline, velodyne behind it.
# ---------------------------------------------------------------------------------------------

# Camera 2 sits 6 cm left of the rectified reference camera 0 (as in KITTI), in camera-0 rectified axes.
KITTI_CAM2_POSITION = np.array([-0.06, 0.001, -0.002])
# Velodyne (x forward, y left, z up) to unrectified camera 0, plus a small rectifying rotation.
KITTI_TR_ROTATION = Rotation.from_euler("xyz", [0.5, -0.3, 0.2], degrees=True) * Rotation.from_matrix(
    CAMERA_LOOKING_FORWARD.T
)
KITTI_TR_TRANSLATION = np.array([-0.004, -0.076, -0.27])
KITTI_R0_RECT = Rotation.from_euler("xyz", [0.4, -0.2, 0.6], degrees=True).as_matrix()


def kitti_P2(image_hw=IMAGE_HW) -> np.ndarray:
    K = fixture_K(image_hw)
    # P2 = K [I | t] where t is the translation of rect-camera-0 coordinates into camera 2's.
    return K @ np.hstack([np.eye(3), -KITTI_CAM2_POSITION[:, None]])


def kitti_P0(image_hw=IMAGE_HW) -> np.ndarray:
    return fixture_K(image_hw) @ np.hstack([np.eye(3), np.zeros((3, 1))])


def kitti_tr_velo_to_cam() -> np.ndarray:
    return np.hstack([KITTI_TR_ROTATION.as_matrix(), KITTI_TR_TRANSLATION[:, None]])


def _row(values) -> str:
    return " ".join(f"{v:.12e}" for v in np.asarray(values).ravel())


def write_velodyne(path: Path, points: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.asarray(points, dtype="<f4").reshape(-1, 4).tofile(path)


def random_velodyne(rng, n: int) -> np.ndarray:
    return np.concatenate([rng.uniform(-30, 30, (n, 3)), rng.uniform(0, 1, (n, 1))], axis=1).astype("<f4")


def write_kitti_object(
    root: Path,
    *,
    frames: int = 3,
    num_points: int = 200,
    seed: int = 0,
    image_hw: tuple[int, int] = IMAGE_HW,
    textured: bool = False,
) -> list[str]:
    """``<root>/training/{velodyne,image_2,calib}`` and ``ImageSets/train.txt``; returns frame ids."""
    rng = np.random.default_rng(seed)
    ids = [f"{i:06d}" for i in range(frames)]
    for frame_id in ids:
        base = Path(root) / "training"
        write_velodyne(base / "velodyne" / f"{frame_id}.bin", random_velodyne(rng, num_points))
        write_image(base / "image_2" / f"{frame_id}.png", (200, 100, 50), image_hw, textured)
        (base / "calib").mkdir(parents=True, exist_ok=True)
        P0, P2 = kitti_P0(image_hw), kitti_P2(image_hw)
        (base / "calib" / f"{frame_id}.txt").write_text(
            f"P0: {_row(P0)}\nP1: {_row(P0)}\n"
            f"P2: {_row(P2)}\nP3: {_row(P2)}\n"
            f"R0_rect: {_row(KITTI_R0_RECT)}\nTr_velo_to_cam: {_row(kitti_tr_velo_to_cam())}\n"
            f"Tr_imu_to_velo: {_row(np.eye(4)[:3])}\n\n"
        )
    (Path(root) / "ImageSets").mkdir(parents=True, exist_ok=True)
    (Path(root) / "ImageSets" / "train.txt").write_text("\n".join(ids[:-1]) + "\n")
    (Path(root) / "ImageSets" / "val.txt").write_text(ids[-1] + "\n")
    return ids


def write_kitti_raw(
    root: Path,
    *,
    date: str = "2011_09_26",
    drive: str = "0001",
    frames: int = 2,
    num_points: int = 40,
    seed=0,
) -> Path:
    """``<root>/<date>/{calib_cam_to_cam,calib_velo_to_cam}.txt`` and one synced drive."""
    rng = np.random.default_rng(seed)
    day = Path(root) / date
    drive_dir = day / f"{date}_drive_{drive}_sync"
    day.mkdir(parents=True, exist_ok=True)
    h, w = IMAGE_HW
    (day / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\ncorner_dist: 9.950000e-02\n"
        f"S_00: {w:.6e} {h:.6e}\nK_00: {_row(fixture_K())}\nR_00: {_row(np.eye(3))}\nT_00: 0 0 0\n"
        f"S_rect_00: {w:.6e} {h:.6e}\nR_rect_00: {_row(KITTI_R0_RECT)}\nP_rect_00: {_row(kitti_P0())}\n"
        f"R_rect_02: {_row(np.eye(3))}\nP_rect_02: {_row(kitti_P2())}\n"
    )
    (day / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\n"
        f"R: {_row(KITTI_TR_ROTATION.as_matrix())}\nT: {_row(KITTI_TR_TRANSLATION)}\n"
        "delta_f: 0.000000e+00 0.000000e+00\ndelta_c: 0.000000e+00 0.000000e+00\n"
    )
    for i in range(frames):
        write_velodyne(
            drive_dir / "velodyne_points" / "data" / f"{i:010d}.bin", random_velodyne(rng, num_points)
        )
        write_image(drive_dir / "image_02" / "data" / f"{i:010d}.png", (10, 200, 30))
    return drive_dir


# ---------------------------------------------------------------------------------------------
# SemanticKITTI
# ---------------------------------------------------------------------------------------------

SEMANTICKITTI_RAW_IDS = (0, 1, 10, 11, 13, 15, 16, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 52, 60, 70, 71,
                         72, 80, 81, 99, 252, 253, 254, 255, 256, 257, 258, 259)  # fmt: skip


def write_semantickitti(
    root: Path,
    *,
    sequences: tuple[str, ...] = ("00", "08"),
    frames: int = 2,
    num_points: int = 40,
    seed: int = 0,
    with_labels: bool = True,
    with_images: bool = True,
) -> Path:
    """``<root>/dataset/sequences/XX/{velodyne,labels,image_2,calib.txt}``; returns the sequences dir."""
    rng = np.random.default_rng(seed)
    seq_root = Path(root) / "dataset" / "sequences"
    # The odometry Tr maps velodyne into the *rectified* camera 0 (no separate R0_rect).
    tr = np.hstack([KITTI_R0_RECT, np.zeros((3, 1))]) @ np.vstack([kitti_tr_velo_to_cam(), [0, 0, 0, 1]])
    for seq in sequences:
        seq_dir = seq_root / seq
        seq_dir.mkdir(parents=True, exist_ok=True)
        (seq_dir / "calib.txt").write_text(
            f"P0: {_row(kitti_P0())}\nP1: {_row(kitti_P0())}\nP2: {_row(kitti_P2())}\n"
            f"P3: {_row(kitti_P2())}\nTr: {_row(tr)}\n"
        )
        for i in range(frames):
            write_velodyne(seq_dir / "velodyne" / f"{i:06d}.bin", random_velodyne(rng, num_points))
            if with_labels:
                semantic = rng.choice(SEMANTICKITTI_RAW_IDS, num_points).astype(np.uint32)
                instance = rng.integers(0, 5, num_points).astype(np.uint32)
                (seq_dir / "labels").mkdir(exist_ok=True)
                (semantic | (instance << 16)).astype("<u4").tofile(seq_dir / "labels" / f"{i:06d}.label")
            if with_images:
                write_image(seq_dir / "image_2" / f"{i:06d}.png", (90, 90, 90))
    return seq_root

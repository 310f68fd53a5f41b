"""nuScenes (v1.0) lidar + six cameras, read from the JSON tables without nuscenes-devkit.

Layout under ``root``::

    v1.0-<version>/{sample,sample_data,calibrated_sensor,ego_pose,sensor,scene}.json
    v1.0-<version>/{category,lidarseg}.json        (lidarseg only)
    samples/LIDAR_TOP/*.pcd.bin                     float32 x, y, z, intensity, ring (5 per point)
    samples/CAM_*/*.jpg
    lidarseg/v1.0-<version>/<lidar sample_data token>_lidarseg.bin   uint8 per point

Only key frames are read (the annotated 2 Hz samples). The cameras fire at other times than the
lidar while the car moves at up to ~15 m/s, so each camera is placed through the ego pose at its
*own* timestamp (docs/conventions.md names)::

    camera_from_lidar = camera_from_ego @ ego_from_global(t_camera)
                        @ global_from_ego(t_lidar) @ ego_from_lidar

Points stay in the LIDAR_TOP frame (x right, y forward, z up, as nuScenes defines it).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppkt.data.lidar_common import (
    BAD_CALIBRATION,
    BAD_TABLE,
    HDL32_BEAM_SPACING_DEG,
    MISSING_CAMERA,
    NO_LIDAR,
    RecordSamples,
    invert_rigid,
    load_rgb,
    map_labels,
    quaternion_to_rotation,
    read_float_records,
    read_uint_records,
    require_file,
    rigid_transform,
)
from ppkt.data.report import MISSING_FILE, FrameError
from ppkt.data.types import IGNORE_LABEL, CameraImage, LabeledScene, LidarCameraSample

NUSCENES_CAMERAS: tuple[str, ...] = (
    "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT",
)  # fmt: skip
LIDAR_CHANNEL = "LIDAR_TOP"
POINT_FIELDS = 5

NUSCENES16_CLASS_NAMES: tuple[str, ...] = (
    "barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian",
    "traffic_cone", "trailer", "truck", "driveable_surface", "other_flat", "sidewalk", "terrain",
    "manmade", "vegetation",
)  # fmt: skip

# The 32 general classes of nuScenes-lidarseg in the order of their ``index`` in category.json
# (used when category.json carries no index). Source: nuScenes-lidarseg category table.
LIDARSEG_GENERAL_CLASSES: tuple[str, ...] = (
    "noise", "animal", "human.pedestrian.adult", "human.pedestrian.child",
    "human.pedestrian.construction_worker", "human.pedestrian.personal_mobility",
    "human.pedestrian.police_officer", "human.pedestrian.stroller", "human.pedestrian.wheelchair",
    "movable_object.barrier", "movable_object.debris", "movable_object.pushable_pullable",
    "movable_object.trafficcone", "static_object.bicycle_rack", "vehicle.bicycle", "vehicle.bus.bendy",
    "vehicle.bus.rigid", "vehicle.car", "vehicle.construction", "vehicle.emergency.ambulance",
    "vehicle.emergency.police", "vehicle.motorcycle", "vehicle.trailer", "vehicle.truck",
    "flat.driveable_surface", "flat.other", "flat.sidewalk", "flat.terrain", "static.manmade",
    "static.other", "static.vegetation", "vehicle.ego",
)  # fmt: skip

# General class -> lidarseg challenge class (the 16 classes every nuScenes segmentation paper uses),
# as in nuscenes-devkit's eval/lidarseg LidarsegClassMapper. Classes not listed are ignored: noise,
# animal, wheelchair, stroller, personal_mobility, debris, pushable_pullable, bicycle_rack,
# ambulance, police vehicle, static.other, vehicle.ego.
GENERAL_TO_NUSCENES16: dict[str, str] = {
    "movable_object.barrier": "barrier",
    "vehicle.bicycle": "bicycle",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
    "flat.driveable_surface": "driveable_surface",
    "flat.other": "other_flat",
    "flat.sidewalk": "sidewalk",
    "flat.terrain": "terrain",
    "static.manmade": "manmade",
    "static.vegetation": "vegetation",
}


def _scene_numbers(spec: str) -> tuple[str, ...]:
    names = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        for number in range(int(first), int(last or first) + 1):
            names.append(f"scene-{number:04d}")
    return tuple(names)


# The official validation scenes of v1.0-trainval (nuscenes-devkit utils/splits.py), as ranges of
# scene numbers; train = every other trainval scene (700 of 850).
NUSCENES_VAL_SCENES: tuple[str, ...] = _scene_numbers(
    "3, 12-18, 35-36, 38-39, 92-110, 221, 268-278, 329-332, 344-346, 519-524, 552-565, 625-627, "
    "629-630, 632-638, 770-771, 775, 777-778, 780-784, 794-800, 802, 904-917, 919-931, 962-963, "
    "966-969, 971-972, 1059-1073"
)
# SLidR's held-out "verifying" scenes (CUSTOM_SPLIT in valeoai/SLidR pretrain/dataloader_nuscenes.py):
# it pretrains on the other 600 train scenes ("parametrizing") and tunes on these 100.
SLIDR_VERIFY_SCENES: tuple[str, ...] = _scene_numbers(
    "8, 9, 19, 29, 32, 42, 45, 49, 52, 54, 56, 66, 67, 73, 131, 152, 166, 168, 183, 190, 194, 208, 210, "
    "211, 241, 243, 248, 259, 260, 261, 287, 292, 297, 305, 306, 350, 352, 358, 361, 365, 368, 377, 388, "
    "391, 395, 413, 427, 428, 438, 444, 452, 453, 459, 463, 464, 475, 513, 533, 544, 575, 587, 589, 642, "
    "652, 658, 669, 678, 687, 701, 703, 706, 710, 715, 726, 735, 740, 758, 786, 790, 804, 806, 847, 856, "
    "868, 882, 897, 899, 976, 996, 1012, 1015, 1016, 1018, 1020, 1024, 1044, 1058, 1094, 1098, 1107"
)
NUSCENES_MINI_SPLITS: dict[str, tuple[str, ...]] = {
    "mini_train": _scene_numbers("61, 553, 655, 757, 796, 1077, 1094, 1100"),
    "mini_val": _scene_numbers("103, 916"),
}


def general_to_nuscenes16_lut(general_names: Sequence[str] | dict[int, str]) -> np.ndarray:
    """Lookup table raw lidarseg id -> 16-class id / IGNORE_LABEL; ids with no category get -2.

    Args:
        general_names: the general class of each raw id, as a sequence (index = id) or a mapping
            id -> name (from category.json's ``index`` field).
    """
    items = general_names.items() if isinstance(general_names, dict) else enumerate(general_names)
    items = list(items)
    lut = np.full(max(index for index, _ in items) + 1, -2, dtype=np.int64)
    for index, name in items:
        coarse = GENERAL_TO_NUSCENES16.get(name)
        lut[index] = IGNORE_LABEL if coarse is None else NUSCENES16_CLASS_NAMES.index(coarse)
    return lut


def compose_camera_from_lidar(
    ego_from_lidar: np.ndarray,
    global_from_ego_at_lidar: np.ndarray,
    global_from_ego_at_camera: np.ndarray,
    ego_from_camera: np.ndarray,
) -> np.ndarray:
    """``camera_from_lidar`` through the global frame, with the ego pose at each sensor's time."""
    global_from_lidar = global_from_ego_at_lidar @ ego_from_lidar
    camera_from_global = invert_rigid(ego_from_camera) @ invert_rigid(global_from_ego_at_camera)
    return camera_from_global @ global_from_lidar


@dataclass(frozen=True)
class NuScenesSensorRecord:
    """One key-frame sensor reading, resolved from the tables.

    Attributes:
        channel: sensor channel, e.g. "LIDAR_TOP", "CAM_FRONT".
        path: the data file.
        timestamp: microseconds.
        ego_from_sensor: ``(4, 4)`` calibrated_sensor pose.
        global_from_ego: ``(4, 4)`` ego pose at ``timestamp``.
        K: ``(3, 3)`` camera intrinsics, None for the lidar.
        token: sample_data token.
    """

    channel: str
    path: Path
    timestamp: int
    ego_from_sensor: np.ndarray
    global_from_ego: np.ndarray
    K: np.ndarray | None
    token: str


@dataclass(frozen=True)
class NuScenesSampleRecord:
    """The files and calibration of one key-frame sample (no data loaded yet)."""

    sample_token: str
    scene_name: str
    timestamp: int
    lidar: NuScenesSensorRecord
    cameras: tuple[NuScenesSensorRecord, ...]
    lidarseg_path: Path | None


_SAMPLE_DATA_FIELDS = (
    "token", "sample_token", "calibrated_sensor_token", "ego_pose_token", "filename", "timestamp",
)  # fmt: skip


def _load_table(table_dir: Path, name: str, fields: Sequence[str] = ()) -> list[dict]:
    """The records of ``<table_dir>/<name>.json``; each must be an object with every one of ``fields``."""
    path = require_file(table_dir / f"{name}.json", f"nuScenes table {name}.json")
    try:
        with open(path) as handle:
            records = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FrameError(path, BAD_TABLE, f"invalid JSON ({error})") from error
    if not isinstance(records, list):
        raise FrameError(path, BAD_TABLE, "expected a list of records")
    required = set(fields)
    for number, record in enumerate(records):
        if not isinstance(record, dict) or not required <= record.keys():
            missing = sorted(required - set(record)) if isinstance(record, dict) else "all (not an object)"
            token = record.get("token", "?") if isinstance(record, dict) else "?"
            raise FrameError(path, BAD_TABLE, f"record {number} (token {token}) has no field {missing}")
    return records


def _pose(record: dict, table: Path) -> np.ndarray:
    try:
        return rigid_transform(quaternion_to_rotation(record["rotation"]), record["translation"])
    except (KeyError, ValueError) as error:
        raise FrameError(table, BAD_CALIBRATION, f"record {record.get('token')}: {error}") from error


def resolve_split(split: str | Sequence[str] | None, version: str, scene_names: Sequence[str]) -> list[str]:
    """Scene names of a split: None (all), "train"/"val" (trainval), "slidr_parametrize" (train
    minus SLidR's 100 held-out scenes) / "slidr_verify" (those 100), "mini_train"/"mini_val",
    "test" (all scenes of v1.0-test), or an explicit list of scene names."""
    available = set(scene_names)
    if split is None:
        return list(scene_names)
    if isinstance(split, str):
        if split in NUSCENES_MINI_SPLITS:
            wanted = NUSCENES_MINI_SPLITS[split]
        elif split in ("train", "val", "slidr_parametrize", "slidr_verify"):
            if not version.endswith("trainval"):
                raise ValueError(f"nuScenes split {split!r} needs version v1.0-trainval, not {version!r}")
            val = set(NUSCENES_VAL_SCENES)
            wanted = [n for n in scene_names if (n in val) == (split == "val")]
            if split.startswith("slidr_"):
                verify = set(SLIDR_VERIFY_SCENES)
                wanted = [n for n in wanted if (n in verify) == (split == "slidr_verify")]
        elif split == "test":
            if not version.endswith("test"):
                raise ValueError(f"nuScenes split 'test' needs version v1.0-test, not {version!r}")
            wanted = list(scene_names)
        else:
            raise ValueError(
                f"unknown nuScenes split {split!r}: "
                "use train, val, test, slidr_parametrize, slidr_verify, mini_train, mini_val "
                "or a list of scene names"
            )
    else:
        wanted = list(split)
    missing = [n for n in wanted if n not in available]
    if missing:
        raise ValueError(f"scenes {missing[:5]} of split {split!r} are not in {version}/scene.json")
    return list(wanted)


def version_for_split(root: str | Path, split: str | Sequence[str] | None) -> str:
    """The table version a split belongs to: mini_* -> v1.0-mini, train/val -> v1.0-trainval,
    test -> v1.0-test; otherwise the only ``v1.0-*`` folder under ``root``."""
    if isinstance(split, str):
        if split.startswith("mini_"):
            return "v1.0-mini"
        if split in ("train", "val", "slidr_parametrize", "slidr_verify"):
            return "v1.0-trainval"
        if split == "test":
            return "v1.0-test"
    found = sorted(p.parent.name for p in Path(root).glob("v1.0-*/sample.json"))
    if len(found) != 1:
        raise FrameError(
            root, MISSING_FILE, f"cannot choose the nuScenes version among {found}; pass version="
        )
    return found[0]


class NuScenesSamples(RecordSamples):
    """Key-frame samples of nuScenes as :class:`LidarCameraSample` (a Sequence usable as a Dataset).

    Args:
        root: dataset root (holds ``samples/`` and ``v1.0-<version>/``).
        version: table folder name, e.g. "v1.0-mini", "v1.0-trainval"; None: from the split
            (:func:`version_for_split`).
        split: see :func:`resolve_split`.
        cameras: camera channels to load, in this order (empty: lidar only).
        with_labels: read lidarseg labels mapped to :data:`NUSCENES16_CLASS_NAMES`.

    Samples whose tables lack a requested camera key frame are skipped and counted in
    ``skipped`` (reason -> count). Missing or broken files raise :class:`FrameError`
    when the sample is read.
    """

    beam_spacing_deg: float = HDL32_BEAM_SPACING_DEG
    """Vertical angle between lidar beams, for :func:`ppkt.data.lidar_common.sample_pairs`."""

    def __init__(
        self,
        root: str | Path,
        version: str | None = "v1.0-mini",
        split: str | Sequence[str] | None = None,
        cameras: Sequence[str] = NUSCENES_CAMERAS,
        with_labels: bool = False,
    ):
        self.root = Path(root)
        version = version or version_for_split(self.root, split)
        self.version = version
        self.cameras = tuple(cameras)
        self.with_labels = with_labels
        unknown = [c for c in self.cameras if c not in NUSCENES_CAMERAS]
        if unknown:
            raise ValueError(f"unknown nuScenes cameras {unknown}; known: {NUSCENES_CAMERAS}")
        table_dir = self.root / version
        if not table_dir.is_dir():
            raise FrameError(table_dir, MISSING_FILE, f"no nuScenes table folder (version {version!r})")
        self.skipped: Counter[str] = Counter()
        self.records = self._index(table_dir, split)
        self._label_lut = self._lidarseg_lut(table_dir) if with_labels else None

    def _index(self, table_dir: Path, split) -> list[NuScenesSampleRecord]:
        scenes = _load_table(table_dir, "scene", ("token", "name"))
        scene_names = [s["name"] for s in scenes]
        wanted = set(resolve_split(split, self.version, scene_names))
        scene_order = {s["token"]: i for i, s in enumerate(scenes) if s["name"] in wanted}
        scene_name = {s["token"]: s["name"] for s in scenes}

        channel_of_sensor = {
            s["token"]: s["channel"] for s in _load_table(table_dir, "sensor", ("token", "channel"))
        }
        calib_table = table_dir / "calibrated_sensor.json"
        calibration = {}
        for c in _load_table(table_dir, "calibrated_sensor", ("token", "sensor_token")):
            K = np.asarray(c.get("camera_intrinsic") or [], dtype=np.float64)
            calibration[c["token"]] = (
                channel_of_sensor.get(c["sensor_token"]),
                _pose(c, calib_table),
                K.reshape(3, 3) if K.size == 9 else None,
            )
        samples = [
            s
            for s in _load_table(table_dir, "sample", ("token", "scene_token", "timestamp"))
            if s["scene_token"] in scene_order
        ]
        sample_tokens = {s["token"] for s in samples}

        # sample_data and ego_pose hold one record per sensor reading (millions for trainval):
        # keep the key frames of the wanted samples and channels, then only their ego poses, so
        # that the two big tables are never in memory together.
        wanted_channels = {LIDAR_CHANNEL, *self.cameras}
        sample_data_table = table_dir / "sample_data.json"
        key_frames = []
        for sd in _load_table(table_dir, "sample_data", _SAMPLE_DATA_FIELDS):
            if not sd.get("is_key_frame", False) or sd["sample_token"] not in sample_tokens:
                continue
            calib = calibration.get(sd["calibrated_sensor_token"])
            if calib is None:
                raise FrameError(
                    sample_data_table, BAD_TABLE, f"sample_data {sd['token']}: unknown calibrated_sensor"
                )
            if calib[0] in wanted_channels:
                key_frames.append((sd, calib))
        needed_poses = {sd["ego_pose_token"] for sd, _ in key_frames}
        ego_table = table_dir / "ego_pose.json"
        ego_pose = {
            e["token"]: e
            for e in _load_table(table_dir, "ego_pose", ("token",))
            if e["token"] in needed_poses
        }

        readings: dict[tuple[str, str], NuScenesSensorRecord] = {}
        for sd, (channel, ego_from_sensor, K) in key_frames:
            pose = ego_pose.get(sd["ego_pose_token"])
            if pose is None:
                raise FrameError(sample_data_table, BAD_TABLE, f"sample_data {sd['token']}: unknown ego_pose")
            readings[(sd["sample_token"], channel)] = NuScenesSensorRecord(
                channel=channel,
                path=self.root / sd["filename"],
                timestamp=int(sd["timestamp"]),
                ego_from_sensor=ego_from_sensor,
                global_from_ego=_pose(pose, ego_table),
                K=K,
                token=sd["token"],
            )

        lidarseg_files = self._lidarseg_files(table_dir) if self.with_labels else {}
        records = []
        for sample in sorted(samples, key=lambda s: (scene_order[s["scene_token"]], s["timestamp"])):
            token = sample["token"]
            lidar = readings.get((token, LIDAR_CHANNEL))
            cameras = [readings.get((token, c)) for c in self.cameras]
            if lidar is None:
                self.skipped[NO_LIDAR] += 1
                continue
            if any(c is None for c in cameras):
                self.skipped[MISSING_CAMERA] += 1
                continue
            if any(c.K is None for c in cameras):
                raise FrameError(calib_table, BAD_CALIBRATION, f"sample {token}: camera without intrinsics")
            lidarseg = None
            if self.with_labels:
                lidarseg = lidarseg_files.get(
                    lidar.token, self.root / "lidarseg" / self.version / f"{lidar.token}_lidarseg.bin"
                )
            records.append(
                NuScenesSampleRecord(
                    sample_token=token,
                    scene_name=scene_name[sample["scene_token"]],
                    timestamp=int(sample["timestamp"]),
                    lidar=lidar,
                    cameras=tuple(cameras),
                    lidarseg_path=lidarseg,
                )
            )
        return records

    def _lidarseg_files(self, table_dir: Path) -> dict[str, Path]:
        if not (table_dir / "lidarseg.json").is_file():
            return {}
        return {
            r["sample_data_token"]: self.root / r["filename"]
            for r in _load_table(table_dir, "lidarseg", ("sample_data_token", "filename"))
        }

    @staticmethod
    def _lidarseg_lut(table_dir: Path) -> np.ndarray:
        # Prefer the ids the dataset itself declares; fall back to the published order.
        path = table_dir / "category.json"
        if path.is_file():
            categories = _load_table(table_dir, "category")
            if categories and all("index" in c for c in categories):
                return general_to_nuscenes16_lut({int(c["index"]): c["name"] for c in categories})
        return general_to_nuscenes16_lut(LIDARSEG_GENERAL_CLASSES)

    def load(self, record: NuScenesSampleRecord) -> LidarCameraSample:
        values = read_float_records(record.lidar.path, POINT_FIELDS)
        images = [
            CameraImage(
                image=load_rgb(camera.path),
                K=camera.K,
                camera_from_lidar=compose_camera_from_lidar(
                    record.lidar.ego_from_sensor,
                    record.lidar.global_from_ego,
                    camera.global_from_ego,
                    camera.ego_from_sensor,
                ),
                name=camera.channel,
            )
            for camera in record.cameras
        ]
        labels = None
        if self._label_lut is not None:
            raw = read_uint_records(record.lidarseg_path, "u1", expected_count=values.shape[0])
            labels = map_labels(raw, self._label_lut, record.lidarseg_path)
        return LidarCameraSample(
            points=np.ascontiguousarray(values[:, :3]),
            intensity=np.ascontiguousarray(values[:, 3]),
            images=images,
            labels=labels,
            sample_id=record.sample_token,
            class_names=NUSCENES16_CLASS_NAMES if labels is not None else (),
        )


class NuScenesSceneSource:
    """nuScenes-lidarseg key frames as labelled "scenes" for ``ppkt.eval`` (its ``SceneSource``).

    A scene id is a sample token; points are in the lidar frame, colours are zeros (lidar has
    none: use input features ``constant``), labels are the 16 classes. Each split's index is
    built once (the trainval tables take a while to parse).
    """

    class_names: tuple[str, ...] = NUSCENES16_CLASS_NAMES

    def __init__(self, root: str | Path, version: str | None = None):
        self.root = Path(root)
        self.version = version
        self._indexes: dict[str, NuScenesSamples] = {}
        self._where: dict[str, tuple[NuScenesSamples, int]] = {}

    def _index(self, split: str | None) -> NuScenesSamples:
        key = str(split)
        if key not in self._indexes:
            samples = NuScenesSamples(
                self.root, version=self.version, split=split, cameras=(), with_labels=True
            )
            self._indexes[key] = samples
            for i, record in enumerate(samples.records):
                self._where.setdefault(record.sample_token, (samples, i))
        return self._indexes[key]

    def scene_ids(self, split: str) -> list[str]:
        return [record.sample_token for record in self._index(split).records]

    def read(self, scene_id: str) -> LabeledScene:
        if scene_id not in self._where:
            self._index(None)
        if scene_id not in self._where:
            raise KeyError(f"{self.root}: no nuScenes sample {scene_id!r}")
        samples, index = self._where[scene_id]
        sample = samples[index]
        return LabeledScene(
            points=sample.points,
            colors=np.zeros((sample.points.shape[0], 3), dtype=np.uint8),
            labels=sample.labels,
            scene_id=scene_id,
            class_names=self.class_names,
        )

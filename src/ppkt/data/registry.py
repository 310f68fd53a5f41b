"""Every dataset format in one place: the registry that every command looks formats up in.

A :class:`DatasetSpec` says what one format is and how to open it:

* ``open_frames(FrameRequest)``: the frames pretraining reads (``ppkt pretrain``,
  ``cache-teacher``, ``viz``): a Sequence of ``RGBDFrame`` (modality ``rgbd``) or of
  ``LidarCameraSample`` (modality ``lidar``);
* ``open_scenes(SceneRequest)``: labelled scenes for ``ppkt finetune`` / ``evaluate`` (a
  ``SceneSource``), where the format has labels;
* ``open_detection(SceneRequest)``: scenes with 3D boxes for ``ppkt finetune --task detection``
  (a ``DetectionSource`` of ``ppkt.eval.detection``), where the format has boxes;
* ``detect(path)``: whether ``path`` looks like this format (``check-data``, ``viz`` with
  ``--format auto``);
* ``scan``: ``check-data`` for formats whose check is not "decode every frame of
  ``open_frames``" (the lidar formats);
* ``up_axis``: ``"z"`` when the format's world is gravity-aligned, ``"slam"`` when it is
  wherever the tracker started and ``data.up_axis`` rotates it (``ppkt.data.gravity``).

Adding a dataset is one reader module and one :func:`register` call at the end of this file, plus
its name among the ``data.kind`` choices of the configs (``ppkt.train.config.DataConfig``,
``ppkt.eval.config.EvalDataConfig``: typed choices for ``--help``; tests/data/test_registry.py
checks that they match the registry) and a fixture in that test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ppkt.config import RangeCheck, option
from ppkt.data import lidar_check
from ppkt.data.boxes import check_detection_scenes
from ppkt.data.check import box_check_notes
from ppkt.data.gravity import UP_AXES, tilt_degrees, up_rotation
from ppkt.data.images import read_pose_txt
from ppkt.data.kitti import KittiObjectSamples, KittiRawSamples
from ppkt.data.nuscenes import NuScenesSamples, NuScenesSceneSource
from ppkt.data.report import MAX_EXAMPLES, DataReport
from ppkt.data.rgbd_folder import RGBDFolderFrames, find_sequences
from ppkt.data.rgbd_sequences import SevenScenesFrames, TumFrames, find_tum_sequences
from ppkt.data.s3dis import S3DISSceneSource, find_areas, scan_s3dis
from ppkt.data.scannet import PAPER_FRAME_SKIP, ScanNetFrames, ScanNetSceneSource
from ppkt.data.scannet_boxes import ScanNetDetectionSource
from ppkt.data.semantickitti import SemanticKittiSamples, SemanticKittiSceneSource
from ppkt.data.sens import SensScenes
from ppkt.data.sunrgbd import SunRGBDDetectionSource
from ppkt.data.synthetic import ensure_dataset
from ppkt.data.synthetic.boxes import SyntheticDetectionSource

if TYPE_CHECKING:
    from ppkt.data.types import SceneSource

Modality = Literal["rgbd", "lidar", "points"]
"""rgbd: RGB-D frames; lidar: lidar sweeps with camera images; points: labelled point clouds only."""
UpAxis = Literal["z", "slam"]


class NoUsableData(ValueError):
    """A dataset in which nothing is usable; the message is one line naming the root and why."""


@dataclass(frozen=True)
class SyntheticRooms:
    """The generated rooms (``ppkt.data.synthetic``): the ``data.synthetic`` section of every command.

    The rooms are cached by these values, so commands and presets that give the same ones share one
    dataset. The labelled clouds and boxes do not depend on ``image_hw``, only the RGB-D frames do.
    """

    scenes: int = option(8, "synthetic data: number of rooms")
    frames_per_scene: int = option(8, "synthetic data: RGB-D frames rendered per room")
    seed: int = option(0, "synthetic data: generator seed")
    image_hw: tuple[int, int] | None = option(
        None,
        "synthetic data: rendered frame size (H,W), part of the cache key; None = pretraining's "
        "data.image_hw (required in fine-tuning and detection)",
    )

    def render_hw(self, default: tuple[int, int] | None = None) -> tuple[int, int]:
        """The frame size to render: ``image_hw``, else ``default`` (pretraining: ``data.image_hw``)."""
        hw = self.image_hw if self.image_hw is not None else default
        if hw is None:
            raise ValueError("synthetic rooms: image_hw is None here; give the rendered frame size H,W")
        return (int(hw[0]), int(hw[1]))


# The rooms of the demo presets (pretraining ``demo``, ``demo-finetune``, ``demo-linear-probe``,
# ``demo-detection``): one dataset in the cache for all of them. 96x128 is the demo teacher's input
# size, so pretraining uses the frames as rendered; fine-tuning and detection read only the clouds.
DEMO_ROOMS = SyntheticRooms(scenes=6, frames_per_scene=8, seed=0, image_hw=(96, 128))


def check_synthetic(
    check: RangeCheck, rooms: SyntheticRooms, *, required_hw: bool, name: str = "data.synthetic"
) -> None:
    """Record the values of ``rooms`` (the config's ``name`` section) that cannot be meant;
    ``required_hw``: the command has no image size of its own to render at."""
    check.number(f"{name}.scenes", low=1)
    check.number(f"{name}.frames_per_scene", low=1)
    check.number(f"{name}.seed", low=0)
    if rooms.image_hw is None:
        check.require(f"{name}.image_hw", not required_hw, "the rendered frame size H,W")
    else:
        check.require(f"{name}.image_hw", min(rooms.image_hw) >= 8, "at least 8,8")


@dataclass(frozen=True)
class FrameRequest:
    """What pretraining, cache-teacher and viz ask of a format.

    Attributes:
        root: dataset root (synthetic: cache folder, None = default).
        split: a split name the format knows (ScanNet ``scannetv2_<split>.txt``, nuScenes, KITTI
            ...) or None for everything; RGB-D sequence formats without splits ignore it.
        frame_skip: keep every k-th frame (None: the format's default).
        up_axis: ``data.up_axis`` for SLAM-style formats (``ppkt.data.gravity.UP_AXES``).
        color_from_depth: 7-Scenes: a text file with the 4x4 depth-camera-to-colour-camera
            transform (its two cameras are not registered); None = one camera.
        strict: raise the first bad frame instead of counting it.
        synthetic: parameters of the generated rooms (synthetic only).
        progress: progress bars while indexing or generating.
    """

    root: Path | None
    split: str | None = None
    frame_skip: int | None = None
    up_axis: str = "auto"
    color_from_depth: Path | None = None
    strict: bool = False
    synthetic: SyntheticRooms = SyntheticRooms()
    progress: bool = False


@dataclass(frozen=True)
class SceneRequest:
    """What fine-tuning and evaluation ask of a format.

    Attributes:
        root: dataset root (synthetic: cache folder, None = default).
        scene_lists: folder of split lists outside the dataset (ScanNet layouts; None = the root).
        label_set: class set of ScanNet's labels (``ppkt.data.scannet_classes.LABEL_SETS``).
        label_map: ScanNet's ``scannetv2-labels.combined.tsv`` for ``scannet200`` (None: in the root).
        nuscenes_version: nuScenes table folder (None = detect).
        synthetic: parameters of the generated rooms (synthetic only).
    """

    root: Path | None
    scene_lists: Path | None = None
    label_set: str = "scannet20"
    label_map: Path | None = None
    nuscenes_version: str | None = None
    synthetic: SyntheticRooms = SyntheticRooms()


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset format (see the module docstring)."""

    name: str
    modality: Modality
    summary: str
    up_axis: UpAxis
    detect: Callable[[Path], bool] | None
    open_frames: Callable[[FrameRequest], Sequence] | None
    open_scenes: Callable[[SceneRequest], SceneSource] | None = None
    scan: Callable[..., DataReport] | None = None
    default_frame_skip: int = 1
    open_detection: Callable[[SceneRequest], object] | None = None

    @property
    def has_labels(self) -> bool:
        return self.open_scenes is not None


DATASETS: dict[str, DatasetSpec] = {}
"""Every format, by name, in detection order."""


def register(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in DATASETS:
        raise ValueError(f"dataset format {spec.name!r} is registered twice")
    DATASETS[spec.name] = spec
    return spec


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset format {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def names(*, modality: Modality | None = None, labelled: bool = False, readable: bool = True) -> list[str]:
    """Registered names, optionally only one modality / those with labels / those with frames."""
    return [
        n
        for n, s in DATASETS.items()
        if (modality is None or s.modality == modality)
        and (not labelled or s.has_labels)
        and (not readable or s.open_frames is not None or s.has_labels or s.open_detection is not None)
    ]


# ------------------------------------------------------------------------------------------ detection
@dataclass(frozen=True)
class Detection:
    """The format found at a path.

    Attributes:
        format: registered name.
        root: the folder that holds it: the path itself, one of its sub-folders or its parent.
        note: how the root was found, when it is not the path given (``check-data`` prints it).
    """

    format: str
    root: Path
    note: str | None = None


def _detect_here(path: Path) -> str | None:
    for name, spec in DATASETS.items():
        if spec.detect is not None and spec.detect(path):
            return name
    return None


def detect(path: str | Path) -> Detection:
    """The format of ``path``; also accepts the dataset root one level above or below it.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: no format recognised at the path, in its sub-folders or its parent.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found")
    found = _detect_here(path)
    if found is not None:
        return Detection(found, path)
    if path.is_dir():
        for child in sorted(p for p in path.iterdir() if p.is_dir()):
            found = _detect_here(child)
            if found is not None:
                return Detection(found, child, f"read {child} (a {found} dataset one level below {path})")
    parent = path.resolve().parent
    if parent != path.resolve():
        found = _detect_here(parent)
        if found is not None:
            return Detection(found, parent, f"read {parent} (a {found} dataset one level above {path})")
    raise ValueError(
        f"{path}: cannot tell the dataset format, here or one level above or below "
        f"(known: {', '.join(n for n, s in DATASETS.items() if s.detect)}); pass it with --format"
    )


# ------------------------------------------------------------------------------------------- opening
def _require_root(name: str, root: Path | None) -> Path:
    if root is None:
        raise ValueError(f"data.root is required for data.kind {name}")
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: dataset root not found (data.kind {name})")
    return root


def no_usable_data(kind: str, root: object, report: DataReport | None) -> NoUsableData:
    """The one-line error of a dataset without a usable frame: the root and the main reason."""
    if report is None or not report.frames_found:
        return NoUsableData(f"{root}: no {kind} frames found (docs/datasets.md shows the layout)")
    reason, count = max(report.skipped.items(), key=lambda kv: kv[1], default=("unknown", 0))
    example = (report.examples.get(reason) or [""])[0]
    return NoUsableData(
        f"{root}: no usable {kind} frame of {report.frames_found} found; main reason: {reason} "
        f"({count} frames{', e.g. ' + example if example else ''}); run `ppkt check-data {root}`"
    )


def open_frames(kind: str, request: FrameRequest) -> Sequence:
    """The frames of format ``kind`` for pretraining.

    Raises:
        ValueError: unknown format, a format without frames, or (:class:`NoUsableData`) nothing
            usable in the dataset.
    """
    spec = get_spec(kind)
    if spec.open_frames is None:
        with_frames = ", ".join(n for n, s in DATASETS.items() if s.open_frames)
        raise ValueError(
            f"data.kind {kind} has no frames for pretraining (formats with frames: {with_frames})"
        )
    if request.color_from_depth is not None and kind != "7scenes":
        hint = " (rgbd-folder: color_from_depth in rgbd.yaml)" if kind == "rgbd-folder" else ""
        raise ValueError(f"data.color_from_depth is for data.kind 7scenes, not {kind}{hint}")
    frames = spec.open_frames(request)
    if len(frames) == 0:
        raise no_usable_data(kind, request.root, getattr(frames, "report", None))
    return frames


def open_scenes(kind: str, request: SceneRequest) -> SceneSource:
    """The labelled scenes of format ``kind`` for fine-tuning and evaluation."""
    spec = get_spec(kind)
    if spec.open_scenes is None:
        raise ValueError(
            f"data.kind {kind} has no labelled scenes; fine-tune on one of {', '.join(names(labelled=True))}"
        )
    if request.scene_lists is not None and kind not in ("scannet", "synthetic"):
        raise ValueError(f"data.scene_lists is for data.kind scannet or synthetic, not {kind}")
    if request.label_map is not None and request.label_set != "scannet200":
        raise ValueError("data.label_map is read for data.label_set scannet200 only")
    if request.label_set != "scannet20" and kind != "scannet":
        raise ValueError(
            f"data.label_set {request.label_set} is for data.kind scannet; {kind} has its own classes"
        )
    return spec.open_scenes(request)


def open_detection_scenes(kind: str, request: SceneRequest):
    """The scenes with 3D boxes of format ``kind`` for detection fine-tuning and evaluation."""
    spec = get_spec(kind)
    if spec.open_detection is None:
        with_boxes = ", ".join(n for n, s in DATASETS.items() if s.open_detection)
        raise ValueError(f"data.kind {kind} has no 3D boxes; detection reads one of {with_boxes}")
    if request.scene_lists is not None and kind not in ("scannet", "synthetic"):
        raise ValueError(f"data.scene_lists is for data.kind scannet or synthetic, not {kind}")
    return spec.open_detection(request)


def _frame_skip(request: FrameRequest, default: int) -> int:
    return default if request.frame_skip is None else int(request.frame_skip)


def align_gravity(frames, up_axis: str) -> None:
    """Rotate the poses of a file-per-frame reader to a z-up world (``ppkt.data.gravity``)."""

    if up_axis not in UP_AXES:
        raise ValueError(f"data.up_axis must be one of {', '.join(UP_AXES)}; got {up_axis!r}")
    poses = [r.world_from_camera for r in frames.records if r.world_from_camera is not None]
    if up_axis == "z" or not poses:
        return
    aligned_from_world, up = up_rotation(up_axis, poses)
    for record in frames.records:
        if record.world_from_camera is not None:
            record.world_from_camera = aligned_from_world @ record.world_from_camera
    shown = ", ".join(f"{v:+.2f}" for v in up)
    frames.report.notes.append(
        f"up_axis={up_axis}: world up ({shown}) rotated to +z ({tilt_degrees(up):.0f} deg)"
    )


# ---------------------------------------------------------------------------------------- the formats
def _scannet_frames(request: FrameRequest):

    root = _require_root("scannet", request.root)
    return ScanNetFrames(
        root,
        split=request.split,
        frame_skip=_frame_skip(request, PAPER_FRAME_SKIP),
        strict=request.strict,
        progress=request.progress,
    )


def _scannet_scenes(request: SceneRequest):

    root = _require_root("scannet", request.root)
    return ScanNetSceneSource(
        root, scene_lists=request.scene_lists, label_set=request.label_set, label_map=request.label_map
    )


def _synthetic_root(synthetic: SyntheticRooms, root: Path | None, progress: bool) -> Path:

    return ensure_dataset(
        scenes=synthetic.scenes,
        frames_per_scene=synthetic.frames_per_scene,
        seed=synthetic.seed,
        image_hw=synthetic.render_hw(),
        cache_dir=root,
        progress=progress,
    )


def _synthetic_frames(request: FrameRequest):

    root = _synthetic_root(request.synthetic, request.root, request.progress)
    return ScanNetFrames(root, split=request.split, frame_skip=_frame_skip(request, 1), strict=request.strict)


def _synthetic_scenes(request: SceneRequest):

    root = _synthetic_root(request.synthetic, request.root, False)
    return ScanNetSceneSource(root, scene_lists=request.scene_lists)


def _scannet_detection(request: SceneRequest):

    return ScanNetDetectionSource(_require_root("scannet", request.root), scene_lists=request.scene_lists)


def _synthetic_detection(request: SceneRequest):

    root = _synthetic_root(request.synthetic, request.root, False)
    return SyntheticDetectionSource(root, scene_lists=request.scene_lists)


def _sunrgbd_detection(request: SceneRequest):

    return SunRGBDDetectionSource(_require_root("sunrgbd", request.root))


def _is_sunrgbd(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in ("label", "depth", "calib"))


def _scan_sunrgbd(path: Path, strict: bool, **options) -> DataReport:
    """check-data of a sunrgbd_trainval export: every scene of every ``*_data_idx.txt`` (or of
    ``label/``) read, its skipped and invalid box annotations counted and named."""

    source = SunRGBDDetectionSource(path)
    splits = sorted(p.name[: -len("_data_idx.txt")] for p in path.glob("*_data_idx.txt"))
    ids = sorted({sid for split in splits for sid in source.scene_ids(split)}) or sorted(
        p.stem for p in (path / "label").glob("*.txt")
    )
    # strict: the first unreadable scene raises with its own message, in the one pass
    return box_report(path, "sunrgbd", check_detection_scenes(source, ids, strict=strict), len(ids))


def box_report(path: Path, format: str, check, scenes: int) -> DataReport:
    """A :class:`DataReport` of a box check (``ppkt.data.boxes.DetectionCheck``): scenes as the
    samples (an unreadable scene is skipped), the annotations left out counted by reason in a note
    and named (the first few)."""

    report = DataReport(str(path), format, frames_found=scenes, frames_usable=check.scenes, decoded=True)
    for sid, error in check.failed.items():
        report.skipped["unreadable scene"] = report.skipped.get("unreadable scene", 0) + 1
        examples = report.examples.setdefault("unreadable scene", [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{sid}: {error}")
    report.notes += box_check_notes(check)
    return report


def _sens_frames(request: FrameRequest):

    root = _require_root("scannet-sens", request.root)
    frames = SensScenes(
        root, split=request.split, frame_skip=_frame_skip(request, PAPER_FRAME_SKIP), strict=request.strict
    )
    if not frames.files and not frames.report.frames_found:
        frames.report.notes.append("no .sens files found")
    return frames


def _seven_scenes_frames(request: FrameRequest):

    root = _require_root("7scenes", request.root)
    frames = SevenScenesFrames(root, frame_skip=_frame_skip(request, 1), strict=request.strict)
    if request.color_from_depth is not None:
        color_from_depth = read_pose_txt(request.color_from_depth)  # checked: finite and rigid
        for record in frames.records:
            record.color_from_depth = color_from_depth
        frames.report.notes.append(f"colour camera from depth camera: {request.color_from_depth}")
    align_gravity(frames, request.up_axis)
    return frames


def _tum_frames(request: FrameRequest):

    root = _require_root("tum", request.root)
    frames = TumFrames(root, frame_skip=_frame_skip(request, 1), strict=request.strict)
    align_gravity(frames, request.up_axis)
    return frames


def _rgbd_folder_frames(request: FrameRequest):

    root = _require_root("rgbd-folder", request.root)
    frames = RGBDFolderFrames(root, frame_skip=_frame_skip(request, 1), strict=request.strict)
    align_gravity(frames, request.up_axis)
    return frames


def _thinned(reader, frame_skip: int, kind: str, root: Path, split: str | None):
    # Every lidar reader indexes its samples in `records`; thinning the index keeps the rest.
    reader.records = reader.records[::frame_skip]
    if not reader.records:
        raise NoUsableData(f"{root}: no {kind} samples (split {split!r})")
    return reader


def _nuscenes_frames(request: FrameRequest):

    root = _require_root("nuscenes", request.root)
    reader = NuScenesSamples(root, version=None, split=request.split)
    return _thinned(reader, _frame_skip(request, 1), "nuscenes", root, request.split)


def _nuscenes_scenes(request: SceneRequest):

    return NuScenesSceneSource(_require_root("nuscenes", request.root), version=request.nuscenes_version)


def _kitti_frames(request: FrameRequest):

    root = _require_root("kitti", request.root)
    reader = KittiObjectSamples(root, subset="training", image_set=request.split)
    return _thinned(reader, _frame_skip(request, 1), "kitti", root, request.split)


def _kitti_raw_frames(request: FrameRequest):

    root = _require_root("kitti-raw", request.root)
    split = request.split
    # KITTI raw has no official split: "train" (the config's default) means every drive.
    drives = None if split in (None, "train") else [d.strip() for d in split.split(",") if d.strip()]
    return _thinned(KittiRawSamples(root, drives=drives), _frame_skip(request, 1), "kitti-raw", root, split)


def _semantickitti_frames(request: FrameRequest):

    root = _require_root("semantickitti", request.root)
    reader = SemanticKittiSamples(root, split=request.split, with_images=True, with_labels=False)
    return _thinned(reader, _frame_skip(request, 1), "semantickitti", root, request.split)


def _semantickitti_scenes(request: SceneRequest):

    return SemanticKittiSceneSource(_require_root("semantickitti", request.root))


def _s3dis_scenes(request: SceneRequest):

    return S3DISSceneSource(_require_root("s3dis", request.root))


# Detectors. Cheap: they list a folder or two.
def _is_scannet(path: Path) -> bool:
    # After rgbd-folder, whose sequences also have color/ (but an rgbd.yaml).
    if (path / "color").is_dir():
        return True
    return path.is_dir() and any((child / "color").is_dir() for child in path.iterdir() if child.is_dir())


def _is_sens(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".sens"
    return path.is_dir() and (any(path.glob("*.sens")) or any(path.glob("*/*.sens")))


def _is_7scenes(path: Path) -> bool:
    patterns = ("frame-*.pose.txt", "*/frame-*.pose.txt", "*/*/frame-*.pose.txt")
    return path.is_dir() and any(any(path.glob(pattern)) for pattern in patterns)


def _is_tum(path: Path) -> bool:

    return path.is_dir() and bool(find_tum_sequences(path))


def _is_rgbd_folder(path: Path) -> bool:

    return path.is_dir() and bool(find_sequences(path))


def _scan_s3dis(path: Path, strict: bool, **options) -> DataReport:

    return scan_s3dis(path, strict, **options)


def _is_s3dis(path: Path) -> bool:

    return path.is_dir() and bool(find_areas(path))


def _lidar(name: str):

    return {
        "nuscenes": (lidar_check.is_nuscenes, lidar_check.scan_nuscenes),
        "kitti": (lidar_check.is_kitti_object, lidar_check.scan_kitti_object),
        "kitti-raw": (lidar_check.is_kitti_raw, lidar_check.scan_kitti_raw),
        "semantickitti": (lidar_check.is_semantickitti, lidar_check.scan_semantickitti),
    }[name]


def _lidar_detect(name: str) -> Callable[[Path], bool]:
    return lambda path: _lidar(name)[0](path)


def _lidar_scan(name: str) -> Callable[..., DataReport]:
    return lambda path, strict, **options: _lidar(name)[1](path, strict, **options)


register(DatasetSpec(
    "rgbd-folder", "rgbd", "your own RGB-D frames: color/, depth/, optional pose/, rgbd.yaml",
    "slam", _is_rgbd_folder, _rgbd_folder_frames,
))  # fmt: skip
register(DatasetSpec(
    "scannet", "rgbd", "ScanNet v2 exported frames (color/ depth/ pose/ intrinsic/) and labelled meshes",
    "z", _is_scannet, _scannet_frames, _scannet_scenes, default_frame_skip=25,
    open_detection=_scannet_detection,
))  # fmt: skip
register(DatasetSpec(
    "scannet-sens", "rgbd", "ScanNet v2 raw <scene>.sens streams", "z", _is_sens, _sens_frames,
    default_frame_skip=25,
))  # fmt: skip
register(DatasetSpec(
    "7scenes", "rgbd", "Microsoft 7-Scenes (seq-XX folders, or flat frame-XXXXXX.* files)", "slam",
    _is_7scenes, _seven_scenes_frames,
))  # fmt: skip
register(DatasetSpec(
    "tum", "rgbd", "TUM RGB-D sequences (rgb.txt, depth.txt, groundtruth.txt)", "slam", _is_tum, _tum_frames,
))  # fmt: skip
register(DatasetSpec(
    "s3dis", "points", "S3DIS Stanford3dDataset_v1.2_Aligned_Version (labelled rooms, no frames)", "z",
    _is_s3dis, None, _s3dis_scenes, _scan_s3dis,
))  # fmt: skip
register(DatasetSpec(
    "synthetic", "rgbd", "generated rooms in the ScanNet layout (ppkt synth)", "z", None, _synthetic_frames,
    _synthetic_scenes, open_detection=_synthetic_detection,
))  # fmt: skip
register(DatasetSpec(
    "sunrgbd", "points", "SUN RGB-D 3D boxes: sunrgbd_trainval export (depth/, label/, calib/)", "z",
    _is_sunrgbd, None, None, _scan_sunrgbd, open_detection=_sunrgbd_detection,
))  # fmt: skip
register(DatasetSpec(
    "nuscenes", "lidar", "nuScenes v1.0 (lidar + six cameras, lidarseg)", "z", _lidar_detect("nuscenes"),
    _nuscenes_frames, _nuscenes_scenes, _lidar_scan("nuscenes"),
))  # fmt: skip
register(DatasetSpec(
    "kitti", "lidar", "KITTI object benchmark (training/ testing/)", "z", _lidar_detect("kitti"),
    _kitti_frames, None, _lidar_scan("kitti"),
))  # fmt: skip
register(DatasetSpec(
    "kitti-raw", "lidar", "KITTI raw drives (<date>/<date>_drive_XXXX_sync)", "z", _lidar_detect("kitti-raw"),
    _kitti_raw_frames, None, _lidar_scan("kitti-raw"),
))  # fmt: skip
register(DatasetSpec(
    "semantickitti", "lidar", "SemanticKITTI sequences (velodyne/, labels/, image_2/)", "z",
    _lidar_detect("semantickitti"), _semantickitti_frames, _semantickitti_scenes,
    _lidar_scan("semantickitti"),
))  # fmt: skip


def frame_poses(frames) -> list[np.ndarray]:
    """The finite poses an RGB-D reader indexed (for check-data's gravity remark)."""
    records = getattr(frames, "records", None)
    if records is not None:
        return [r.world_from_camera for r in records if getattr(r, "world_from_camera", None) is not None]
    files = getattr(frames, "files", None)  # SensScenes
    if files is not None:
        return [e.world_from_camera for f in files for e in f.entries]
    return []

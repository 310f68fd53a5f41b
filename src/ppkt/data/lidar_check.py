"""``ppkt check-data`` for the lidar + camera formats (nuScenes, KITTI, KITTI raw, SemanticKITTI).

Separate from :mod:`ppkt.data.lidar_common` because it opens the readers, which themselves
import the shared helpers: keeping the two apart keeps the readers' imports acyclic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ppkt.data.kitti import KittiObjectSamples, KittiRawSamples
from ppkt.data.lidar_common import EMPTY_CLOUD, NO_PAIRS, NON_FINITE, projected_point_count
from ppkt.data.nuscenes import NuScenesSamples
from ppkt.data.report import MISSING_FILE, UNREADABLE, DataReport, FrameError
from ppkt.data.semantickitti import SemanticKittiSamples, find_sequences_dir, is_sequences_dir


def _record_path(record) -> Path:
    lidar = getattr(record, "lidar", None)
    return lidar.path if lidar is not None else record.velodyne


class _CheckedSamples:
    """Decodes sample ``i`` and returns what the check needs (small, so workers can send it back)."""

    def __init__(self, samples, indices: list[int]):
        self.samples = samples
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        record = self.samples.records[self.indices[i]]
        path = _record_path(record)
        try:
            sample = self.samples.load(record)
        except FrameError as error:
            return 0, 0, 0, error
        except Exception as error:  # a scan counts whatever breaks a sample and never crashes
            return 0, 0, 0, FrameError(path, UNREADABLE, f"{type(error).__name__}: {error}")
        if sample.points.shape[0] == 0:
            return 0, 0, 0, FrameError(path, EMPTY_CLOUD)
        if not np.isfinite(sample.points).all():
            return 0, 0, 0, FrameError(path, NON_FINITE, f"{int((~np.isfinite(sample.points)).sum())} values")
        paired = projected_point_count(sample) if sample.images else 0
        if sample.images and paired == 0:
            return 0, 0, 0, FrameError(path, NO_PAIRS, "no point lands in any image: check the calibration")
        return sample.points.shape[0], paired, len(sample.images), None


def _identity(batch):
    return batch


def check_lidar_samples(samples, report, *, strict: bool, frame_skip: int = 1, workers: int = 0, desc=""):
    """Decode every ``frame_skip``-th sample of a lidar reader into ``report`` (a DataReport).

    Besides reader errors (missing, truncated, bad calibration, unknown label ids), a sample is
    skipped for an empty or non-finite point cloud, or when its cameras see none of its points.
    """
    from tqdm.auto import tqdm

    checked = _CheckedSamples(samples, list(range(0, len(samples.records), max(1, frame_skip))))
    if workers > 0:
        from torch.utils.data import DataLoader

        results = DataLoader(checked, batch_size=None, num_workers=workers, collate_fn=_identity)
    else:
        results = (checked[i] for i in range(len(checked)))
    points = paired = 0
    report.frames_found += len(checked)
    for num_points, num_paired, _, error in tqdm(
        results, total=len(checked), desc=desc, unit="sample", disable=None, mininterval=1.0
    ):
        if error is not None:
            if strict:
                raise error
            report.add_skip(error)
            continue
        report.frames_usable += 1
        points += num_points
        paired += num_paired
    if report.frames_usable:
        note = f"{desc}: {points / report.frames_usable:.0f} points per usable sample"
        if paired:
            note += f", {100 * paired / points:.1f}% of them inside a camera image (depth > 1 m)"
        report.notes.append(note)
    report.decoded = True
    return report


def _new_report(path: Path, format_name: str):

    return DataReport(root=str(path), format=format_name)


def _count_index_skips(report, skipped: dict[str, int], where: Path) -> None:
    for reason, count in skipped.items():
        report.frames_found += count
        report.skipped[reason] = report.skipped.get(reason, 0) + count
        report.examples.setdefault(reason, []).append(f"{where}: {count} samples at indexing")


def nuscenes_versions(path: Path) -> list[str]:
    return sorted(p.parent.name for p in Path(path).glob("v1.0-*/sample_data.json"))


def scan_nuscenes(path: Path, strict: bool, *, frame_skip: int | None = None, workers: int = 0):
    """check-data for nuScenes: every table version found, with lidarseg labels when present."""

    path = Path(path)
    report = _new_report(path, "nuscenes")
    versions = nuscenes_versions(path)
    if not versions:
        raise FrameError(path, MISSING_FILE, "no v1.0-*/sample_data.json")
    for version in versions:
        with_labels = (path / "lidarseg" / version).is_dir()
        samples = NuScenesSamples(path, version=version, with_labels=with_labels)
        _count_index_skips(report, samples.skipped, path / version)
        if strict and samples.skipped:
            raise FrameError(path / version, next(iter(samples.skipped)), "samples skipped at indexing")
        check_lidar_samples(
            samples, report, strict=strict, frame_skip=frame_skip or 1, workers=workers, desc=version
        )
        report.notes.append(f"{version}: lidarseg labels {'checked' if with_labels else 'not found'}")
    return report


def scan_kitti_object(path: Path, strict: bool, *, frame_skip: int | None = None, workers: int = 0):

    report = _new_report(path, "kitti")
    for subset in ("training", "testing"):
        if (Path(path) / subset / "velodyne").is_dir():
            samples = KittiObjectSamples(path, subset=subset)
            check_lidar_samples(
                samples, report, strict=strict, frame_skip=frame_skip or 1, workers=workers, desc=subset
            )
    return report


def scan_kitti_raw(path: Path, strict: bool, *, frame_skip: int | None = None, workers: int = 0):

    report = _new_report(path, "kitti-raw")
    samples = KittiRawSamples(path)
    return check_lidar_samples(
        samples, report, strict=strict, frame_skip=frame_skip or 1, workers=workers, desc="kitti-raw"
    )


def scan_semantickitti(path: Path, strict: bool, *, frame_skip: int | None = None, workers: int = 0):
    """check-data for SemanticKITTI: labels where a sequence has them, images where it has image_2."""

    report = _new_report(path, "semantickitti")
    sequences_dir = find_sequences_dir(path)
    for seq_dir in sorted(p for p in sequences_dir.iterdir() if (p / "velodyne").is_dir()):
        with_labels, with_images = (seq_dir / "labels").is_dir(), (seq_dir / "image_2").is_dir()
        samples = SemanticKittiSamples(
            sequences_dir, sequences=[seq_dir.name], with_labels=with_labels, with_images=with_images
        )
        check_lidar_samples(
            samples, report, strict=strict, frame_skip=frame_skip or 1, workers=workers, desc=seq_dir.name
        )
        if not with_labels or not with_images:
            missing = [n for n, has in (("labels", with_labels), ("image_2", with_images)) if not has]
            report.notes.append(f"sequence {seq_dir.name}: no {' or '.join(missing)} folder")
    return report


def is_nuscenes(path: Path) -> bool:
    return Path(path).is_dir() and bool(nuscenes_versions(path))


def is_kitti_object(path: Path) -> bool:
    return any((Path(path) / subset / "velodyne").is_dir() for subset in ("training", "testing"))


def is_kitti_raw(path: Path) -> bool:
    return Path(path).is_dir() and any(p.is_dir() for p in Path(path).glob("*/*_drive_*_sync"))


def is_semantickitti(path: Path) -> bool:

    path = Path(path)
    return any(is_sequences_dir(p) for p in (path / "dataset" / "sequences", path / "sequences", path))

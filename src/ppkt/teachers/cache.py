"""A cache of teacher feature maps, one fp16 safetensors file per frame.

The teacher is frozen, so its features of a given frame never change; recomputing them every
epoch costs most of a CPU pretraining step. Layout::

    <root>/manifest.json                          teacher identity, input resolution, format
    <root>/<scene_id>/<frame_id>.safetensors      "features": (C, h, w) float16

The manifest pins the teacher identity (name, stage, weights hash) and the resolution the images
were resized to; opening the cache with anything else raises :class:`StaleCacheError`. Every file is
written atomically (temporary file + rename), so DataLoader workers reading while a writer runs
see either the whole file or none, and a killed run leaves no half-written file.

The maps describe the un-augmented image: pretraining with ``teacher.cache`` samples them at
each pair's un-augmented pixel, so its 2D augmentation does not reach the teacher.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm import tqdm

from ppkt.data.images import prepare_image
from ppkt.data.types import RGBDFrame
from ppkt.teachers.base import Teacher
from ppkt.utils.io import atomic_write_json, cache_file
from ppkt.utils.weights import save_weights

CACHE_FORMAT = 1


class StaleCacheError(RuntimeError, ValueError):
    """The cache on disk was made with another teacher, weights, stage or resolution.

    Also a ValueError: to a command such as ``ppkt pretrain --teacher.cache`` it is bad input.
    """


@dataclass(frozen=True)
class CacheManifest:
    teacher_identity: str
    image_hw: tuple[int, int]
    format: int = CACHE_FORMAT
    dtype: str = "float16"

    def to_json(self) -> dict:
        return {
            "format": self.format,
            "teacher_identity": self.teacher_identity,
            "image_hw": list(self.image_hw),
            "dtype": self.dtype,
        }


class TeacherFeatureCache:
    """Per-frame fp16 teacher features under ``root`` for one teacher identity and input size.

    Args:
        root: cache folder (created with its manifest when new).
        teacher_identity: ``Teacher.identity`` of the teacher whose features are stored.
        image_hw: ``(H, W)`` the frames were resized to before the teacher.
    """

    def __init__(self, root: str | Path, teacher_identity: str, image_hw: tuple[int, int]):
        self.root = Path(root)
        self.manifest = CacheManifest(teacher_identity, (int(image_hw[0]), int(image_hw[1])))
        path = self.root / "manifest.json"
        if path.is_file():
            self._check_manifest(path)
        else:
            atomic_write_json(path, self.manifest.to_json())

    def _check_manifest(self, path: Path) -> None:
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise StaleCacheError(f"{path}: unreadable cache manifest ({err})") from err
        expected = self.manifest.to_json()
        diffs = [
            f"{k}: cache has {found.get(k)!r}, requested {v!r}"
            for k, v in expected.items()
            if found.get(k) != v
        ]
        if diffs:
            raise StaleCacheError(
                f"{path}: teacher feature cache made with other settings ("
                + "; ".join(diffs)
                + "). Use another cache folder, or delete this one to recompute."
            )

    def path(self, scene_id: str, frame_id: str) -> Path:
        return cache_file(self.root, scene_id, frame_id)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return self.path(*key).is_file()

    def get(self, scene_id: str, frame_id: str) -> torch.Tensor | None:
        """The cached ``(C, h, w)`` float16 features, or None when the frame is not cached."""
        path = self.path(scene_id, frame_id)
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                identity = (handle.metadata() or {}).get("teacher_identity")
                if identity != self.manifest.teacher_identity:
                    raise StaleCacheError(
                        f"{path}: features of teacher {identity!r}, "
                        f"expected {self.manifest.teacher_identity!r}"
                    )
                return handle.get_tensor("features")
        except FileNotFoundError:
            return None
        except StaleCacheError:
            raise
        except Exception as err:  # safetensors raises its own error types
            if not path.exists():
                return None
            raise ValueError(f"{path}: unreadable cached features ({err})") from err

    def put(self, scene_id: str, frame_id: str, features: torch.Tensor) -> Path:
        """Store ``(C, h, w)`` (or ``(1, C, h, w)``) features as float16, atomically."""
        if features.ndim == 4 and features.shape[0] == 1:
            features = features[0]
        if features.ndim != 3:
            raise ValueError(f"expected (C, h, w) features, got {tuple(features.shape)}")
        if not torch.isfinite(features).all():
            raise ValueError(f"{scene_id}/{frame_id}: refusing to cache non-finite teacher features")
        half = features.detach().to("cpu", torch.float16)
        if not torch.isfinite(half).all():
            raise ValueError(f"{scene_id}/{frame_id}: teacher features overflow float16")
        metadata = {
            "teacher_identity": self.manifest.teacher_identity,
            "image_hw": json.dumps(list(self.manifest.image_hw)),
        }
        return save_weights({"features": half}, self.path(scene_id, frame_id), metadata)


@dataclass
class CacheStats:
    """What :func:`cache_teacher_features` did: frames written and frames already cached."""

    written: int = 0
    already_cached: int = 0


def _batches(frames: Iterable[RGBDFrame], size: int) -> Iterator[list[RGBDFrame]]:
    batch: list[RGBDFrame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def cache_teacher_features(
    frames: Iterable[RGBDFrame],
    teacher: Teacher,
    cache: TeacherFeatureCache,
    *,
    batch_size: int = 8,
    overwrite: bool = False,
    progress: bool = True,
    total: int | None = None,
) -> CacheStats:
    """Compute and store the teacher features of every frame (skipping cached ones unless ``overwrite``).

    Frames are resized to the cache's ``image_hw`` with :func:`prepare_image`; the teacher runs on
    the device of its parameters.
    """
    if teacher.identity != cache.manifest.teacher_identity:
        raise StaleCacheError(
            f"{cache.root}: cache is for teacher {cache.manifest.teacher_identity!r}, "
            f"not {teacher.identity!r}"
        )
    param = next(teacher.parameters())
    stats = CacheStats()
    if total is None and hasattr(frames, "__len__"):
        total = len(frames)  # type: ignore[arg-type]
    bar = tqdm(
        total=total, desc=f"caching {teacher.name}/{teacher.stage}", unit="frame", disable=not progress
    )
    for batch in _batches(frames, batch_size):
        todo = [f for f in batch if overwrite or (f.scene_id, f.frame_id) not in cache]
        stats.already_cached += len(batch) - len(todo)
        if todo:
            images = torch.stack([prepare_image(f.color, cache.manifest.image_hw) for f in todo])
            features = teacher(images.to(param.device))
            for frame, feature in zip(todo, features, strict=True):
                cache.put(frame.scene_id, frame.frame_id, feature)
            stats.written += len(todo)
        bar.update(len(batch))
    bar.close()
    return stats

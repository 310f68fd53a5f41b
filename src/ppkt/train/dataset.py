"""The pretraining dataset: frames -> augmented samples, with counted skips of unusable frames."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ppkt.data.report import FrameError
from ppkt.data.superpixels import Superpixels
from ppkt.data.types import LidarCameraSample, RGBDFrame
from ppkt.train.config import AugmentConfig, DataConfig
from ppkt.train.samples import FrameSkipped, PretrainSample, lidar_sample, rgbd_sample
from ppkt.train.scene_samples import scene_sample

if TYPE_CHECKING:
    from ppkt.teachers import TeacherFeatureCache
    from ppkt.train.scene_samples import SceneIndex


class UnusableFramesError(ValueError):
    """Too many unusable frames in a row: the data (or its config) is wrong, not one frame.

    One line naming the skip reasons and example files; a plain ``ValueError`` with one string
    argument, so it crosses DataLoader worker processes unchanged.
    """


# --------------------------------------------------------------------------------------------


class PretrainDataset(torch.utils.data.Dataset):
    """Turns a sequence of frames into augmented samples.

    Indexed by ``(index, epoch)`` keys (see :class:`StepBatchSampler`); the augmentation
    generator is seeded by ``(seed, epoch, index)``. An unusable frame (a reader's
    :class:`~ppkt.data.report.FrameError` such as a truncated sweep or an undecodable image, an
    OSError, no pairs) is replaced by the next frame of the sequence and its reason recorded in
    ``sample.skipped``; after ``max_consecutive_skips`` failures in a row it raises, naming them.
    Lidar samples use ``beam_spacing_deg`` (default: the reader's attribute of that name) for
    the occlusion test of their pairs.

    With ``teacher_cache`` (a :class:`ppkt.teachers.TeacherFeatureCache` at ``data.image_hw``,
    RGB-D frames only) each sample carries its frame's cached features read here, in the worker,
    or, for a frame not in the cache, its un-augmented image for the teacher. With ``superpixels``
    each pair carries its superpixel; with ``scenes`` (``data.pairs=scene``) a sample is the frame's
    scene cloud paired with several of its views (:mod:`ppkt.train.scene_samples`).
    """

    def __init__(
        self,
        frames: Sequence[RGBDFrame | LidarCameraSample],
        data: DataConfig,
        augment: AugmentConfig,
        input_features: str,
        *,
        seed: int,
        max_consecutive_skips: int = 16,
        beam_spacing_deg: float | None = None,
        teacher_cache: TeacherFeatureCache | None = None,
        superpixels: Superpixels | None = None,
        scenes: SceneIndex | None = None,
    ) -> None:
        if teacher_cache is not None and scenes is not None:
            raise ValueError(
                "data.pairs=scene does not read teacher.cache (a sample has several views); unset one"
            )
        if teacher_cache is not None and tuple(teacher_cache.manifest.image_hw) != tuple(data.image_hw):
            raise ValueError(
                f"{teacher_cache.root}: cached at {teacher_cache.manifest.image_hw}, data.image_hw is "
                f"{tuple(data.image_hw)}"
            )
        self.teacher_cache = teacher_cache
        self.superpixels = superpixels
        self.scenes = scenes
        self.frames = frames
        self.beam_spacing_deg = (
            getattr(frames, "beam_spacing_deg", None) if beam_spacing_deg is None else beam_spacing_deg
        )
        self.data = data
        self.augment = augment
        self.input_features = input_features
        self.seed = seed
        self.max_consecutive_skips = max_consecutive_skips

    def __len__(self) -> int:
        return len(self.frames)

    def _one(self, index: int, epoch: int) -> PretrainSample:
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.scenes is not None:
            return scene_sample(
                self.frames, index, self.scenes, self.data, self.augment, self.input_features, rng,
                superpixels=self.superpixels,
            )  # fmt: skip
        frame = self.frames[index]
        if isinstance(frame, LidarCameraSample):
            if self.teacher_cache is not None:
                raise ValueError(
                    f"{frame.sample_id}: the teacher feature cache holds RGB-D frames only; "
                    "unset teacher.cache for lidar + camera data"
                )
            return lidar_sample(
                frame,
                self.data,
                self.augment,
                self.input_features,
                rng,
                beam_spacing_deg=self.beam_spacing_deg,
                superpixels=self.superpixels,
            )
        if self.teacher_cache is None:
            return rgbd_sample(
                frame, self.data, self.augment, self.input_features, rng, superpixels=self.superpixels
            )
        cached = self.teacher_cache.get(frame.scene_id, frame.frame_id)
        sample = rgbd_sample(
            frame,
            self.data,
            self.augment,
            self.input_features,
            rng,
            keep_teacher_image=cached is None,
            superpixels=self.superpixels,
        )
        sample.teacher_features = cached
        sample.teacher_image_hw = tuple(self.data.image_hw)
        return sample

    def _describe(self, index: int) -> str:
        describe = getattr(self.frames, "describe", None)
        return describe(index) if describe is not None else f"frame {index}"

    def __getitem__(self, key: tuple[int, int] | int) -> PretrainSample:
        index, epoch = key if isinstance(key, tuple) else (int(key), 0)
        skipped: list[str] = []  # "<file>: <reason> (<detail>)", as FrameError words it
        reasons: list[str] = []
        n = len(self.frames)
        for attempt in range(min(self.max_consecutive_skips, n)):
            i = (index + attempt) % n
            try:
                sample = self._one(i, epoch)
            except FrameError as err:  # names its file already
                skipped.append(str(err))
                reasons.append(err.reason)
                continue
            except (FrameSkipped, OSError) as err:
                text = str(err).partition(": ")[2] if isinstance(err, FrameSkipped) else str(err)
                skipped.append(f"{self._describe(i)}: {text or type(err).__name__}")
                # "12 pixel-point pairs (no valid depth ...)" and "3 pixel-point pairs" are one reason.
                reasons.append(re.sub(r"\d+", "N", text.split(" (")[0]) or type(err).__name__)
                continue
            sample.skipped = skipped
            return sample
        raise UnusableFramesError(unusable_summary(skipped, reasons, index, n))


def unusable_summary(skipped: Sequence[str], reasons: Sequence[str], index: int, num_frames: int) -> str:
    """One line: how many frames in a row were unusable, their reasons by count, example files."""
    counts = Counter(reasons)
    by_reason = ", ".join(f"{reason}: {count}" for reason, count in counts.most_common(3))
    return (
        f"{len(skipped)} consecutive unusable frames from frame {index} of {num_frames} ({by_reason}); "
        f"e.g. {'; '.join(skipped[:2])}; run ppkt check-data on the dataset"
    )

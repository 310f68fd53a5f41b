"""Scene-level pretraining samples (``data.pairs=scene``): a scene's reconstructed cloud paired
with several posed frames of it (:func:`ppkt.geometry.scene_pairs.scene_view_pairs`).

A sample is built for each frame index as usual: that frame plus ``data.scene_views - 1`` other
frames of its scene drawn by the sample's generator give the images, and the 3D side is the whole
scene cloud in the world frame (z up, as fine-tuning sees it), so the pretrained network meets
whole rooms rather than single-view fragments. Points no view sees stay in the input unpaired.

Clouds come from ``<root>/<scene>/<scene>_vh_clean_2.ply`` of a ScanNet-layout dataset (ScanNet,
the synthetic rooms); each DataLoader worker reads a scene once and keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ppkt.data.ply import read_ply_vertices
from ppkt.data.superpixels import Superpixels
from ppkt.data.types import RGBDFrame
from ppkt.geometry import scale_intrinsics
from ppkt.geometry.scene_pairs import PosedView, scene_view_pairs
from ppkt.train.config import AugmentConfig, DataConfig
from ppkt.train.samples import (
    MIN_PAIRS_PER_FRAME,
    FrameSkipped,
    PretrainSample,
    _out_hw,
    augment_sample,
    pair_superpixels,
    training_image,
)


@dataclass(frozen=True)
class SceneCloud:
    """A scene's reconstructed cloud: ``points (N, 3)`` float32 world frame, ``colors (N, 3)`` uint8."""

    points: np.ndarray
    colors: np.ndarray


def read_scene_cloud(path: Path) -> SceneCloud:
    """``<scene>_vh_clean_2.ply`` (x, y, z, red, green, blue vertices); errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: scene cloud not found (data.pairs=scene needs <scene>_vh_clean_2.ply)"
        )
    vertices = read_ply_vertices(path)
    missing = [k for k in ("x", "y", "z", "red", "green", "blue") if k not in vertices]
    if missing:
        raise ValueError(f"{path}: vertex properties {missing} missing")
    points = np.stack([vertices["x"], vertices["y"], vertices["z"]], axis=1).astype(np.float32)
    if not np.isfinite(points).all():
        raise ValueError(f"{path}: {int((~np.isfinite(points)).any(1).sum())} vertices are not finite")
    colors = np.stack([vertices["red"], vertices["green"], vertices["blue"]], axis=1)
    if colors.dtype != np.uint8:
        scale = 255.0 if np.issubdtype(colors.dtype, np.floating) and colors.max(initial=0) <= 1.0 else 1.0
        colors = np.clip(np.round(colors * scale), 0, 255).astype(np.uint8)
    return SceneCloud(points, colors)


@dataclass
class SceneIndex:
    """Which scene each frame index belongs to, and how to read a scene's cloud.

    Attributes:
        scene_of: the scene id of every frame index.
        load_cloud: scene id -> :class:`SceneCloud`.
    """

    scene_of: list[str]
    load_cloud: Callable[[str], SceneCloud]
    _clouds: dict[str, SceneCloud] = field(default_factory=dict, repr=False)
    _members: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for index, scene in enumerate(self.scene_of):
            self._members.setdefault(scene, []).append(index)

    def frames_of(self, scene: str) -> list[int]:
        return self._members[scene]

    def cloud(self, scene: str) -> SceneCloud:
        if scene not in self._clouds:
            self._clouds[scene] = self.load_cloud(scene)
        return self._clouds[scene]

    @classmethod
    def from_reader(cls, frames: Sequence) -> SceneIndex:
        """From a ScanNet-layout reader (:class:`ppkt.data.scannet.ScanNetFrames`: ``records`` with
        ``scene_id`` and a ``root`` holding ``<scene>/<scene>_vh_clean_2.ply``)."""
        records, root = getattr(frames, "records", None), getattr(frames, "root", None)
        if records is None or root is None:
            raise ValueError(
                "data.pairs=scene needs a ScanNet-layout dataset (scene clouds "
                f"<scene>/<scene>_vh_clean_2.ply); got {type(frames).__name__}"
            )
        root = Path(root)
        return cls(
            [r.scene_id for r in records], lambda s: read_scene_cloud(root / s / f"{s}_vh_clean_2.ply")
        )


def scene_sample(
    frames: Sequence[RGBDFrame],
    index: int,
    scenes: SceneIndex,
    data: DataConfig,
    augment: AugmentConfig,
    input_features: str,
    rng: np.random.Generator,
    *,
    superpixels: Superpixels | None = None,
) -> PretrainSample:
    """The scene cloud of frame ``index`` paired with that frame and ``data.scene_views - 1`` other
    frames of its scene (drawn by ``rng``), augmented as one sample with one image per view."""
    scene = scenes.scene_of[index]
    others = [i for i in scenes.frames_of(scene) if i != index]
    count = min(len(others), data.scene_views - 1)
    chosen = [index] + ([int(i) for i in rng.choice(others, size=count, replace=False)] if count else [])
    hw = tuple(data.image_hw)
    images, views, keys = [], [], []
    for i in chosen:
        frame = frames[i]
        if frame.world_from_camera is None:
            raise FrameSkipped(
                f"{frame.scene_id}/{frame.frame_id}: no pose (data.pairs=scene needs posed frames)"
            )
        images.append(training_image(frame.color, hw))
        depth = np.nan_to_num(np.asarray(frame.depth, dtype=np.float32), nan=0.0, posinf=0.0)
        views.append(
            PosedView(
                depth=torch.from_numpy(depth),
                K_depth=torch.as_tensor(frame.K_depth, dtype=torch.float64),
                K_color=scale_intrinsics(
                    torch.as_tensor(frame.K_color, dtype=torch.float64), frame.color_hw, hw
                ),
                world_from_camera=torch.as_tensor(frame.world_from_camera, dtype=torch.float64),
                color_from_depth=torch.as_tensor(frame.color_from_depth, dtype=torch.float64),
            )
        )
        keys.append((frame.scene_id, frame.frame_id))
    cloud = scenes.cloud(scene)
    pairs = scene_view_pairs(torch.from_numpy(cloud.points), views, hw)
    name = f"{scene}/{keys[0][1]}+{len(views) - 1}"
    if len(pairs) < MIN_PAIRS_PER_FRAME:
        raise FrameSkipped(f"{name}: {len(pairs)} scene-point pairs (no cloud point passes the depth test)")
    return augment_sample(
        pairs.points,
        images,
        pairs.point_index,
        pairs.image_index,
        pairs.uv,
        torch.from_numpy(cloud.colors.astype(np.float32) / 255.0),
        name=name,
        input_features=input_features,
        augment=augment,
        out_hw=_out_hw(data, augment),
        rng=rng,
        up_axis=(0.0, 0.0, 1.0),
        pair_superpixel=pair_superpixels(superpixels, images, keys, pairs.image_index, pairs.uv),
    )

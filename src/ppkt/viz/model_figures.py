"""Figures of trained models: what the pretrained 3D network and the fine-tuned segmenter learned.

These functions take already-loaded objects (a :class:`~ppkt.train.model.PPKTModel` and an
:class:`~ppkt.data.types.RGBDFrame`, or a segmentation model and a
:class:`~ppkt.data.types.LabeledScene`), so ``ppkt demo`` can call them on the models it has just
trained; ``ppkt viz features|similarity|segmentation`` load runs from disk and call them.

    frame --(pretraining pipeline, no augmentation)--> points, pairs, image
          --backbone--> per-voxel features --head--> embeddings --point_to_voxel--> per point
          --teacher + UPL forward--> per-pixel embeddings at image resolution

Student and teacher embeddings live in the same ``D``-dim space (that is what the contrastive loss
aligns), so one PCA basis colours both: after pretraining, points and the pixels they project to
should share a colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ppkt.data.types import IGNORE_LABEL, LabeledScene, RGBDFrame
from ppkt.eval.data import collate_scenes, scene_sample
from ppkt.eval.finetune import predict_points
from ppkt.eval.metrics import ConfusionMatrix
from ppkt.train.batch import Collator
from ppkt.train.checkpoint import latest_checkpoint, load_checkpoint
from ppkt.train.config import AugmentConfig
from ppkt.train.loop import load_run_config
from ppkt.train.model import build_model
from ppkt.train.samples import color_at, rgbd_sample
from ppkt.viz.colors import label_colors
from ppkt.viz.figures import feature_pca_figure, segmentation_figure, similarity_figure
from ppkt.viz.panels import caption, save_colored_ply, save_png
from ppkt.viz.render import View, orbit_view

PIXEL_MAP_MAX_SIDE = 320
"""Full-resolution pixel embeddings larger than this (longer side) are resized down first: the PCA
of a 480x640x128 map would need ~300 MB of float64 for no visible gain."""


@dataclass
class FrameEmbeddings:
    """One frame through both sides of a pretraining model (no augmentation).

    Attributes:
        points: ``(N, 3)`` float32 points in the world frame when the frame has a pose, else in
            the depth camera frame (what is rendered).
        point_colors: ``(N, 3)`` uint8 colour of each point's pixel (black for unpaired points).
        image: ``(H, W, 3)`` uint8 image as fed to the teacher (resized to ``data.image_hw``).
        point_uv: ``(N, 2)`` float32 pixel of each point in ``image`` (NaN for unpaired points).
        point_embeddings: ``(N, D)`` float32 student embeddings (backbone + projection head) of
            each point's voxel.
        backbone_features: ``(N, C)`` float32 backbone (pre-head) features of each point's voxel.
        pixel_embeddings: ``(D, H', W')`` float32 unit-norm teacher embeddings (teacher + UPL),
            ``(H', W')`` = ``image`` size, or smaller when capped by ``PIXEL_MAP_MAX_SIDE``.
        teacher_features: ``(C', h, w)`` float32 raw teacher features (before the UPL).
        camera_position: ``(3,)`` float64 position of the depth camera in the frame of ``points``.
        name: ``"<scene>/<frame>"``.
    """

    points: np.ndarray
    point_colors: np.ndarray
    image: np.ndarray
    point_uv: np.ndarray
    point_embeddings: np.ndarray
    backbone_features: np.ndarray
    pixel_embeddings: np.ndarray
    teacher_features: np.ndarray
    camera_position: np.ndarray
    name: str


@dataclass
class FeatureFigures:
    """What :func:`pretrain_feature_figures` drew and wrote.

    Attributes:
        figure: ``(H, W, 3)`` uint8 embedding figure (frame, teacher pixels, student points).
        point_colors: ``(N, 3)`` uint8 shared-PCA colour of every point (as in the PLY).
        backbone_figure: the same for backbone features vs raw teacher features (separate bases).
        features_png, features_ply, backbone_png, backbone_ply: the files written.
    """

    figure: np.ndarray
    point_colors: np.ndarray
    backbone_figure: np.ndarray
    features_png: Path
    features_ply: Path
    backbone_png: Path
    backbone_ply: Path


@dataclass
class SimilarityFigure:
    """What :func:`similarity_figures` drew and wrote.

    Attributes:
        figure: ``(H, W, 3)`` uint8 picture.
        query_point: index of the query point in :attr:`FrameEmbeddings.points`.
        query_uv: its pixel ``(u, v)`` in the image.
        png: the file written.
    """

    figure: np.ndarray
    query_point: int
    query_uv: tuple[float, float]
    png: Path


@dataclass
class SegmentationFigures:
    """What :func:`segmentation_figures` drew and wrote.

    Attributes:
        figure: ``(H, W, 3)`` uint8 prediction vs ground truth with a class legend.
        predicted: ``(N,)`` int64 predicted class of every original point.
        accuracy: fraction of labelled points predicted right (NaN without labels).
        miou: mean IoU (fraction) over the classes present in this scene's labels,
            as ``ppkt evaluate`` computes it on one scene (NaN without labels).
        png: ``segmentation.png``.
        ply: ``segmentation.ply`` (points coloured by predicted class).
    """

    figure: np.ndarray
    predicted: np.ndarray
    accuracy: float
    miou: float
    png: Path
    ply: Path


# ------------------------------------------------------------------------------------------ pretraining
def load_pretrain_run(run_dir: str | Path, checkpoint: str | Path | None = None):
    """``(model in eval mode, config, checkpoint folder)`` of a pretraining run folder.

    Uses the run's own ``config.yaml`` and its ``latest`` checkpoint (or ``checkpoint``), loaded
    strictly through :mod:`ppkt.train.checkpoint`.
    """

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    folder = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run_dir)
    if folder is None:
        raise FileNotFoundError(f"{run_dir}: the run has no checkpoint yet (checkpoints/latest missing)")
    weights, _ = load_checkpoint(folder)
    model = build_model(cfg)
    model.load_trainable_state_dict(weights, what=str(folder))
    return model.eval(), cfg, folder


def no_augmentation():
    """An ``AugmentConfig`` that changes nothing (no rotation, scale, flip, crop): frames as captured."""

    return AugmentConfig(
        rotate_up=0.0,
        scale_min=1.0,
        scale_max=1.0,
        flip_3d=0.0,
        elastic=False,
        hflip=0.0,
        crop_scale_min=1.0,
        crop_hw=None,
    )


# Without a pose, a level OpenCV camera's frame turned so that z is up: (x, y, z) -> (x, z, -y).
_Z_UP_FROM_CAMERA = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def _world_points(
    points: torch.Tensor, frame: RGBDFrame, *, already_world: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The sample's points in a z-up frame (the world when the frame has a pose, as in ScanNet)
    and the depth camera's position there, so that renderings stand upright. ``already_world``:
    the pipeline already put the points in the pose's world frame (``data.points_frame=world``)."""
    pts = points.double().cpu().numpy()
    pose = frame.world_from_camera
    if pose is None or not np.isfinite(pose).all():
        world_from_depth = _Z_UP_FROM_CAMERA
    else:
        color_from_depth = np.asarray(frame.color_from_depth, np.float64)
        world_from_depth = np.asarray(pose, np.float64) @ color_from_depth
        if already_world:
            return pts.astype(np.float32), world_from_depth[:3, 3].copy()
    world = pts @ world_from_depth[:3, :3].T + world_from_depth[:3, 3]
    return world.astype(np.float32), world_from_depth[:3, 3].copy()


def frame_view(emb: FrameEmbeddings, render_hw: tuple[int, int] = (360, 480)) -> View:
    """A deterministic view of a frame's points from behind and above the camera that captured
    them (20 deg to the side, 20 deg higher), so the rendering reads like the image yet shows depth."""
    centre = np.median(emb.points, axis=0) if len(emb.points) else np.zeros(3)
    to_camera = emb.camera_position - centre
    azimuth = np.degrees(np.arctan2(to_camera[1], to_camera[0])) + 20.0
    elevation = np.degrees(np.arcsin(np.clip(to_camera[2] / max(np.linalg.norm(to_camera), 1e-9), -1, 1)))
    return orbit_view(emb.points, render_hw, azimuth_deg=azimuth, elevation_deg=min(elevation + 20.0, 80.0))


@torch.no_grad()
def frame_embeddings(model, frame: RGBDFrame, cfg) -> FrameEmbeddings:
    """Run one frame through ``model`` (a ``PPKTModel``) as pretraining sees it, minus augmentation.

    Args:
        model: the pretraining model (teacher, UPL, backbone, head); left in its training mode.
        frame: an RGB-D frame of the run's dataset.
        cfg: the run's ``PretrainConfig`` (image size, depth range, voxel size, input features).

    Raises:
        ppkt.train.samples.FrameSkipped: the frame has no usable pixel-point pairs.
    """

    if not isinstance(frame, RGBDFrame):
        raise NotImplementedError(
            f"feature figures need an RGB-D frame, got {type(frame).__name__} (lidar + cameras: not yet)"
        )
    sample = rgbd_sample(
        frame, cfg.data, no_augmentation(), cfg.model.input_features, np.random.default_rng(0)
    )
    device = next(model.parameters()).device
    batch = Collator(cfg.model.voxel_size)([sample]).to(device)
    was_training = model.training
    model.eval()
    try:
        voxel_feats = model.backbone(batch.sparse.tensor).feats
        voxel_emb = model.head(voxel_feats)
        teacher_feats = model.teacher(batch.images)
        stride = getattr(model.teacher, "stride", None)
        pixel_map = model.upl(teacher_feats, batch.image_hw, stride=stride)
    finally:
        model.train(was_training)
    if max(pixel_map.shape[-2:]) > PIXEL_MAP_MAX_SIDE:
        scale = PIXEL_MAP_MAX_SIDE / max(pixel_map.shape[-2:])
        size = (max(1, round(pixel_map.shape[-2] * scale)), max(1, round(pixel_map.shape[-1] * scale)))
        pixel_map = F.normalize(F.interpolate(pixel_map, size=size, mode="bilinear", antialias=True), dim=1)
    p2v = batch.sparse.point_to_voxel
    n = int(sample.points.shape[0])
    image_t = sample.images[0]
    colors = torch.zeros(n, 3)
    colors[sample.pair_point] = color_at(image_t, sample.pair_uv)
    uv = torch.full((n, 2), float("nan"))
    uv[sample.pair_point] = sample.pair_uv.float()
    in_world = cfg.data.points_frame == "world"
    points, camera_position = _world_points(sample.points, frame, already_world=in_world)
    return FrameEmbeddings(
        points=points,
        point_colors=(colors * 255).round().clamp(0, 255).to(torch.uint8).numpy(),
        image=(image_t.permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy(),
        point_uv=uv.numpy(),
        point_embeddings=voxel_emb[p2v].float().cpu().numpy(),
        backbone_features=voxel_feats[p2v].float().cpu().numpy(),
        pixel_embeddings=pixel_map[0].float().cpu().numpy(),
        teacher_features=teacher_feats[0].float().cpu().numpy(),
        camera_position=camera_position,
        name=sample.name,
    )


def pretrain_feature_figures(
    model, frame: RGBDFrame, cfg, out_dir: str | Path, *, embeddings: FrameEmbeddings | None = None
) -> FeatureFigures:
    """Write ``features.png`` / ``features.ply`` (embeddings, shared PCA basis) and
    ``backbone_features.png`` / ``backbone_features.ply`` (pre-head features) into ``out_dir``.

    Pass ``embeddings`` (from :func:`frame_embeddings`) to reuse a forward pass.
    """
    out_dir = Path(out_dir)
    emb = embeddings if embeddings is not None else frame_embeddings(model, frame, cfg)
    view = frame_view(emb)
    # The loss compares unit vectors: normalise the student side as it does, so that the norm of
    # the head's output (meaningless to the loss) does not become a principal component.
    unit_points = emb.point_embeddings / np.maximum(
        np.linalg.norm(emb.point_embeddings, axis=1, keepdims=True), 1e-12
    )
    figure, point_rgb = feature_pca_figure(
        emb.points,
        unit_points,
        emb.image,
        emb.pixel_embeddings,
        point_colors=emb.point_colors,
        view=view,
        center_separately=True,
    )
    backbone_figure, backbone_rgb = feature_pca_figure(
        emb.points,
        emb.backbone_features,
        emb.image,
        emb.teacher_features,
        point_colors=emb.point_colors,
        view=view,
    )
    comment = f"ppkt {emb.name}"
    return FeatureFigures(
        figure=figure,
        point_colors=point_rgb,
        backbone_figure=backbone_figure,
        features_png=save_png(out_dir / "features.png", figure),
        features_ply=save_colored_ply(
            out_dir / "features.ply", emb.points, point_rgb, comment=f"{comment} embedding PCA"
        ),
        backbone_png=save_png(out_dir / "backbone_features.png", backbone_figure),
        backbone_ply=save_colored_ply(
            out_dir / "backbone_features.ply", emb.points, backbone_rgb, comment=f"{comment} backbone PCA"
        ),
    )


def choose_query_point(
    emb: FrameEmbeddings, *, point: int | None = None, uv: tuple[float, float] | None = None
) -> int:
    """The query point: ``point`` itself, the paired point nearest pixel ``uv``, or by default the
    paired point nearest the image centre (deterministic)."""
    paired = np.nonzero(np.isfinite(emb.point_uv[:, 0]))[0]
    if point is not None:
        if not 0 <= point < len(emb.points):
            raise ValueError(f"--point {point} out of range: the frame has {len(emb.points)} points")
        if not np.isfinite(emb.point_uv[point, 0]):
            raise ValueError(f"point {point} has no pixel in the image; choose another or use --uv")
        return int(point)
    if len(paired) == 0:
        raise ValueError(f"{emb.name}: no point has a pixel")
    if uv is None:
        h, w = emb.image.shape[:2]
        uv = ((w - 1) / 2, (h - 1) / 2)
    dist = np.square(emb.point_uv[paired] - np.asarray(uv, np.float32)).sum(1)
    return int(paired[np.argmin(dist)])  # argmin takes the first: ties go to the lowest index


def similarity_figures(
    model,
    frame: RGBDFrame,
    cfg,
    out_dir: str | Path,
    *,
    point: int | None = None,
    uv: tuple[float, float] | None = None,
    embeddings: FrameEmbeddings | None = None,
) -> SimilarityFigure:
    """Write ``similarity.png``: cosine similarity from one point to every pixel (teacher) and point
    (student). The query is ``point``, the point seen nearest pixel ``uv``, or the image centre's."""
    emb = embeddings if embeddings is not None else frame_embeddings(model, frame, cfg)
    query = choose_query_point(emb, point=point, uv=uv)
    query_uv = (float(emb.point_uv[query, 0]), float(emb.point_uv[query, 1]))
    # The pixel map may be smaller than the image (capped): similarity_figure maps uv by ratio.
    figure = similarity_figure(
        query,
        emb.points,
        emb.point_embeddings,
        emb.image,
        emb.pixel_embeddings,
        query_uv,
        view=frame_view(emb),
    )
    return SimilarityFigure(figure, query, query_uv, save_png(Path(out_dir) / "similarity.png", figure))


# ------------------------------------------------------------------------------------------ fine-tuning
@torch.no_grad()
def predict_scene(model, scene: LabeledScene, cfg) -> np.ndarray:
    """``(N,)`` int64 predicted class of every original point of ``scene`` (no augmentation).

    ``cfg`` is the checkpoint's ``FinetuneConfig`` (voxel size, input features, classes).
    """

    sample = scene_sample(scene, cfg.model.input_features, cfg.data.num_classes)
    batch = collate_scenes([sample], cfg.model.voxel_size, cfg.data.num_classes)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        predicted = predict_points(model, batch.to(device))
    finally:
        model.train(was_training)
    return predicted.cpu().numpy().astype(np.int64)


def scene_cutaway(points: np.ndarray, cut_top: float) -> np.ndarray:
    """``(N,)`` bool: points below the top ``cut_top`` fraction of the z range (1st-99th percentile)."""
    if len(points) == 0 or cut_top <= 0:
        return np.ones(len(points), dtype=bool)
    lo, hi = np.percentile(points[:, 2], [1, 99])
    return points[:, 2] <= hi - cut_top * (hi - lo)


def segmentation_figures(
    model,
    scene: LabeledScene,
    cfg,
    class_names: Sequence[str],
    out_dir: str | Path,
    *,
    stem: str = "segmentation",
    cut_top: float = 0.2,
) -> SegmentationFigures:
    """Write ``<stem>.png`` (prediction vs ground truth, same viewpoint, class legend) and
    ``<stem>.ply`` (points coloured by predicted class) into ``out_dir``.

    The picture leaves out the top ``cut_top`` of the scene's height (z up) so that a ceiling
    does not hide the room; the PLY keeps every point.
    """
    out_dir = Path(out_dir)
    class_names = tuple(class_names) or tuple(scene.class_names)
    if len(class_names) != cfg.data.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {cfg.data.num_classes}-class model")
    predicted = predict_scene(model, scene, cfg)
    labels = np.asarray(scene.labels, dtype=np.int64)
    labelled = labels != IGNORE_LABEL
    accuracy = float((predicted[labelled] == labels[labelled]).mean()) if labelled.any() else float("nan")
    confusion = ConfusionMatrix(len(class_names), ignore_label=IGNORE_LABEL, class_names=class_names)
    confusion.update(torch.from_numpy(predicted), torch.from_numpy(labels))
    miou = confusion.compute().miou if labelled.any() else float("nan")
    points = np.asarray(scene.points)
    shown = scene_cutaway(points, cut_top)
    view = orbit_view(points[shown], (420, 560), elevation_deg=60.0)
    figure = segmentation_figure(points[shown], predicted[shown], labels[shown], class_names, view=view)
    figure = caption(
        figure,
        f"{scene.scene_id}: predicted class of every point vs the ground truth (black: unlabelled; the "
        f"top fifth of the room is cut away). This room: mIoU {100 * miou:.1f} %, "
        f"{100 * accuracy:.1f} % of points right.",
    )
    colors = label_colors(predicted, len(class_names))
    return SegmentationFigures(
        figure=figure,
        predicted=predicted,
        accuracy=accuracy,
        miou=miou,
        png=save_png(out_dir / f"{stem}.png", figure),
        ply=save_colored_ply(
            out_dir / f"{stem}.ply", scene.points, colors, comment=f"ppkt {scene.scene_id} predictions"
        ),
    )


__all__ = [
    "FeatureFigures",
    "FrameEmbeddings",
    "SegmentationFigures",
    "SimilarityFigure",
    "choose_query_point",
    "frame_embeddings",
    "frame_view",
    "load_pretrain_run",
    "no_augmentation",
    "predict_scene",
    "pretrain_feature_figures",
    "scene_cutaway",
    "segmentation_figures",
    "similarity_figures",
]

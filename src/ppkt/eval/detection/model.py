"""VoteNet (Qi et al., ICCV 2019) on the features of a sparse 3D backbone (SR-UNet).

VoteNet's own backbone is a PointNet++; here the seeds are sampled from the SR-UNet's voxels
(as in PointContrast's and PPKT's detection experiments) and everything after the seeds is
VoteNet's, in pure PyTorch (``ppkt.geometry.point_ops`` instead of its CUDA ops):

1. **seeds**: farthest point sampling of ``num_seeds`` voxels per scene (voxel position = mean of
   its points), with the backbone's feature of each voxel projected to ``hidden`` channels;
2. **voting**: a shared MLP gives each seed an offset (vote = seed + offset) and a feature
   residual; vote features are L2-normalised (votenet ``models/voting_module.py``);
3. **vote aggregation**: FPS of ``num_proposals`` votes, a ball query (``radius``,
   ``group_samples``) groups the votes around each, a PointNet (shared MLP on the votes' offsets
   divided by the radius and their features, max-pooled) gives a proposal feature;
4. **proposals**: an MLP predicts objectness (2), a centre offset (3), heading bin scores and
   normalised residuals (2 x ``num_heading_bins``), size-template scores and normalised residuals
   (4 x ``num_classes``: one template per class, the class's mean training box size) and class
   scores (``num_classes``) (votenet ``models/proposal_module.py``, ``decode_scores``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ppkt.data.boxes import Boxes3D
from ppkt.eval.detection.config import DetectionConfig, VoteNetConfig
from ppkt.eval.detection.data import DetectionBatch
from ppkt.eval.detection.metrics import ScoredBoxes
from ppkt.geometry.point_ops import (
    ball_query,
    farthest_point_sample,
    gather_points,
    group_points,
    nms_3d,
)


def mean_box_sizes(boxes: list[Boxes3D], num_classes: int) -> np.ndarray:
    """``(C, 3)`` mean full size of each class's boxes (VoteNet's size templates); a class without
    boxes gets the mean over all boxes (1 m cubes when there are none)."""
    sizes = np.concatenate([b.sizes for b in boxes]) if boxes else np.zeros((0, 3))
    labels = np.concatenate([b.labels for b in boxes]) if boxes else np.zeros(0, dtype=np.int64)
    fallback = sizes.mean(0) if len(sizes) else np.ones(3)
    out = np.tile(fallback, (num_classes, 1))
    for c in range(num_classes):
        if (labels == c).any():
            out[c] = sizes[labels == c].mean(0)
    return out.astype(np.float32)


def _mlp(sizes: list[int], last_plain: bool = True) -> nn.Sequential:
    """Per-item MLP over the last dimension: Linear + BatchNorm + ReLU, the last layer plain."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        plain = last_plain and i == len(sizes) - 2
        layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=plain))
        if not plain:
            layers += [_FlatBatchNorm(sizes[i + 1]), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class _FlatBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over every leading dimension ((B, S, C) or (B, S, K, C) items)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


@dataclass
class VoteNetOutput:
    """What the head predicts for a batch of ``B`` scenes.

    Attributes:
        seed_voxels: ``(B, S)`` long rows of the sparse batch used as seeds.
        seed_xyz: ``(B, S, 3)`` seed positions.
        votes: ``(B, S, 3)`` vote positions.
        proposal_xyz: ``(B, P, 3)`` positions of the sampled votes the proposals are grouped around.
        objectness: ``(B, P, 2)`` logits (not an object, object).
        centers: ``(B, P, 3)`` box centres.
        heading_logits: ``(B, P, NH)``; heading_residuals: ``(B, P, NH)`` normalised by pi / NH.
        size_logits: ``(B, P, C)``; size_residuals: ``(B, P, C, 3)`` normalised by the templates.
        class_logits: ``(B, P, C)``.
    """

    seed_voxels: torch.Tensor
    seed_xyz: torch.Tensor
    votes: torch.Tensor
    proposal_xyz: torch.Tensor
    objectness: torch.Tensor
    centers: torch.Tensor
    heading_logits: torch.Tensor
    heading_residuals: torch.Tensor
    size_logits: torch.Tensor
    size_residuals: torch.Tensor
    class_logits: torch.Tensor


def heading_to_bin(heading: torch.Tensor, num_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """VoteNet's ``angle2class``: bin ``k`` is centred on ``k * 2pi / NH``; returns (bin, residual in
    radians within ``[-pi/NH, pi/NH)``)."""
    width = 2 * math.pi / num_bins
    shifted = torch.remainder(heading + width / 2, 2 * math.pi)
    k = torch.clamp((shifted / width).floor().long(), max=num_bins - 1)
    return k, shifted - (k.to(heading.dtype) * width + width / 2)


def bin_to_heading(k: torch.Tensor, residual: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Inverse of :func:`heading_to_bin`, wrapped into ``(-pi, pi]``."""
    angle = k.to(residual.dtype) * (2 * math.pi / num_bins) + residual
    return torch.atan2(torch.sin(angle), torch.cos(angle))


class VoteNetHead(nn.Module):
    """Voting, vote aggregation and proposals on seed points with features.

    Args:
        in_channels: channels of the seed features (the backbone's ``out_channels``).
        num_classes: detection classes.
        mean_sizes: ``(C, 3)`` size templates (:func:`mean_box_sizes`), kept as a buffer so that a
            checkpoint carries them.
        cfg: the head's settings.
    """

    def __init__(
        self, in_channels: int, num_classes: int, mean_sizes: np.ndarray | torch.Tensor, cfg: VoteNetConfig
    ):
        super().__init__()
        self.cfg = cfg
        self.num_classes = int(num_classes)
        self.register_buffer(
            "mean_sizes", torch.as_tensor(np.asarray(mean_sizes, dtype=np.float32)).reshape(num_classes, 3)
        )
        h, ph, nh = cfg.hidden, cfg.proposal_hidden, cfg.num_heading_bins
        self.seed_projection = _mlp([in_channels, h], last_plain=False)
        self.vote = _mlp([h, h, h, 3 + h])
        self.aggregate = _mlp([3 + h, ph, ph, ph], last_plain=False)
        self.proposal = _mlp([ph, ph, ph, 2 + 3 + 2 * nh + 4 * num_classes + num_classes])

    def forward(
        self, seed_xyz: torch.Tensor, seed_feats: torch.Tensor, seed_voxels: torch.Tensor | None = None
    ) -> VoteNetOutput:
        """Args: ``seed_xyz (B, S, 3)``, ``seed_feats (B, S, in_channels)``, ``seed_voxels (B, S)``
        (where the seeds come from; carried through for the vote targets)."""
        cfg, c, nh = self.cfg, self.num_classes, self.cfg.num_heading_bins
        feats = self.seed_projection(seed_feats)
        out = self.vote(feats)
        votes = seed_xyz + out[..., :3]
        vote_feats = F.normalize(feats + out[..., 3:], dim=-1)
        with torch.no_grad():
            centres_idx = farthest_point_sample(votes.detach(), cfg.num_proposals)
            group_idx, _ = ball_query(
                votes.detach(), gather_points(votes.detach(), centres_idx), cfg.radius, cfg.group_samples
            )
        proposal_xyz = gather_points(votes, centres_idx)
        grouped_xyz = (group_points(votes, group_idx) - proposal_xyz[:, :, None, :]) / cfg.radius
        grouped = torch.cat([grouped_xyz, group_points(vote_feats, group_idx)], dim=-1)
        pooled = self.aggregate(grouped).amax(dim=2)
        raw = self.proposal(pooled)
        i = 0

        def take(n):
            nonlocal i
            part = raw[..., i : i + n]
            i += n
            return part

        objectness = take(2)
        centers = proposal_xyz + take(3)
        heading_logits, heading_residuals = take(nh), take(nh)
        size_logits = take(c)
        size_residuals = take(3 * c).reshape(*raw.shape[:2], c, 3)
        class_logits = take(c)
        if seed_voxels is None:
            seed_voxels = torch.full(seed_xyz.shape[:2], -1, dtype=torch.long, device=seed_xyz.device)
        return VoteNetOutput(
            seed_voxels=seed_voxels, seed_xyz=seed_xyz, votes=votes, proposal_xyz=proposal_xyz,
            objectness=objectness, centers=centers,
            heading_logits=heading_logits, heading_residuals=heading_residuals,
            size_logits=size_logits, size_residuals=size_residuals, class_logits=class_logits,
        )  # fmt: skip


class DetectionModel(nn.Module):
    """``backbone`` (sparse U-Net, per-voxel features) + ``head`` (:class:`VoteNetHead`).

    Backbone freezing follows ``ppkt.eval.finetune.SegmentationModel``: ``freeze_batchnorm``
    keeps the backbone's batch-norm statistics while it trains.
    """

    def __init__(self, backbone: nn.Module, head: VoteNetHead, *, freeze_batchnorm: bool = False):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.freeze_batchnorm = freeze_batchnorm

    def train(self, mode: bool = True) -> DetectionModel:
        super().train(mode)
        if self.freeze_batchnorm:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, batch: DetectionBatch) -> VoteNetOutput:
        sparse = batch.sparse
        feats = self.backbone(sparse.tensor).feats  # (M, F)
        m = feats.shape[0]
        with torch.no_grad():
            counts = torch.bincount(sparse.point_to_voxel, minlength=m).clamp(min=1).to(batch.points.dtype)
            voxel_xyz = (
                batch.points.new_zeros(m, 3).index_add_(0, sparse.point_to_voxel, batch.points)
                / counts[:, None]
            )
            seeds = seed_voxels(voxel_xyz, sparse.voxel_offsets, self.head.cfg.num_seeds)  # (B, S)
        return self.head(voxel_xyz[seeds], feats[seeds], seeds)


def seed_voxels(
    voxel_xyz: torch.Tensor, voxel_offsets: torch.Tensor, num_seeds: int, *, batched: bool | None = None
) -> torch.Tensor:
    """``(B, S)`` indices into ``voxel_xyz (M, 3)`` of each scene's seeds: farthest point sampling
    of ``S = num_seeds`` voxels within each scene (scene ``b`` owns rows ``voxel_offsets[b]`` to
    ``voxel_offsets[b + 1]``). The same indices either way ``batched`` goes (tested).

    FPS is a loop of ``S`` dependent steps of a few small operations. On a GPU each step costs its
    kernel launches whatever its size (one FPS of 50k voxels to 1024 took 153 ms on an H200, about
    1024 x 7 launches, against 0.7 ms for a dense distance pass of the same size), so there the
    scenes are sampled in one batched loop (``batched=None`` means: on anything but the CPU). On
    the CPU the work per step is what costs, and the batched form measured 0.8x the per-scene one
    (two scenes of 48k and 52k voxels, one thread), so each scene is sampled alone.

    Batched, each scene is padded to the largest with copies of its last voxel: a copy is never
    picked before its original (it is exactly as far, and the original has the lower index) and is
    at distance 0 once that is picked. Scenes with fewer than ``S`` voxels, where FPS repeats its
    order, are sampled alone; the others still share one loop.
    """
    offsets = voxel_offsets.tolist()
    counts = [offsets[b + 1] - offsets[b] for b in range(len(offsets) - 1)]
    if batched is None:
        batched = voxel_xyz.device.type != "cpu"
    seeds: list[torch.Tensor | None] = [None] * len(counts)
    together = [b for b, n in enumerate(counts) if batched and n >= num_seeds]
    if len(together) > 1:
        count = torch.tensor([counts[b] for b in together], device=voxel_xyz.device)[:, None]
        start = torch.tensor([offsets[b] for b in together], device=voxel_xyz.device)[:, None]
        local = torch.arange(int(count.max()), device=voxel_xyz.device)[None]
        padded = start + torch.minimum(local, count - 1)  # (B', N_max) rows of voxel_xyz
        for row, picks in zip(
            together, start + farthest_point_sample(voxel_xyz[padded], num_seeds), strict=True
        ):
            seeds[row] = picks
    for b in range(len(counts)):
        if seeds[b] is None:
            seeds[b] = offsets[b] + farthest_point_sample(voxel_xyz[offsets[b] : offsets[b + 1]], num_seeds)
    return torch.stack(seeds)


def build_detection_model(cfg: DetectionConfig, num_classes: int, mean_sizes: np.ndarray) -> DetectionModel:
    if cfg.model.mode != "finetune":
        raise ValueError(f"model.mode {cfg.model.mode!r}: detection fine-tunes the backbone (mode finetune)")
    backbone = cfg.model.build()
    head = VoteNetHead(backbone.out_channels, num_classes, mean_sizes, cfg.head)
    return DetectionModel(backbone, head, freeze_batchnorm=cfg.model.freeze_batchnorm)


# ------------------------------------------------------------------------------------------ decoding
def decode_boxes(out: VoteNetOutput, mean_sizes: torch.Tensor, num_heading_bins: int) -> torch.Tensor:
    """``(B, P, 7)`` boxes of the proposals: best heading bin and size template with their residuals."""
    k_heading = out.heading_logits.argmax(-1)
    residual = out.heading_residuals.gather(-1, k_heading[..., None])[..., 0] * (math.pi / num_heading_bins)
    heading = bin_to_heading(k_heading, residual, num_heading_bins)
    k_size = out.size_logits.argmax(-1)
    template = mean_sizes[k_size]  # (B, P, 3)
    res = out.size_residuals.gather(2, k_size[..., None, None].expand(-1, -1, 1, 3))[:, :, 0]
    size = (template * (1 + res)).clamp(min=1e-3)
    return torch.cat([out.centers, size, heading[..., None]], dim=-1)


@torch.no_grad()
def predict_boxes(
    out: VoteNetOutput, mean_sizes: torch.Tensor, cfg: VoteNetConfig, class_names: tuple[str, ...]
) -> list[ScoredBoxes]:
    """Detections per scene after VoteNet's post-processing (votenet ``models/ap_helper.py``,
    ``parse_predictions``): proposals with objectness probability above ``confidence_threshold``,
    3D NMS among proposals of the same predicted class (axis-aligned IoU as VoteNet's
    ``nms_3d_faster_samecls`` when boxes have one heading bin, rotated otherwise), then either one
    box per proposal (its class, scored by objectness) or, with ``per_class_proposal``, a box for
    every class scored objectness x class probability."""
    boxes = decode_boxes(out, mean_sizes, cfg.num_heading_bins).float().cpu()
    objectness = out.objectness.softmax(-1)[..., 1].float().cpu()
    class_prob = out.class_logits.softmax(-1).float().cpu()
    results = []
    for b in range(boxes.shape[0]):
        keep = torch.nonzero(objectness[b] > cfg.confidence_threshold)[:, 0]
        cls = class_prob[b, keep].argmax(-1)
        kept = keep[
            nms_3d(
                boxes[b, keep], objectness[b, keep], cfg.nms_iou, labels=cls, rotated=cfg.num_heading_bins > 1
            )
        ]
        rows = boxes[b, kept].numpy()
        if cfg.per_class_proposal:
            c = len(class_names)
            scores = (objectness[b, kept, None] * class_prob[b, kept]).reshape(-1).numpy()
            rows = np.repeat(rows, c, axis=0)
            labels = np.tile(np.arange(c), len(kept))
        else:
            scores = objectness[b, kept].numpy()
            labels = class_prob[b, kept].argmax(-1).numpy()
        results.append(
            ScoredBoxes(Boxes3D(rows[:, :3], rows[:, 3:6], rows[:, 6], labels, class_names), scores)
        )
    return results

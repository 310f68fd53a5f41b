"""VoteNet's training targets and total loss (votenet ``models/loss_helper.py``, ``get_loss``).

Targets:

* each seed votes for the centre of the box its voxel belongs to (the majority box among the
  voxel's points, ``ppkt.eval.data.voxel_majority_labels``), if any;
* each proposal is assigned the true box whose centre is nearest to its position (the sampled
  vote it is grouped around); it is **positive** when that distance is below ``near_threshold``,
  **negative** above ``far_threshold`` and ignored by the objectness loss in between;
* heading bin/residual (``heading_to_bin``), size template (= the box's class) with residual
  normalised by the template, and class come from the assigned box.

Total, with VoteNet's weights:

    L = 10 * (L_vote + 0.5 L_objectness + L_box + 0.1 L_class)
    L_box = L_center + 0.1 L_heading_cls + L_heading_reg + 0.1 L_size_cls + L_size_reg
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ppkt.eval.data import voxel_majority_labels
from ppkt.eval.detection.config import VoteNetConfig
from ppkt.eval.detection.data import DetectionBatch
from ppkt.eval.detection.model import VoteNetOutput, heading_to_bin
from ppkt.losses.bin_residual import bin_residual_loss
from ppkt.losses.box_center import box_center_loss
from ppkt.losses.masked_cross_entropy import masked_cross_entropy
from ppkt.losses.vote import vote_loss

OBJECTNESS_CLASS_WEIGHTS = (0.2, 0.8)
"""Negative / positive weights of the objectness cross-entropy (votenet ``OBJECTNESS_CLS_WEIGHTS``)."""


@dataclass
class PaddedBoxes:
    """The boxes of ``B`` scenes as padded tensors.

    Attributes:
        centers: ``(B, G, 3)``; sizes: ``(B, G, 3)``; headings: ``(B, G)``; labels: ``(B, G)`` long.
        mask: ``(B, G)`` bool, True for real boxes.
    """

    centers: torch.Tensor
    sizes: torch.Tensor
    headings: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor


def pad_boxes(batch: DetectionBatch, device) -> PaddedBoxes:
    g = max([len(b) for b in batch.boxes] + [1])
    n = len(batch.boxes)
    centers, sizes = torch.zeros(n, g, 3), torch.ones(n, g, 3)
    headings, labels = torch.zeros(n, g), torch.zeros(n, g, dtype=torch.long)
    mask = torch.zeros(n, g, dtype=torch.bool)
    for i, boxes in enumerate(batch.boxes):
        k = len(boxes)
        centers[i, :k] = torch.tensor(boxes.centers)
        sizes[i, :k] = torch.tensor(boxes.sizes)
        headings[i, :k] = torch.tensor(boxes.headings)
        labels[i, :k] = torch.tensor(boxes.labels)
        mask[i, :k] = True
    return PaddedBoxes(
        centers.to(device), sizes.to(device), headings.to(device), labels.to(device), mask.to(device)
    )


@dataclass
class VoteNetLosses:
    """The parts of VoteNet's loss (scalars) and their weighted total; ``positives`` is the number
    of positive proposals (a diagnostic)."""

    total: torch.Tensor
    vote: torch.Tensor
    objectness: torch.Tensor
    center: torch.Tensor
    heading_cls: torch.Tensor
    heading_reg: torch.Tensor
    size_cls: torch.Tensor
    size_reg: torch.Tensor
    semantic: torch.Tensor
    positives: int

    def to_log(self) -> dict[str, float]:
        names = (
            "total",
            "vote",
            "objectness",
            "center",
            "heading_cls",
            "heading_reg",
            "size_cls",
            "size_reg",
            "semantic",
        )
        return {f"loss_{n}" if n != "total" else "loss": float(getattr(self, n).detach()) for n in names} | {
            "positives": self.positives
        }


def votenet_loss(
    out: VoteNetOutput, batch: DetectionBatch, mean_sizes: torch.Tensor, cfg: VoteNetConfig
) -> VoteNetLosses:
    """VoteNet's loss for a batch (see the module docstring)."""
    device = out.votes.device
    truth = pad_boxes(batch, device)
    # Seeds: the box of their voxel.
    m = batch.sparse.tensor.num_sites
    voxel_box = voxel_majority_labels(batch.sparse.point_to_voxel, batch.instance_ids, m, truth.mask.shape[1])
    seed_box = voxel_box[out.seed_voxels]  # (B, S)
    on_object = seed_box >= 0
    seed_target = truth.centers.gather(1, seed_box.clamp(min=0)[..., None].expand(-1, -1, 3))
    l_vote = vote_loss(out.votes, seed_target, on_object)
    # Proposals: nearest true centre.
    d = torch.cdist(out.proposal_xyz.detach(), truth.centers)  # (B, P, G)
    d = torch.where(truth.mask[:, None, :], d, torch.full_like(d, math.inf))
    nearest, assigned = d.min(dim=2)
    positive = nearest < cfg.near_threshold
    objectness_mask = positive | (nearest > cfg.far_threshold)
    l_obj = masked_cross_entropy(
        out.objectness,
        positive.long(),
        objectness_mask,
        torch.tensor(OBJECTNESS_CLASS_WEIGHTS, device=device),
    )
    l_center = box_center_loss(out.centers, truth.centers, positive, truth.mask)

    def assigned_(values):
        return values.gather(
            1,
            assigned.reshape(*assigned.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:]),
        )

    nh = cfg.num_heading_bins
    k_heading, residual = heading_to_bin(assigned_(truth.headings), nh)
    l_hcls, l_hreg = bin_residual_loss(
        out.heading_logits,
        out.heading_residuals[..., None],
        k_heading,
        (residual / (math.pi / nh))[..., None],
        positive,
    )
    labels = assigned_(truth.labels)
    template = mean_sizes[labels]
    size_target = assigned_(truth.sizes) / template - 1
    l_scls, l_sreg = bin_residual_loss(out.size_logits, out.size_residuals, labels, size_target, positive)
    l_sem = masked_cross_entropy(out.class_logits, labels, positive)
    box = l_center + 0.1 * l_hcls + l_hreg + 0.1 * l_scls + l_sreg
    total = 10.0 * (l_vote + 0.5 * l_obj + box + 0.1 * l_sem)
    return VoteNetLosses(
        total, l_vote, l_obj, l_center, l_hcls, l_hreg, l_scls, l_sreg, l_sem, int(positive.sum())
    )

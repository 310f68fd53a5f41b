"""VoteNet's training targets and total loss (votenet ``models/loss_helper.py``, ``get_loss``).

Targets:

* each seed votes for the centre of the box its voxel belongs to (the majority box among the
  voxel's points, ``ppkt.eval.data.voxel_majority_labels``), if any;
* each proposal is assigned the true box whose centre is nearest to its position (the sampled
  vote it is grouped around); it is **positive** when that distance is below ``near_threshold``,
  **negative** above ``far_threshold`` and ignored by the objectness loss in between;
* heading bin/residual (``heading_to_bin``), size template (= the box's class) with residual
  normalised by the template, and class come from the assigned box.

:func:`proposal_targets` computes the proposals' targets; ``model.decode_boxes`` and
``model.predict_boxes`` invert them (targets written as outputs decode to boxes scoring mAP 1.0,
tests/detection/test_detection_overfit.py).

Total, with VoteNet's weights:

    L = 10 * (L_vote + 0.5 L_objectness + L_box + 0.1 L_class)
    L_box = L_center + 0.1 L_heading_cls + L_heading_reg + 0.1 L_size_cls + L_size_reg
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ppkt.data.boxes import Boxes3D
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


def pad_boxes(scenes: list[Boxes3D], device) -> PaddedBoxes:
    """The boxes of each scene, padded to the largest count (at least 1)."""
    g = max([len(b) for b in scenes] + [1])
    n = len(scenes)
    centers, sizes = torch.zeros(n, g, 3), torch.ones(n, g, 3)
    headings, labels = torch.zeros(n, g), torch.zeros(n, g, dtype=torch.long)
    mask = torch.zeros(n, g, dtype=torch.bool)
    for i, boxes in enumerate(scenes):
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
class ProposalTargets:
    """What each of ``P`` proposals of ``B`` scenes should predict (VoteNet's encoding of the
    boxes; ``ppkt.eval.detection.model.decode_boxes`` is its inverse, tested).

    Attributes:
        assigned: ``(B, P)`` long index of the true box whose centre is nearest the proposal.
        positive: ``(B, P)`` bool, that centre is nearer than ``near_threshold``.
        objectness_mask: ``(B, P)`` bool, positive or farther than ``far_threshold`` from every
            centre (the proposals the objectness loss sees).
        heading_bin: ``(B, P)`` long; heading_residual: ``(B, P)`` normalised by ``pi / NH``.
        labels: ``(B, P)`` long class of the assigned box (also its size template).
        size_residual: ``(B, P, 3)`` size / template - 1.
    """

    assigned: torch.Tensor
    positive: torch.Tensor
    objectness_mask: torch.Tensor
    heading_bin: torch.Tensor
    heading_residual: torch.Tensor
    labels: torch.Tensor
    size_residual: torch.Tensor


def proposal_targets(
    proposal_xyz: torch.Tensor, truth: PaddedBoxes, mean_sizes: torch.Tensor, cfg: VoteNetConfig
) -> ProposalTargets:
    """Targets of proposals at ``proposal_xyz (B, P, 3)`` (the sampled votes) for the boxes ``truth``."""
    d = torch.cdist(proposal_xyz.detach(), truth.centers)  # (B, P, G)
    d = torch.where(truth.mask[:, None, :], d, torch.full_like(d, math.inf))
    nearest, assigned = d.min(dim=2)
    positive = nearest < cfg.near_threshold

    def of_assigned(values):
        return values.gather(
            1,
            assigned.reshape(*assigned.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:]),
        )

    nh = cfg.num_heading_bins
    heading_bin, residual = heading_to_bin(of_assigned(truth.headings), nh)
    labels = of_assigned(truth.labels)
    return ProposalTargets(
        assigned=assigned,
        positive=positive,
        objectness_mask=positive | (nearest > cfg.far_threshold),
        heading_bin=heading_bin,
        heading_residual=residual / (math.pi / nh),
        labels=labels,
        size_residual=of_assigned(truth.sizes) / mean_sizes[labels] - 1,
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
    truth = pad_boxes(batch.boxes, device)
    # Seeds: the box of their voxel.
    m = batch.sparse.tensor.num_sites
    voxel_box = voxel_majority_labels(batch.sparse.point_to_voxel, batch.instance_ids, m, truth.mask.shape[1])
    seed_box = voxel_box[out.seed_voxels]  # (B, S)
    on_object = seed_box >= 0
    seed_target = truth.centers.gather(1, seed_box.clamp(min=0)[..., None].expand(-1, -1, 3))
    l_vote = vote_loss(out.votes, seed_target, on_object)
    # Proposals: nearest true centre.
    t = proposal_targets(out.proposal_xyz, truth, mean_sizes, cfg)
    l_obj = masked_cross_entropy(
        out.objectness,
        t.positive.long(),
        t.objectness_mask,
        torch.tensor(OBJECTNESS_CLASS_WEIGHTS, device=device),
    )
    l_center = box_center_loss(out.centers, truth.centers, t.positive, truth.mask)
    l_hcls, l_hreg = bin_residual_loss(
        out.heading_logits, out.heading_residuals[..., None], t.heading_bin, t.heading_residual[..., None],
        t.positive,
    )  # fmt: skip
    l_scls, l_sreg = bin_residual_loss(
        out.size_logits, out.size_residuals, t.labels, t.size_residual, t.positive
    )
    l_sem = masked_cross_entropy(out.class_logits, t.labels, t.positive)
    box = l_center + 0.1 * l_hcls + l_hreg + 0.1 * l_scls + l_sreg
    total = 10.0 * (l_vote + 0.5 * l_obj + box + 0.1 * l_sem)
    return VoteNetLosses(
        total, l_vote, l_obj, l_center, l_hcls, l_hreg, l_scls, l_sreg, l_sem, int(t.positive.sum())
    )

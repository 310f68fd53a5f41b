"""The pretraining objective of a run (``loss.name``): which pairs one step embeds, and the loss
on their embeddings (docs/objectives.md).

    infonce              PPKT (Liu et al. 2021): ``loss.num_pairs`` random pairs, pixel-to-point
                         InfoNCE against the trainable UPL's pixel embeddings.
    cosine               ScaLR / OpenScene: the same pairs, ``1 - cos`` between the 3D embedding
                         and the frozen teacher feature at the pixel (``PPKTModel(pixel_target=
                         "teacher")``: no trainable target, which could collapse).
    superpixel-infonce   SLidR (Sautier et al. 2022): up to ``loss.superpixel_pairs`` pairs of every
                         superpixel of every image, pooled per superpixel, InfoNCE over superpixels.

Scene-level pairs (``data.pairs=scene``) change what a sample holds, not the loss: every
objective above works on them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ppkt.data.superpixels import Superpixels
from ppkt.losses import CosineDistillation, PointInfoNCE, SuperpixelInfoNCE
from ppkt.train.batch import PretrainBatch
from ppkt.train.config import LossConfig, PretrainConfig
from ppkt.train.model import PairEmbeddings
from ppkt.train.pair_sampling import PairSelection, sample_pairs

LOSS_NAMES: tuple[str, ...] = ("infonce", "cosine", "superpixel-infonce")


def pixel_target(loss: LossConfig) -> str:
    """What the pixel side of :class:`ppkt.train.model.PPKTModel` is for this loss."""
    return "teacher" if loss.name == "cosine" else "upl"


def superpixel_source(cfg: PretrainConfig) -> Superpixels | None:
    """The dataset's superpixels (superpixel-infonce only): cached in ``loss.superpixel_cache``, or
    beside the teacher cache (``<teacher.cache>/superpixels``), or computed on the fly."""
    if cfg.loss.name != "superpixel-infonce":
        return None
    root = cfg.loss.superpixel_cache
    if root is None and cfg.teacher.cache is not None:
        root = Path(cfg.teacher.cache) / "superpixels"
    return Superpixels(cfg.loss.superpixels, None if root is None else Path(root))


def batch_segments(batch: PretrainBatch) -> torch.Tensor:
    """``(P,)`` long label of each pair's superpixel, unique over the batch's images."""
    if batch.pair_superpixel is None:
        raise ValueError(
            "loss.name=superpixel-infonce: the batch carries no superpixels (dataset built without them)"
        )
    per_image = int(batch.pair_superpixel.max().item()) + 1 if batch.num_pairs else 1
    return batch.pair_image * per_image + batch.pair_superpixel


def sample_per_segment(
    segment: torch.Tensor, per_segment: int, generator: torch.Generator | None
) -> PairSelection:
    """Up to ``per_segment`` random pairs of every segment with at least 2 pairs (no negatives
    otherwise), grouped by segment in increasing label order; ``group`` = the segment label.

    :func:`ppkt.train.pair_sampling.sample_pairs` with ``sampling="frame"`` gives the same kind of
    draw, but loops over groups; a batch has thousands of superpixels, so this one sorts instead.
    """
    if per_segment < 1:
        raise ValueError(f"sample_per_segment: per_segment must be >= 1, got {per_segment}")
    segment = segment.detach().to("cpu").long()
    count = segment.numel()
    shuffled = torch.randperm(count, generator=generator)
    # A stable sort by segment of a random permutation: segments in order, members in random order.
    index = shuffled[torch.sort(segment[shuffled], stable=True).indices]
    grouped = segment[index]
    _, sizes = torch.unique_consecutive(grouped, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
    rank = torch.arange(count) - starts
    keep = (rank < per_segment) & (torch.repeat_interleave(sizes, sizes) >= 2)
    return PairSelection(index[keep], grouped[keep])


class Objective:
    """``select`` the pairs of a step, embed them (``model(batch, selection.index)``), then call.

    Args:
        loss: the run's loss section.
        gather_distributed: add the other ranks' pixels as negatives (infonce only).
    """

    def __init__(self, loss: LossConfig, *, gather_distributed: bool = False) -> None:
        if loss.name not in LOSS_NAMES:
            raise ValueError(f"loss.name must be one of {LOSS_NAMES}, got {loss.name!r}")
        self.cfg = loss
        if loss.name == "infonce":
            self.loss: torch.nn.Module = PointInfoNCE(loss.tau, gather_distributed=gather_distributed)
        elif loss.name == "cosine":
            self.loss = CosineDistillation()
        else:
            self.loss = SuperpixelInfoNCE(loss.tau)

    @property
    def name(self) -> str:
        return self.cfg.name

    def select(self, batch: PretrainBatch, generator: torch.Generator | None) -> PairSelection:
        """The pairs this step embeds (indices into the batch's pairs, on the CPU)."""
        if self.cfg.name == "superpixel-infonce":
            return sample_per_segment(batch_segments(batch), self.cfg.superpixel_pairs, generator)
        return sample_pairs(batch.pair_frame, self.cfg.num_pairs, self.cfg.sampling, generator)

    def __call__(self, emb: PairEmbeddings, selection: PairSelection, batch: PretrainBatch) -> torch.Tensor:
        if self.cfg.name == "superpixel-infonce":
            return self.loss(emb.points, emb.pixels, selection.group.to(emb.points.device))
        return self.loss(emb.points, emb.pixels, selection.group)

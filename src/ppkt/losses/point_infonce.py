"""Pixel-to-point InfoNCE (PPKT, Liu et al. 2021, eq. 1).

For ``N`` sampled pixel/point pairs with L2-normalised point embeddings ``f_i`` and pixel
embeddings ``g_i``, the loss is

    L = -1/N * sum_i log( exp(f_i . g_i / tau) / sum_j exp(f_i . g_j / tau) )

i.e. a cross-entropy over the ``N x N`` similarity matrix with each point's own pixel as the
target (the point -> pixel direction, as in the paper and in SLidR). The other pixels given are
the negatives; there is no memory bank.

The loss is the formula only: it is a function of the two embeddings it is given (plus, for
per-frame losses, the frame of each row). Which pairs it sees is chosen beforehand by
``ppkt.train.pair_sampling.sample_pairs``, so only those pairs are ever embedded.

Degenerate inputs: with fewer than 2 pairs there are no negatives, and the loss is defined as
a zero that still carries a ``grad_fn`` (so ``loss.backward()`` works and gives zero
gradients); with ``group`` such frames are left out of the average.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _zero_loss(*tensors: torch.Tensor) -> torch.Tensor:
    # A zero that is connected to the inputs, so that backward() still runs on every rank (DDP needs it).
    return sum(t.sum() * 0.0 for t in tensors)


def gather_pixels_across_ranks(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' rows of ``local`` (R,D) concatenated, and where this rank's rows start.

    Rows from other ranks are constants (``all_gather`` has no backward); this rank's rows keep
    their gradient. So the local pixels learn from the local points' losses only, the usual
    "extra negatives from the other GPUs" recipe; DDP then averages the weight gradients.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local, 0
    world = dist.get_world_size()
    rank = dist.get_rank()
    size = torch.tensor([local.shape[0]], device=local.device, dtype=torch.long)
    sizes_t = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes_t, size)
    sizes = [int(s.item()) for s in sizes_t]
    max_size = max(sizes)
    padded = local.detach().new_zeros((max_size, local.shape[1]))
    padded[: local.shape[0]] = local.detach()
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded.contiguous())
    parts = [g[:s] for g, s in zip(gathered, sizes, strict=True)]
    parts[rank] = local  # the local slice keeps its autograd history
    start = sum(sizes[:rank])
    return torch.cat(parts, dim=0), start


class PointInfoNCE(nn.Module):
    """Pixel-to-point InfoNCE over given pairs.

    Args:
        tau: softmax temperature (paper 0.04; SLidR's PPKT re-implementation 0.07).
        gather_distributed: with ``torch.distributed`` initialised, add the other ranks' pixels as
            extra negatives (they are constants here; only the local pixels get a gradient). Not
            with ``group``.
        normalize: L2-normalise both embeddings (the paper's cosine similarity). Turn off only
            when the inputs are already normalised.

    Call ``loss(point_feats (P,D), pixel_feats (P,D), group=None)``; row ``k`` of both tensors is
    one pair. Without ``group`` all ``P`` pairs form one softmax (negatives from the whole batch);
    with ``group (P,)`` long (the frame of each row) the loss is the mean over groups of at least 2
    rows of the loss within each group. Returns a scalar tensor.
    """

    def __init__(
        self, tau: float = 0.04, *, gather_distributed: bool = False, normalize: bool = True
    ) -> None:
        super().__init__()
        if isinstance(tau, bool) or not (isinstance(tau, (int, float)) and tau > 0 and tau == tau):
            raise ValueError(f"PointInfoNCE: tau must be a positive number, got {tau!r}")
        self.tau = float(tau)
        self.gather_distributed = gather_distributed
        self.normalize = normalize

    def extra_repr(self) -> str:
        return f"tau={self.tau}, gather_distributed={self.gather_distributed}"

    def _nce(self, points: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            points = F.normalize(points, dim=1)
            pixels = F.normalize(pixels, dim=1)
        start = 0
        if self.gather_distributed:
            pixels, start = gather_pixels_across_ranks(pixels)
        logits = points @ pixels.t() / self.tau
        target = torch.arange(points.shape[0], device=points.device) + start
        return F.cross_entropy(logits, target)

    def forward(
        self, point_feats: torch.Tensor, pixel_feats: torch.Tensor, group: torch.Tensor | None = None
    ) -> torch.Tensor:
        if point_feats.ndim != 2 or pixel_feats.ndim != 2 or point_feats.shape != pixel_feats.shape:
            raise ValueError(
                "PointInfoNCE: point_feats and pixel_feats must both be (P, D) with the same shape, got "
                f"{tuple(point_feats.shape)} and {tuple(pixel_feats.shape)}"
            )
        count = point_feats.shape[0]
        if group is None:
            if count < 2 and not self.gather_distributed:
                return _zero_loss(point_feats, pixel_feats)
            return self._nce(point_feats, pixel_feats)
        if group.ndim != 1 or group.shape[0] != count:
            raise ValueError(f"PointInfoNCE: group must be ({count},), got {tuple(group.shape)}")
        if self.gather_distributed:
            raise ValueError("PointInfoNCE: gather_distributed pools the whole batch; call it without group")
        losses = []
        group_cpu = group.detach().to("cpu")
        for frame in torch.unique(group_cpu).tolist():
            members = torch.nonzero(group_cpu == frame).squeeze(1)
            if members.numel() < 2:
                continue
            idx = members.to(point_feats.device)
            losses.append(self._nce(point_feats[idx], pixel_feats[idx]))
        if not losses:
            return _zero_loss(point_feats, pixel_feats)
        return torch.stack(losses).mean()

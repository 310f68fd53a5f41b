"""Which pixel-point pairs a pretraining step's loss sees, chosen before anything is embedded.

A batch holds every pixel-point pair of its frames (hundreds of thousands on full-size RGB-D
frames), while the loss compares ``loss.num_pairs`` of them (4096 in the paper). Choosing them
first lets the model embed only the chosen pairs: the loss is the same, and the pixel sampling,
projection head and gathers scale with ``num_pairs`` instead of with the frame size.

Sampling is without replacement and a function of the step's generator only (so runs repeat and
resume exactly); see :func:`sample_pairs` for the two modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Sampling = Literal["batch", "frame"]
SAMPLINGS: tuple[str, ...] = ("batch", "frame")


@dataclass(frozen=True)
class PairSelection:
    """The pairs one step's loss uses.

    Attributes:
        index: ``(S,)`` long CPU indices into the batch's pairs (rows of ``pair_point``,
            ``pair_uv``, ...). With ``sampling="frame"`` the frames' samples are concatenated in
            increasing frame order.
        group: ``(S,)`` long CPU frame of each chosen pair with ``sampling="frame"`` (the loss
            averages its per-frame values), None with ``sampling="batch"``.
    """

    index: torch.Tensor
    group: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.index.numel())


def _draw(count: int, num_pairs: int, generator: torch.Generator | None) -> torch.Tensor:
    """``min(count, num_pairs)`` distinct indices in ``[0, count)``; all of them, in order, when
    ``count <= num_pairs`` (the generator is then left untouched)."""
    if count <= num_pairs:
        return torch.arange(count)
    return torch.randperm(count, generator=generator)[:num_pairs]


def sample_pairs(
    pair_frame: torch.Tensor,
    num_pairs: int,
    sampling: Sampling = "batch",
    generator: torch.Generator | None = None,
) -> PairSelection:
    """Choose the loss's pairs among a batch's pairs.

    Args:
        pair_frame: ``(P,)`` long frame of each pair (``PretrainBatch.pair_frame``; any device).
        num_pairs: pairs per batch (``"batch"``) or per frame (``"frame"``), >= 2; when fewer are
            available all are used.
        sampling: ``"batch"``: ``num_pairs`` over the whole batch, so a point's negatives come from
            every frame (SLidR); ``"frame"``: up to ``num_pairs`` from each frame, in increasing
            frame order; frames with fewer than 2 pairs (no negatives) are left out.
        generator: CPU generator of the step (``ppkt.train.loop.pair_generator``).

    Returns:
        The :class:`PairSelection` (indices on the CPU).
    """
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 2:
        raise ValueError(f"sample_pairs: num_pairs must be an integer >= 2, got {num_pairs!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sample_pairs: sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if pair_frame.ndim != 1:
        raise ValueError(f"sample_pairs: pair_frame must be (P,), got {tuple(pair_frame.shape)}")
    count = int(pair_frame.shape[0])
    if sampling == "batch":
        return PairSelection(_draw(count, num_pairs, generator))
    frames = pair_frame.detach().to("cpu")
    chosen, groups = [], []
    for frame in torch.unique(frames).tolist():
        members = torch.nonzero(frames == frame).squeeze(1)
        if members.numel() < 2:
            continue
        picked = members[_draw(members.numel(), num_pairs, generator)]
        chosen.append(picked)
        groups.append(torch.full_like(picked, frame))
    if not chosen:
        empty = torch.zeros(0, dtype=torch.long)
        return PairSelection(empty, empty.clone())
    return PairSelection(torch.cat(chosen), torch.cat(groups))

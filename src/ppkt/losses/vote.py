"""VoteNet's vote loss (Qi et al. 2019, eq. 1).

Each seed on an object votes for a 3D position; the loss is the L1 distance between the vote and
the object's centre, averaged over the seeds that lie on an object:

    L_vote = 1 / M_pos * sum_i ||v_i - c_i||_1 * 1[seed i on an object]

(votenet ``models/loss_helper.py``, ``compute_vote_loss``, with one vote per seed; VoteNet keeps
up to three ground-truth centres per point for points in overlapping boxes and takes the nearest,
ppkt assigns each point one box). With no seed on an object the loss is a zero connected to the
votes, so ``backward()`` still runs.
"""

from __future__ import annotations

import torch


def vote_loss(votes: torch.Tensor, targets: torch.Tensor, on_object: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between votes and their object centres over seeds on an object.

    Args:
        votes: ``(B, S, 3)`` vote positions.
        targets: ``(B, S, 3)`` centre of each seed's object (any value where ``on_object`` is False).
        on_object: ``(B, S)`` bool.
    """
    if votes.shape != targets.shape or votes.shape[:-1] != on_object.shape:
        raise ValueError(
            f"vote_loss: votes {tuple(votes.shape)}, targets {tuple(targets.shape)} and mask "
            f"{tuple(on_object.shape)} disagree"
        )
    weight = on_object.to(votes.dtype)
    distance = (votes - targets.detach()).abs().sum(-1)
    distance = torch.where(on_object, distance, torch.zeros_like(distance))  # keeps NaN targets out
    return (distance * weight).sum() / (weight.sum() + 1e-6)

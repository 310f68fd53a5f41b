"""VoteNet's losses: naive references (loops), analytic values, degenerate inputs, gradients."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ppkt.losses.bin_residual import bin_residual_loss
from ppkt.losses.box_center import box_center_loss
from ppkt.losses.masked_cross_entropy import masked_cross_entropy
from ppkt.losses.vote import vote_loss


def test_vote_loss_analytic_naive_and_empty():
    votes = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]], requires_grad=True)
    targets = torch.tensor([[[1.5, 1.0, 3.0], [float("nan"), 0.0, 0.0]]])  # the masked target may be junk
    mask = torch.tensor([[True, False]])
    loss = vote_loss(votes, targets, mask)
    assert loss.item() == pytest.approx(1.5, rel=1e-5)  # |1-1.5| + |2-1| + 0 over one seed
    loss.backward()
    assert (
        votes.grad[0, 0].tolist() == pytest.approx([-1.0, 1.0, 0.0], abs=1e-4)
        and torch.isfinite(votes.grad).all()
    )
    rng = np.random.default_rng(0)
    v, t, m = rng.normal(size=(2, 7, 3)), rng.normal(size=(2, 7, 3)), rng.random((2, 7)) < 0.5
    naive = sum(np.abs(v[b, s] - t[b, s]).sum() for b in range(2) for s in range(7) if m[b, s]) / m.sum()
    assert vote_loss(torch.tensor(v), torch.tensor(t), torch.tensor(m)).item() == pytest.approx(
        naive, rel=1e-6
    )
    empty = vote_loss(votes, targets, torch.zeros(1, 2, dtype=torch.bool))
    assert empty.item() == 0.0 and empty.requires_grad


def test_masked_cross_entropy_matches_naive_with_weights():
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(3, 5, 2)))
    target = torch.tensor(rng.integers(0, 2, (3, 5)))
    mask = torch.tensor(rng.random((3, 5)) < 0.6)
    w = torch.tensor([0.2, 0.8], dtype=torch.float64)
    naive, count = 0.0, 0
    for b in range(3):
        for p in range(5):
            if mask[b, p]:
                z = logits[b, p].numpy()
                ce = -z[target[b, p]] + math.log(np.exp(z).sum())
                naive += float(w[target[b, p]]) * ce
                count += 1
    assert masked_cross_entropy(logits, target, mask, w).item() == pytest.approx(naive / count, rel=1e-6)
    # Uniform logits over K classes: CE = log K exactly.
    assert masked_cross_entropy(
        torch.zeros(4, 3), torch.tensor([0, 1, 2, 1]), torch.ones(4, dtype=torch.bool)
    ).item() == pytest.approx(math.log(3), rel=1e-5)
    # A masked-out target outside [0, K) is never looked at.
    assert masked_cross_entropy(
        torch.zeros(2, 3), torch.tensor([0, 99]), torch.tensor([True, False])
    ).item() == pytest.approx(math.log(3), rel=1e-5)


def test_box_center_loss_hand_and_naive():
    pred = torch.tensor([[[0.0, 0, 0], [3.0, 0, 0], [10.0, 0, 0]]], requires_grad=True)
    gt = torch.tensor([[[1.0, 0, 0], [3.0, 0, 0], [99.0, 0, 0]]])
    gt_mask = torch.tensor([[True, True, False]])  # the third is padding
    positive = torch.tensor([[True, True, False]])
    # to truth: 1 and 0 over 2 positives = 0.5; to prediction: gt 1 -> 1 (pred 0), gt 3 -> 0: 0.5.
    loss = box_center_loss(pred, gt, positive, gt_mask)
    assert loss.item() == pytest.approx(1.0, rel=1e-5)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 2].abs().sum() == 0
    rng = np.random.default_rng(2)
    p, g = rng.normal(size=(2, 6, 3)), rng.normal(size=(2, 4, 3))
    pos, gm = rng.random((2, 6)) < 0.5, np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    t1 = sum(
        min(((p[b, i] - g[b, j]) ** 2).sum() for j in range(4) if gm[b, j])
        for b in range(2)
        for i in range(6)
        if pos[b, i]
    )
    t2 = sum(
        min(((p[b, i] - g[b, j]) ** 2).sum() for i in range(6))
        for b in range(2)
        for j in range(4)
        if gm[b, j]
    )
    want = t1 / (pos.sum() + 1e-6) + t2 / (gm.sum() + 1e-6)
    got = box_center_loss(torch.tensor(p), torch.tensor(g), torch.tensor(pos), torch.tensor(gm)).item()
    assert got == pytest.approx(want, rel=1e-6)
    assert (
        box_center_loss(
            torch.zeros(1, 2, 3),
            torch.zeros(1, 0, 3),
            torch.ones(1, 2, dtype=torch.bool),
            torch.zeros(1, 0, dtype=torch.bool),
        ).item()
        == 0
    )


def test_bin_residual_loss_naive_and_analytic():
    rng = np.random.default_rng(3)
    logits = torch.tensor(rng.normal(size=(2, 4, 5)), requires_grad=True)
    residuals = torch.tensor(rng.normal(size=(2, 4, 5, 3)), requires_grad=True)
    k = torch.tensor(rng.integers(0, 5, (2, 4)))
    target = torch.tensor(rng.normal(size=(2, 4, 3)))
    mask = torch.tensor([[True, False, True, True], [False, False, True, False]])
    cls, reg = bin_residual_loss(logits, residuals, k, target, mask)

    def huber(x):
        return 0.5 * x * x if abs(x) <= 1 else abs(x) - 0.5

    n = int(mask.sum())
    want_cls = (
        sum(
            F.cross_entropy(logits[b, p][None], k[b, p][None]).item()
            for b in range(2)
            for p in range(4)
            if mask[b, p]
        )
        / n
    )
    r = residuals.detach()
    want_reg = sum(np.mean([huber(float(r[b, p, k[b, p], d] - target[b, p, d])) for d in range(3)])
                   for b in range(2) for p in range(4) if mask[b, p]) / n  # fmt: skip
    assert cls.item() == pytest.approx(want_cls, rel=1e-6) and reg.item() == pytest.approx(want_reg, rel=1e-6)
    (cls + reg).backward()
    # Only the true bin's residual of a positive proposal gets a gradient.
    grad = residuals.grad.abs().sum(-1)
    assert grad[0, 1].sum() == 0 and grad[0, 0, k[0, 0]] > 0 and (grad[0, 0].sum() - grad[0, 0, k[0, 0]]) == 0
    # Exact residual -> zero regression loss.
    exact = residuals.detach().gather(2, k[..., None, None].expand(-1, -1, 1, 3))[:, :, 0]
    assert bin_residual_loss(logits, residuals, k, exact, mask)[1].item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        bin_residual_loss(logits, residuals, k, target[..., :2], mask)

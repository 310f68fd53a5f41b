import math

import pytest
import torch

from ppkt.losses import CosineDistillation


def naive(points, teacher):
    total = 0.0
    for f, t in zip(points.tolist(), teacher.tolist(), strict=True):
        dot = sum(a * b for a, b in zip(f, t, strict=True))
        norm = math.sqrt(sum(a * a for a in f)) * math.sqrt(sum(b * b for b in t))
        total += 1.0 - dot / norm
    return total / len(points)


def test_matches_naive_reference():
    g = torch.Generator().manual_seed(0)
    points, teacher = torch.randn(37, 9, generator=g), torch.randn(37, 9, generator=g)
    assert CosineDistillation()(points, teacher).item() == pytest.approx(naive(points, teacher), abs=1e-6)


def test_analytic_values():
    loss = CosineDistillation()
    v = torch.tensor([[1.0, 2.0, -3.0]])
    assert loss(v, 5 * v).item() == pytest.approx(0.0, abs=1e-6)  # same direction, any scale
    assert loss(v, -v).item() == pytest.approx(2.0, abs=1e-6)
    assert loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])).item() == pytest.approx(1.0)
    # mean of the three cases
    points = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    teacher = torch.tensor([[2.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    assert loss(points, teacher).item() == pytest.approx(1.0)


def test_gradient_by_hand():
    # d/df (1 - f.t/(|f||t|)) = -(t/|t| - cos * f/|f|) / |f|
    f = torch.tensor([[3.0, 4.0]], requires_grad=True)
    t = torch.tensor([[1.0, 0.0]], requires_grad=True)
    CosineDistillation()(f, t).backward()
    cos = 3.0 / 5.0
    expected = -(torch.tensor([1.0, 0.0]) - cos * torch.tensor([0.6, 0.8])) / 5.0
    assert torch.allclose(f.grad[0], expected, atol=1e-6)
    assert t.grad is None or torch.count_nonzero(t.grad) == 0  # the teacher is a target


def test_group_averages_per_frame_first():
    points = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    group = torch.tensor([0, 1, 1])
    # frame 0: 0; frame 1: (2 + 1) / 2 = 1.5; mean over frames 0.75 (not the pair mean 1.0)
    assert CosineDistillation()(points, teacher, group).item() == pytest.approx(0.75)


def test_degenerate_inputs():
    loss = CosineDistillation()
    empty = torch.zeros(0, 4, requires_grad=True)
    value = loss(empty, torch.zeros(0, 4))
    value.backward()
    assert value.item() == 0.0
    zero = loss(torch.zeros(1, 3), torch.ones(1, 3))
    assert zero.item() == pytest.approx(1.0) and torch.isfinite(zero)
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="group"):
        loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
